import assert from 'node:assert/strict';
import { test } from 'node:test';
import { crc32c } from '@node-rs/crc32';
import { Entry, HardState, Snapshot } from '../gen/raftpb/raft.js';
import { hasZeroSector, parseRecord, readLengthWord } from './decoder.js';
import { FrameEncoder } from './encoder.js';
import { parseSnapName, parseWalName, snapName, walName } from './file_names.js';
import {
  encodeEntry,
  encodeHardState,
  encodeMetadata,
  encodeRaftSnapshot,
  encodeSnapFile,
  encodeWalSnapshot,
  varintSize,
} from './pb.js';
import { CRC_TYPE, METADATA_TYPE, SNAPSHOT_TYPE } from './record_types.js';

test('file names are %016x-%016x', () => {
  assert.equal(walName(0, 0), '0000000000000000-0000000000000000.wal');
  assert.equal(walName(1, 0x1234), '0000000000000001-0000000000001234.wal');
  assert.deepEqual(parseWalName('000000000000000a-00000000000000ff.wal'), { seq: 10, index: 255 });
  assert.equal(parseWalName('0.tmp'), null);
  assert.equal(parseWalName('000000000000000a-00000000000000ff.wal.broken'), null);
  assert.equal(snapName(2, 0x33), '0000000000000002-0000000000000033.snap');
  assert.deepEqual(parseSnapName('0000000000000002-0000000000000033.snap'), { term: 2, index: 0x33 });
});

test('CRC-32C continues like Go crc32.Update with the Castagnoli table', () => {
  assert.equal(crc32c(Buffer.from('123456789')), 0xe3069283);
  assert.equal(crc32c(Buffer.from('6789'), crc32c(Buffer.from('12345'))), 0xe3069283);
});

test("etcd's record test vector decodes (unpadded legacy frame)", () => {
  // wal/record_test.go: infoRecord
  const infoData = Buffer.from('08effd02', 'hex');
  const frame = Buffer.concat([Buffer.from('0e000000000000000801109' + '9b5e4d0031a04', 'hex'), infoData]);
  const { recBytes, padBytes } = readLengthWord(frame, 0);
  assert.equal(recBytes, 14);
  assert.equal(padBytes, 0);
  const rec = parseRecord(frame, 8, 8 + recBytes)!;
  assert.equal(rec.type, 1);
  assert.equal(rec.crc, crc32c(infoData));
  assert.deepEqual(rec.data, infoData);
});

test('frames are 8-byte aligned with the pad count in the top byte of the length word', () => {
  const enc = new FrameEncoder(0);
  const data = Buffer.from('somedata');
  const out = enc.encode([{ type: CRC_TYPE }, { type: METADATA_TYPE, data }]);
  // crc record: 08 04 10 00 -> 4 bytes, 4 bytes of padding: length word 0x84000000_00000004
  assert.equal(out.subarray(0, 8).toString('hex'), '0400000000000084');
  assert.equal(out.subarray(8, 16).toString('hex'), '0804100000000000');
  // metadata record: 08 01 10 <crc varint> 1a 08 somedata, padded to 24
  const crc = crc32c(data);
  assert.equal(enc.crc, crc);
  const want = 3 + varintSize(crc) + 2 + data.length;
  const { recBytes, padBytes } = readLengthWord(out, 16);
  assert.equal(recBytes, want);
  assert.equal(padBytes, 24 - want);
  assert.equal(out.length, 16 + 8 + 24);
  const rec = parseRecord(out, 24, 24 + want)!;
  assert.deepEqual(rec, { type: METADATA_TYPE, crc, data });
  assert.ok(out.subarray(24 + want).equals(Buffer.alloc(24 - want)));
});

test('the rolling crc chains across records and batches', () => {
  const a = Buffer.from('first');
  const b = Buffer.from('second');
  const enc = new FrameEncoder(7);
  enc.encode([{ type: 2, data: a }]);
  assert.equal(enc.crc, crc32c(a, 7));
  enc.encode([{ type: 2, data: b }, { type: CRC_TYPE }]);
  assert.equal(enc.crc, crc32c(b, crc32c(a, 7)));
});

test('gogo-exact encodings: zero scalars are written, Go nil bytes are not', () => {
  assert.equal(encodeWalSnapshot({ index: 0, term: 0 }).toString('hex'), '08001000');
  assert.equal(encodeHardState({ term: 0, vote: 0n, commit: 0 }).toString('hex'), '080010001800');
  assert.equal(
    encodeHardState({ term: 2, vote: 0x8e9e05c52164694dn, commit: 300 }).toString('hex'),
    '0802' + '10cdd2918bd2b881cf8e01' + '18ac02',
  );
  assert.equal(
    encodeEntry({ term: 1, index: 1, type: 0, data: Buffer.alloc(0) }).toString('hex'),
    '080010011801',
  );
  assert.equal(
    encodeEntry({ term: 1, index: 2, type: 1, data: Buffer.from('x') }).toString('hex'),
    '0801100118022201' + '78',
  );
  assert.equal(encodeMetadata({ NodeID: 1n, ClusterID: 0n }).toString('hex'), '08011000');
  const snap = Snapshot.fromPartial({
    data: Buffer.from('d'),
    metadata: {
      index: 5,
      term: 2,
      confState: { voters: [1n, 2n], learners: [], votersOutgoing: [], learnersNext: [] },
    },
  });
  // 0a 01 64 | 12 0c [0a 06 (08 01 08 02 28 00) 10 05 18 02]
  assert.equal(encodeRaftSnapshot(snap).toString('hex'), '0a0164120c0a060801080228001005' + '1802');
  assert.equal(encodeSnapFile(0, Buffer.from('z')).toString('hex'), '0800' + '12017a');
});

test('gogo encodings decode with the generated codecs', () => {
  const e = { term: 3, index: 2 ** 40, type: 0, data: Buffer.from('payload') };
  assert.deepEqual(Entry.decode(encodeEntry(e)), e);
  const hs = { term: 9, vote: 2n ** 63n + 5n, commit: 77 };
  assert.deepEqual(HardState.decode(encodeHardState(hs)), hs);
  const snap = Snapshot.fromPartial({
    data: Buffer.from('state'),
    metadata: {
      index: 50,
      term: 3,
      confState: { voters: [7n], learners: [9n], votersOutgoing: [], learnersNext: [] },
    },
  });
  assert.deepEqual(Snapshot.decode(encodeRaftSnapshot(snap)), snap);
});

test('torn-write detection looks for a zeroed 512-byte sector', () => {
  const buf = Buffer.alloc(2048, 1);
  assert.equal(hasZeroSector(buf, 8, 2048), false);
  buf.fill(0, 512, 1024);
  assert.equal(hasZeroSector(buf, 8, 2048), true);
  assert.equal(hasZeroSector(buf, 8, 600), true); // the piece 512..600 of the zeroed sector counts
  buf.fill(1);
  buf.fill(0, 1000, 1024);
  assert.equal(hasZeroSector(buf, 1000, 1024), true);
  assert.equal(hasZeroSector(buf, 999, 1024), false);
});

test('the length word handles large records and rejects nothing below 2^56', () => {
  const b = Buffer.alloc(8);
  b.writeUInt32LE(5, 0);
  b.writeUInt32LE((0x01 | (0x83 << 24)) >>> 0, 4);
  assert.deepEqual(readLengthWord(b, 0), { recBytes: 0x100000005, padBytes: 3 });
  assert.equal(SNAPSHOT_TYPE, 5);
});
