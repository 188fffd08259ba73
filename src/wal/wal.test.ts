import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { Entry, HardState } from '../gen/raftpb/raft.js';
import { tempDirs } from '../testing/temp_dirs.js';
import { WalError } from './errors.js';
import { walName } from './file_names.js';
import { encodeMetadata } from './pb.js';
import { validSnapshotEntries, verifyWal, Wal, walExists } from './wal.js';

const tmp = tempDirs('wal-test-');
const meta = encodeMetadata({ NodeID: 0x1234n, ClusterID: 0xabcdn });
const ent = (index: number, term = 1, data = `e${index}`): Entry => ({
  index,
  term,
  type: 0,
  data: Buffer.from(data),
});
const hs = (term: number, commit: number, vote = 1n): HardState => ({ term, vote, commit });
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);
const SEG = 64 * 1024; // small segments for tests

function reopen(dir: string, snap = { index: 0, term: 0 }) {
  const w = Wal.open(dir, snap, { segmentSizeBytes: SEG });
  const r = w.readAll();
  return { w, ...r };
}

test('create, save, reopen: metadata, hard state and entries come back', () => {
  const dir = join(tmp(), 'wal');
  const w = Wal.create(dir, meta, { segmentSizeBytes: SEG });
  assert.ok(walExists(dir));
  assert.ok(!fs.existsSync(`${dir}.tmp`));
  assert.deepEqual(fs.readdirSync(dir), [walName(0, 0)]);
  assert.equal(fs.statSync(join(dir, walName(0, 0))).size, SEG); // preallocated
  w.save(hs(1, 0), [ent(1), ent(2)]);
  w.save(hs(1, 2), [ent(3)]);
  w.save(hs(1, 3), []);
  w.close();
  const r = reopen(dir);
  assert.deepEqual(r.metadata, meta);
  assert.deepEqual(r.hardState, hs(1, 3));
  assert.deepEqual(r.entries, [ent(1), ent(2), ent(3)]);
  assert.equal(r.w.lastIndex, 3);
  // and the WAL keeps appending after a reopen
  r.w.save(hs(2, 4), [ent(4, 2)]);
  r.w.close();
  const r2 = reopen(dir);
  assert.deepEqual(
    r2.entries.map((e) => e.index),
    [1, 2, 3, 4],
  );
  assert.deepEqual(r2.hardState, hs(2, 4));
  r2.w.close();
  assert.throws(
    () => Wal.create(dir, meta),
    (e: WalError) => e.code === 'EXIST',
  );
});

test('a later entry with the same index replaces the earlier one and truncates after it', () => {
  const dir = join(tmp(), 'wal');
  const w = Wal.create(dir, meta);
  w.save(hs(1, 0), [ent(1), ent(2), ent(3), ent(4)]);
  w.save(hs(2, 1), [ent(3, 2, 'new3')]);
  w.close();
  const r = reopen(dir);
  assert.deepEqual(r.entries, [ent(1), ent(2), ent(3, 2, 'new3')]);
  r.w.close();
});

test('entries at or below the snapshot are skipped; a missing marker is an error', () => {
  const dir = join(tmp(), 'wal');
  const w = Wal.create(dir, meta);
  w.save(
    hs(1, 5),
    range(1, 5).map((i) => ent(i)),
  );
  w.saveSnapshot({ index: 3, term: 1 });
  w.save(hs(1, 6), [ent(6)]);
  w.close();
  const r = reopen(dir, { index: 3, term: 1 });
  assert.deepEqual(
    r.entries.map((e) => e.index),
    [4, 5, 6],
  );
  r.w.close();
  assert.throws(
    () => Wal.open(dir, { index: 4, term: 1 }).readAll(),
    (e: WalError) => e.code === 'SNAPSHOT_NOT_FOUND',
  );
  assert.throws(
    () => Wal.open(dir, { index: 3, term: 2 }).readAll(),
    (e: WalError) => e.code === 'SNAPSHOT_MISMATCH',
  );
  assert.deepEqual(validSnapshotEntries(dir), [
    { index: 0, term: 0 },
    { index: 3, term: 1 },
  ]);
  verifyWal(dir, { index: 3, term: 1 });
});

