// Interop with the real etcd 3.4.23 (Debian's /usr/bin/etcd): we read what etcd wrote, byte for
// byte, and etcd boots from what we wrote. Skipped when etcd is not installed.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { crc32c } from '@node-rs/crc32';
import { Metadata } from '../gen/etcdserverpb/etcdserver.js';
import { ConfChange, Entry, EntryType, HardState } from '../gen/raftpb/raft.js';
import { WalDecoder } from './decoder.js';
import { FrameEncoder } from './encoder.js';
import { backendPath, snapDir, walDir, walName } from './file_names.js';
import { encodeEntry, encodeHardState, encodeMetadata, encodeRaftSnapshot, encodeSnapFile } from './pb.js';
import { CRC_TYPE, ENTRY_TYPE, STATE_TYPE } from './record_types.js';
import { readSnapFile, Snapshotter } from './snapshotter.js';
import { validSnapshotEntries, Wal } from './wal.js';

const ETCD = '/usr/bin/etcd';
const ETCDCTL = '/usr/bin/etcdctl';
const haveEtcd = fs.existsSync(ETCD) && fs.existsSync(ETCDCTL);
const skip = haveEtcd ? false : `${ETCD} is not installed`;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

interface Etcd {
  proc: ChildProcess;
  client: string;
  peer: string;
  log: () => string;
}

