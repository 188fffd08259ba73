import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { crc32c } from '@node-rs/crc32';
import { Snapshot } from '../gen/raftpb/raft.js';
import { snapshot as SnapFile } from '../gen/snappb/snap.js';
import { tempDirs } from '../testing/temp_dirs.js';
import type { SnapError } from './errors.js';
import { backendPath, dbSnapPath, memberDir, snapDir, snapName, walDir } from './file_names.js';
import { readSnapFile, Snapshotter } from './snapshotter.js';

const dir = tempDirs('snap-test-');
const snap = (term: number, index: number, data = `state@${index}`) =>
  Snapshot.fromPartial({
    data: Buffer.from(data),
    metadata: { term, index, confState: { voters: [1n, 2n, 3n], learners: [4n] } },
  });

test('data dir paths are etcd’s', () => {
  assert.equal(memberDir('/d'), '/d/member');
  assert.equal(walDir('/d'), '/d/member/wal');
  assert.equal(snapDir('/d'), '/d/member/snap');
  assert.equal(backendPath('/d'), '/d/member/snap/db');
  assert.equal(dbSnapPath('/d/member/snap', 0x51), '/d/member/snap/0000000000000051.snap.db');
});

test('save writes %016x-%016x.snap atomically; load returns the newest', () => {
  const d = dir();
  const ss = new Snapshotter(d);
  assert.throws(
    () => ss.load(),
    (e: SnapError) => e.code === 'NO_SNAPSHOT',
  );
  ss.saveSnap(snap(1, 10));
  ss.saveSnap(snap(2, 30));
  ss.saveSnap(snap(2, 20));
  ss.saveSnap(Snapshot.fromPartial({ data: Buffer.from('x'), metadata: { index: 0 } })); // empty: ignored
  assert.deepEqual(fs.readdirSync(d).sort(), [snapName(1, 10), snapName(2, 20), snapName(2, 30)]);
  assert.deepEqual(ss.load(), snap(2, 30));
  // the file is a snappb.snapshot with the CRC-32C of the encoded raftpb.Snapshot
  const f = SnapFile.decode(fs.readFileSync(join(d, snapName(2, 30))));
  assert.equal(f.crc, crc32c(f.data));
  assert.deepEqual(Snapshot.decode(f.data), snap(2, 30));
});

test('a broken newest snapshot is renamed .broken and the next one is used', () => {
  const d = dir();
  const ss = new Snapshotter(d);
  ss.saveSnap(snap(1, 10));
  ss.saveSnap(snap(1, 20));
  const newest = join(d, snapName(1, 20));
  const b = fs.readFileSync(newest);
  b[b.length - 3] = b[b.length - 3]! ^ 0x55;
  fs.writeFileSync(newest, b);
  assert.throws(
    () => readSnapFile(newest),
    (e: SnapError) => e.code === 'CRC_MISMATCH',
  );
  assert.deepEqual(ss.load(), snap(1, 10));
  assert.ok(fs.existsSync(`${newest}.broken`));
  fs.writeFileSync(join(d, snapName(1, 30)), ''); // empty file
  assert.deepEqual(ss.load(), snap(1, 10));
  assert.ok(fs.existsSync(join(d, `${snapName(1, 30)}.broken`)));
});

test('loadNewestAvailable takes the newest snapshot the WAL has a marker for', () => {
  const d = dir();
  const ss = new Snapshotter(d);
  ss.saveSnap(snap(1, 10));
  ss.saveSnap(snap(1, 20));
  ss.saveSnap(snap(2, 30)); // saved, but its WAL marker never made it
  const walSnaps = [
    { index: 0, term: 0 },
    { index: 10, term: 1 },
    { index: 20, term: 1 },
  ];
  assert.deepEqual(ss.loadNewestAvailable(walSnaps), snap(1, 20));
  assert.deepEqual(ss.loadNewestAvailable([{ index: 10, term: 1 }]), snap(1, 10));
  assert.throws(
    () => ss.loadNewestAvailable([{ index: 20, term: 2 }]),
    (e: SnapError) => e.code === 'NO_SNAPSHOT',
  );
});

test('purge keeps the newest max snapshots and leftover temp files are removed', () => {
  const d = dir();
  const ss = new Snapshotter(d);
  for (let i = 1; i <= 6; i++) ss.saveSnap(snap(1, i * 10));
  fs.writeFileSync(join(d, 'db'), 'backend');
  fs.writeFileSync(join(d, `${snapName(1, 70)}.tmp`), 'half');
  fs.writeFileSync(join(d, 'db.tmp.123'), 'half');
  assert.deepEqual(ss.purge(0), []);
  assert.deepEqual(ss.purge(4), [snapName(1, 10), snapName(1, 20)]);
  assert.equal(ss.snapNames()[0], snapName(1, 60));
  assert.deepEqual(fs.readdirSync(d).sort(), [...[30, 40, 50, 60].map((i) => snapName(1, i)), 'db']);
});