test('segments are cut at the size limit, each starting with crc, metadata and state records', () => {
  const dir = join(tmp(), 'wal');
  const w = Wal.create(dir, meta, { segmentSizeBytes: SEG });
  const big = 'x'.repeat(1000);
  let idx = 0;
  for (let b = 0; b < 300; b++) {
    const ents = range(idx + 1, idx + 2).map((i) => ent(i, 1, big + i));
    idx += 2;
    w.save(hs(1, idx), ents);
  }
  w.close();
  const names = fs.readdirSync(dir).sort();
  assert.ok(names.length >= 9, `expected several segments, got ${names}`);
  assert.equal(names[0], walName(0, 0));
  for (let i = 1; i < names.length; i++) {
    // every later segment is named (seq, first index it holds)
    assert.match(names[i]!, new RegExp(`^${i.toString(16).padStart(16, '0')}-`));
  }
  // full segments were cut back to their used size, the last one stays preallocated
  for (const n of names.slice(0, -1)) assert.ok(fs.statSync(join(dir, n)).size >= SEG);
  const r = reopen(dir);
  assert.equal(r.entries.length, 600);
  assert.deepEqual(r.entries[599], ent(600, 1, big + 600));
  assert.deepEqual(r.hardState, hs(1, 600));
  // a reader starting at a later snapshot only needs the later segments
  const secondIndex = Number.parseInt(names[3]!.slice(17, 33), 16);
  r.w.saveSnapshot({ index: secondIndex, term: 1 });
  r.w.close();
  const r2 = reopen(dir, { index: secondIndex, term: 1 });
  assert.equal(r2.entries[0]!.index, secondIndex + 1);
  assert.equal(r2.w.segments[0], names[3]);
  r2.w.close();
});

test('releaseLockTo + purge keep the segment holding the snapshot index and everything after', () => {
  const dir = join(tmp(), 'wal');
  const w = Wal.create(dir, meta, { segmentSizeBytes: SEG });
  const big = 'y'.repeat(3000);
  for (let i = 1; i <= 200; i++) w.save(hs(1, i), [ent(i, 1, big)]);
  const names = fs.readdirSync(dir).sort();
  assert.ok(names.length >= 8);
  assert.deepEqual(w.purge(2), []); // all still held
  const snapIndex = 150;
  w.releaseLockTo(snapIndex);
  const removed = w.purge(2);
  const left = fs.readdirSync(dir).sort();
  assert.ok(removed.length > 0);
  assert.equal(left[0], w.segments[0]);
  assert.ok(Number.parseInt(left[0]!.slice(17, 33), 16) <= snapIndex);
  w.saveSnapshot({ index: snapIndex, term: 1 });
  w.close();
  const r = reopen(dir, { index: snapIndex, term: 1 });
  assert.deepEqual(
    r.entries.map((e) => e.index),
    range(151, 200),
  );
  r.w.close();
});

test('save makes one write and syncs only when raft needs it, at most once per call', () => {
  const dir = join(tmp(), 'wal');
  const w = Wal.create(dir, meta);
  const { fsyncs, writes } = w.stats;
  w.save(
    hs(1, 0),
    range(1, 64).map((i) => ent(i)),
  );
  assert.equal(w.stats.writes, writes + 1);
  assert.equal(w.stats.fsyncs, fsyncs + 1);
  w.save(hs(1, 64), []); // commit only: written, not synced
  assert.equal(w.stats.writes, writes + 2);
  assert.equal(w.stats.fsyncs, fsyncs + 1);
  w.save(hs(2, 64, 2n), []); // term/vote change
  assert.equal(w.stats.fsyncs, fsyncs + 2);
  w.save({ term: 0, vote: 0n, commit: 0 }, []); // nothing at all
  assert.equal(w.stats.writes, writes + 3);
  w.close();
});

test('openForRead leaves files alone; save before readAll is refused', () => {
  const dir = join(tmp(), 'wal');
  Wal.create(dir, meta).close();
  const ro = Wal.openForRead(dir, { index: 0, term: 0 });
  assert.deepEqual(ro.readAll().entries, []);
  assert.throws(() => ro.save(hs(1, 1), [ent(1)]), WalError);
  const w = Wal.open(dir, { index: 0, term: 0 });
  assert.throws(() => w.save(hs(1, 1), [ent(1)]), /readAll must be called/);
  w.close();
});