async function startEtcd(dataDir: string, ports?: { client: number; peer: number }): Promise<Etcd> {
  const client = `http://127.0.0.1:${ports?.client ?? (await freePort())}`;
  const peer = `http://127.0.0.1:${ports?.peer ?? (await freePort())}`;
  const logFile = `${dataDir}.log`;
  const out = fs.openSync(logFile, 'a');
  const proc = spawn(
    ETCD,
    [
      '--name',
      't',
      '--data-dir',
      dataDir,
      '--listen-client-urls',
      client,
      '--advertise-client-urls',
      client,
      '--listen-peer-urls',
      peer,
      '--initial-advertise-peer-urls',
      peer,
      '--initial-cluster',
      `t=${peer}`,
      '--snapshot-count',
      '50',
    ],
    { stdio: ['ignore', out, out] },
  );
  fs.closeSync(out);
  const log = () => fs.readFileSync(logFile, 'utf8');
  const deadline = Date.now() + 15000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`etcd exited with ${proc.exitCode}:\n${log()}`);
    try {
      const res = await fetch(`${client}/health`);
      if (res.ok && ((await res.json()) as { health: string }).health === 'true') break;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) {
      proc.kill('SIGKILL');
      throw new Error(`etcd did not become healthy:\n${log()}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return { proc, client, peer, log };
}

function stop(e: Etcd, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
  return new Promise((resolve) => {
    if (e.proc.exitCode !== null || e.proc.signalCode !== null) return resolve();
    e.proc.once('exit', () => resolve());
    e.proc.kill(signal);
  });
}

function etcdctl(e: Etcd, ...args: string[]): string {
  const r = spawnSync(ETCDCTL, ['--endpoints', e.client, ...args], {
    env: { ...process.env, ETCDCTL_API: '3' },
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, `etcdctl ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/** Big integers from etcdctl's JSON, which JSON.parse would round. */
const jsonU64 = (json: string, field: string): bigint =>
  BigInt(new RegExp(`"${field}":(\\d+)`).exec(json)![1]!);

/** Re-encodes every record of a segment with our encoders; returns the bytes for comparison. */
function reencodeSegment(file: string): { ours: Buffer; records: number } {
  const dec = new WalDecoder([file]);
  const enc = new FrameEncoder(0);
  const parts: Buffer[] = [];
  const gen = dec.records();
  let records = 0;
  for (let it = gen.next(); !it.done; it = gen.next()) {
    const r = it.value;
    records++;
    let data: Buffer | undefined = Buffer.from(r.data);
    if (r.type === CRC_TYPE) {
      dec.checkCrcRecord(r);
      enc.crc = r.crc;
      data = undefined;
    } else if (r.type === ENTRY_TYPE) {
      data = encodeEntry(Entry.decode(r.data));
    } else if (r.type === STATE_TYPE) {
      data = encodeHardState(HardState.decode(r.data));
    }
    parts.push(enc.encode([{ type: r.type, data }]));
  }
  return { ours: Buffer.concat(parts), records };
}

test('we read a WAL and .snap written by the real etcd, byte for byte', {
  skip,
  timeout: 60000,
}, async () => {
  const dataDir = join(fs.mkdtempSync(join(tmpdir(), 'wal-interop-')), 'etcd');
  const etcd = await startEtcd(dataDir);
  let killed = false;
  try {
    for (let i = 1; i <= 80; i++) etcdctl(etcd, 'put', `key-${i}`, `value-${i}`);
    const status = etcdctl(etcd, 'endpoint', 'status', '-w', 'json');
    const memberId = jsonU64(status, 'member_id');
    const clusterId = jsonU64(status, 'cluster_id');
    const raftIndex = Number(jsonU64(status, 'raftIndex'));
    const raftTerm = Number(jsonU64(status, 'raftTerm'));
    await stop(etcd, 'SIGKILL');
    killed = true;

    // snapshots: with --snapshot-count 50 etcd has taken at least one
    const walSnaps = validSnapshotEntries(walDir(dataDir));
    assert.ok(walSnaps.length >= 2, `wal snapshot markers: ${JSON.stringify(walSnaps)}`);
    const ss = new Snapshotter(snapDir(dataDir));
    const snap = ss.loadNewestAvailable(walSnaps);
    assert.deepEqual(snap, ss.load());
    const md = snap.metadata!;
    assert.ok(md.index >= 50 && md.index <= raftIndex, `snapshot index ${md.index}`);
    assert.deepEqual(md.confState!.voters, [memberId]);
    assert.match(snap.data.toString(), /^\{"Root":/); // the v2 store, as JSON

    // the WAL from that snapshot on
    const w = Wal.openForRead(walDir(dataDir), { index: md.index, term: md.term });
    const { metadata, hardState, entries } = w.readAll();
    assert.deepEqual(Metadata.decode(metadata), { NodeID: memberId, ClusterID: clusterId });
    assert.equal(hardState.term, raftTerm);
    assert.equal(hardState.vote, memberId);
    assert.ok(hardState.commit >= raftIndex, `commit ${hardState.commit} < status index ${raftIndex}`);
    assert.equal(entries[0]!.index, md.index + 1);
    assert.deepEqual(
      entries.map((e) => e.index),
      entries.map((_, i) => md.index + 1 + i),
    );
    assert.ok(entries.at(-1)!.index >= raftIndex);
    assert.ok(entries.some((e) => e.type === EntryType.EntryNormal && e.data.includes('key-80')));

    // byte level: our encoders reproduce etcd's segment and .snap file exactly
    for (const name of fs.readdirSync(walDir(dataDir)).filter((n) => n.endsWith('.wal'))) {
      const file = join(walDir(dataDir), name);
      const { ours, records } = reencodeSegment(file);
      assert.ok(records > 3);
      assert.ok(ours.equals(fs.readFileSync(file).subarray(0, ours.length)), `${name} differs`);
    }
    for (const name of ss.snapNames()) {
      const file = join(snapDir(dataDir), name);
      const data = encodeRaftSnapshot(readSnapFile(file));
      assert.ok(encodeSnapFile(crc32c(data), data).equals(fs.readFileSync(file)), `${name} differs`);
    }
  } finally {
    if (!killed) await stop(etcd);
  }
});

test('etcd restarts from a WAL we appended to and cut, and we read what it appended', {
  skip,
  timeout: 60000,
}, async () => {
  const dataDir = join(fs.mkdtempSync(join(tmpdir(), 'wal-interop-')), 'etcd');
  const ports = { client: await freePort(), peer: await freePort() };
  let etcd = await startEtcd(dataDir, ports);
  for (let i = 1; i <= 60; i++) etcdctl(etcd, 'put', `key-${i}`, `value-${i}`);
  await stop(etcd, 'SIGKILL');

  // open for writing (repairs/zeroes the tail), append an empty entry that commits, forcing a cut
  const snap = new Snapshotter(snapDir(dataDir)).loadNewestAvailable(validSnapshotEntries(walDir(dataDir)));
  const at = { index: snap.metadata!.index, term: snap.metadata!.term };
  const w = Wal.open(walDir(dataDir), at, { segmentSizeBytes: 1 });
  const r = w.readAll();
  const next = r.entries.at(-1)!.index + 1;
  const term = r.hardState.term;
  w.save({ term, vote: r.hardState.vote, commit: next }, [
    { term, index: next, type: 0, data: Buffer.alloc(0) },
  ]);
  w.close();
  const names = fs
    .readdirSync(walDir(dataDir))
    .filter((n) => n.endsWith('.wal'))
    .sort();
  assert.equal(names.at(-1), walName(1, next + 1));

  etcd = await startEtcd(dataDir, ports);
  try {
    assert.equal(etcdctl(etcd, 'get', 'key-60', '--print-value-only').trim(), 'value-60');
    etcdctl(etcd, 'put', 'after-restart', 'yes');
    const status = etcdctl(etcd, 'endpoint', 'status', '-w', 'json');
    assert.ok(Number(jsonU64(status, 'raftIndex')) > next);
  } finally {
    await stop(etcd, 'SIGTERM');
  }
  assert.doesNotMatch(etcd.log(), /panic|crc mismatch/i);
  const w2 = Wal.openForRead(walDir(dataDir), at);
  const r2 = w2.readAll();
  const ours = r2.entries.find((e) => e.index === next)!;
  assert.equal(ours.data.length, 0);
  assert.ok(r2.entries.some((e) => e.index > next && e.data.includes('after-restart')));
});

test('the real etcd boots from a data dir whose WAL we wrote from scratch', {
  skip,
  timeout: 60000,
}, async () => {
  const dataDir = join(fs.mkdtempSync(join(tmpdir(), 'wal-interop-')), 'etcd');
  const ports = { client: await freePort(), peer: await freePort() };
  const peer = `http://127.0.0.1:${ports.peer}`;
  const id = 0x1234abcd5678n;
  const clusterId = 0x9999aaaa1111n;
  // what etcd's bootstrap itself logs first: a ConfChangeAddNode for the member, committed in term 1
  const context = `{"id":${id},"peerURLs":["${peer}"],"name":"t"}`;
  const cc = ConfChange.encode(
    ConfChange.fromPartial({ type: 0, nodeId: id, context: Buffer.from(context) }),
  ).finish();
  fs.mkdirSync(snapDir(dataDir), { recursive: true, mode: 0o700 });
  const w = Wal.create(walDir(dataDir), encodeMetadata({ NodeID: id, ClusterID: clusterId }));
  w.save({ term: 1, vote: 0n, commit: 1 }, [
    { term: 1, index: 1, type: EntryType.EntryConfChange, data: Buffer.from(cc) },
  ]);
  w.close();

  const etcd = await startEtcd(dataDir, ports);
  try {
    etcdctl(etcd, 'put', 'hello', 'world');
    assert.equal(etcdctl(etcd, 'get', 'hello', '--print-value-only').trim(), 'world');
    const members = etcdctl(etcd, 'member', 'list', '-w', 'json');
    assert.equal(jsonU64(members, 'cluster_id'), clusterId);
    assert.equal(jsonU64(members, 'ID'), id);
    assert.match(members, /"name":"t"/);
  } finally {
    await stop(etcd, 'SIGTERM');
  }
  // and we read back our entry followed by etcd's
  const r = Wal.openForRead(walDir(dataDir), { index: 0, term: 0 }).readAll();
  assert.equal(r.entries[0]!.type, EntryType.EntryConfChange);
  assert.ok(r.entries.some((e) => e.data.includes('hello')));
  assert.ok(r.hardState.term >= 2);
});

test('we read a data dir made by `etcdctl snapshot restore`', { skip, timeout: 60000 }, async () => {
  const base = fs.mkdtempSync(join(tmpdir(), 'wal-interop-'));
  const etcd = await startEtcd(join(base, 'etcd'));
  const backup = join(base, 'backup.db');
  try {
    for (let i = 1; i <= 5; i++) etcdctl(etcd, 'put', `key-${i}`, `value-${i}`);
    etcdctl(etcd, 'snapshot', 'save', backup);
  } finally {
    await stop(etcd);
  }
  const restored = join(base, 'restored');
  const r = spawnSync(
    ETCDCTL,
    [
      'snapshot',
      'restore',
      backup,
      '--data-dir',
      restored,
      '--name',
      't',
      '--initial-cluster',
      `t=${etcd.peer}`,
      '--initial-advertise-peer-urls',
      etcd.peer,
    ],
    { env: { ...process.env, ETCDCTL_API: '3' }, encoding: 'utf8' },
  );
  assert.equal(r.status, 0, r.stderr);
  assert.ok(fs.existsSync(backendPath(restored)));
  const walSnaps = validSnapshotEntries(walDir(restored));
  const snap = new Snapshotter(snapDir(restored)).loadNewestAvailable(walSnaps);
  const md = snap.metadata!;
  assert.deepEqual([md.index, md.term], [1, 1]);
  assert.equal(md.confState!.voters.length, 1);
  const w = Wal.open(walDir(restored), { index: md.index, term: md.term });
  const { metadata, hardState, entries } = w.readAll();
  w.close();
  assert.equal(Metadata.decode(metadata).NodeID, md.confState!.voters[0]);
  assert.deepEqual(entries, []);
  assert.equal(hardState.commit, 1);
});
