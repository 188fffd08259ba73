import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { Entry, HardState } from '../gen/raftpb/raft.js';
import type { WalError } from './errors.js';
import { walName } from './file_names.js';
import { Wal } from './wal.js';

const meta = Buffer.from('meta');
const opts = { segmentSizeBytes: 256 * 1024 };
const ent = (index: number, size = 100): Entry => ({
  index,
  term: 1,
  type: 0,
  data: Buffer.alloc(size, index & 0xff || 1),
});
const hs = (commit: number): HardState => ({ term: 1, vote: 1n, commit });

/** A WAL with entries 1..n, one per save; returns the dir and the offset after each save. */
function makeWal(n: number, size = 100): { dir: string; file: string; ends: number[] } {
  const dir = join(fs.mkdtempSync(join(tmpdir(), 'wal-repair-')), 'wal');
  const w = Wal.create(dir, meta, opts);
  const file = join(dir, walName(0, 0));
  const ends: number[] = [];
  for (let i = 1; i <= n; i++) {
    w.save(hs(i), [ent(i, size)]);
    ends.push(usedBytes(file));
  }
  w.close();
  return { dir, file, ends };
}

/** Bytes up to the last non-zero byte, rounded up to 8. */
function usedBytes(file: string): number {
  const b = fs.readFileSync(file);
  let i = b.length;
  while (i > 0 && b[i - 1] === 0) i--;
  return Math.ceil(i / 8) * 8;
}

function readBack(dir: string) {
  const w = Wal.open(dir, { index: 0, term: 0 }, opts);
  const r = w.readAll();
  return { w, ...r };
}

test('a torn tail (last frame half written, rest zeros) is cut off at open and the WAL goes on', () => {
  const { dir, file, ends } = makeWal(10, 1500);
  const b = fs.readFileSync(file);
  // zero the second half of the last frame: as if the write of its later sectors never reached the disk
  const lastStart = ends[8]!;
  b.fill(0, lastStart + 600, ends[9]!);
  fs.writeFileSync(file, b);
  const r = readBack(dir);
  assert.deepEqual(
    r.entries.map((e) => e.index),
    [1, 2, 3, 4, 5, 6, 7, 8, 9],
  );
  assert.deepEqual(r.hardState, hs(9));
  assert.ok(fs.existsSync(`${file}.broken`), 'the damaged segment is kept as .broken');
  // the tail was zeroed from the cut on: no stale bytes after it
  const after = fs.readFileSync(file);
  assert.ok(after.subarray(lastStart).every((x) => x === 0));
  r.w.save(hs(10), [ent(10)]);
  r.w.close();
  const r2 = readBack(dir);
  assert.deepEqual(r2.entries.at(-1), ent(10));
  r2.w.close();
});

test('a file that ends in the middle of a frame (no preallocation left) is repaired', () => {
  const { dir, file, ends } = makeWal(5);
  fs.truncateSync(file, ends[3]! + 13); // mid-frame of entry 5
  const r = readBack(dir);
  assert.deepEqual(
    r.entries.map((e) => e.index),
    [1, 2, 3, 4],
  );
  r.w.close();
  fs.truncateSync(file, ends[3]! + 4); // mid length word
  const r2 = readBack(dir);
  assert.equal(r2.entries.length, 4);
  r2.w.close();
});

test('garbage after a zero length word is zeroed at open', () => {
  const { dir, file, ends } = makeWal(3);
  const fd = fs.openSync(file, 'r+');
  fs.writeSync(fd, Buffer.from('junkjunk'), 0, 8, ends[2]! + 64);
  fs.closeSync(fd);
  const r = readBack(dir);
  assert.equal(r.entries.length, 3);
  r.w.close();
  assert.ok(
    fs
      .readFileSync(file)
      .subarray(ends[2]!)
      .every((x) => x === 0),
  );
});

test('a CRC mismatch in the middle is an error naming the file and offset, and nothing is changed', () => {
  const { dir, file, ends } = makeWal(10);
  const b = fs.readFileSync(file);
  const at = ends[4]! + 8 + 30; // inside entry 6's data
  b[at] = b[at]! ^ 0xff;
  fs.writeFileSync(file, b);
  const before = fs.readFileSync(file);
  assert.throws(
    () => readBack(dir),
    (e: WalError) => {
      assert.equal(e.code, 'CRC_MISMATCH');
      assert.equal(e.file, file);
      assert.equal(e.offset, ends[4]);
      assert.match(e.message, new RegExp(`crc mismatch .*in ${walName(0, 0)} at offset ${ends[4]}`));
      return true;
    },
  );
  assert.ok(fs.readFileSync(file).equals(before));
  assert.ok(!fs.existsSync(`${file}.broken`));
});

test('a torn-looking frame that is not the last segment is corruption, not a torn tail', () => {
  const dir = join(fs.mkdtempSync(join(tmpdir(), 'wal-repair-')), 'wal');
  const w = Wal.create(dir, meta, { segmentSizeBytes: 8192 });
  for (let i = 1; i <= 40; i++) w.save(hs(i), [ent(i, 1000)]);
  w.close();
  const names = fs.readdirSync(dir).sort();
  assert.ok(names.length >= 3);
  const first = join(dir, names[0]!);
  const b = fs.readFileSync(first);
  b.fill(0, 2048, 2560); // a zeroed sector in the middle of a full segment
  fs.writeFileSync(first, b);
  assert.throws(
    () => readBack(dir),
    (e: WalError) => (e.code === 'CRC_MISMATCH' || e.code === 'CORRUPT') && e.file === first,
  );
});

test('a malformed record in the middle is an error', () => {
  const { dir, file, ends } = makeWal(6);
  const b = fs.readFileSync(file);
  b[ends[1]! + 8] = 0xff; // first byte of entry 3's record: an invalid tag
  b[ends[1]! + 9] = 0xff;
  fs.writeFileSync(file, b);
  assert.throws(() => readBack(dir), /wal: (malformed record|crc mismatch).* at offset/);
});

test('a segment gap is refused', () => {
  const dir = join(fs.mkdtempSync(join(tmpdir(), 'wal-repair-')), 'wal');
  const w = Wal.create(dir, meta, { segmentSizeBytes: 8192 });
  for (let i = 1; i <= 40; i++) w.save(hs(i), [ent(i, 1000)]);
  w.close();
  const names = fs.readdirSync(dir).sort();
  fs.unlinkSync(join(dir, names[1]!));
  assert.throws(
    () => Wal.open(dir, { index: 0, term: 0 }),
    (e: WalError) => e.code === 'FILE_NOT_FOUND',
  );
});
