// Maintenance with the real etcdctl 3.4: the seed's quota walkthrough (fill until NOSPACE, compact, defrag,
// disarm, write again), snapshot save + status, and backups across implementations (etcd-ts snapshot
// restored by etcdctl and served by the real etcd; the real etcd's snapshot restored and booted by etcd-ts).
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import {
  type EtcdProcess,
  etcdctl,
  freePort,
  hasEtcdctl,
  hasRealEtcd,
  REAL_ETCD,
  removeDir,
  startEtcdProcess,
  tempDir,
} from './helpers/process.js';

const skip = hasEtcdctl()
  ? false
  : 'etcdctl not installed (/usr/bin/etcdctl): skipping maintenance interop tests';
const skipReal = skip || (hasRealEtcd() ? false : 'the real etcd (/usr/bin/etcd) is not installed: skipping');

const dirs: string[] = [];
const procs: EtcdProcess[] = [];
after(async () => {
  for (const p of procs) await p.kill();
  for (const d of dirs) removeDir(d);
});

async function ok(ep: string, args: string[], input?: string): Promise<string> {
  const r = await etcdctl(ep, args, input);
  assert.equal(r.code, 0, `etcdctl ${args.join(' ')} failed: ${r.stderr}`);
  return r.stdout;
}

async function restore(snapshot: string, dataDir: string, peerUrl: string): Promise<void> {
  await ok('http://127.0.0.1:1', [
    'snapshot',
    'restore',
    snapshot,
    '--data-dir',
    dataDir,
    '--name',
    'default',
    '--initial-cluster',
    `default=${peerUrl}`,
    '--initial-advertise-peer-urls',
    peerUrl,
  ]);
}

function kvs(json: string): Array<[string, number, number, number, string]> {
  const r = JSON.parse(json) as {
    kvs?: Array<{
      key: string;
      create_revision: number;
      mod_revision: number;
      version: number;
      lease?: number;
    }>;
  };
  return (r.kvs ?? []).map((kv) => [
    Buffer.from(kv.key, 'base64').toString(),
    kv.create_revision,
    kv.mod_revision,
    kv.version,
    String(kv.lease ?? 0),
  ]);
}

describe('maintenance with the real etcdctl', { skip }, () => {
  it('quota walkthrough: NOSPACE, compact, defrag, disarm, write again', async () => {
    const dir = tempDir();
    dirs.push(dir);
    const p = await startEtcdProcess({
      dataDir: join(dir, 'd'),
      extraArgs: ['--quota-backend-bytes=16777216', '--unsafe-no-fsync'],
    });
    procs.push(p);
    const ep = p.clientUrl;
    const big = Buffer.alloc(400_000, 'v').toString();
    let failed = '';
    for (let i = 0; i < 80 && !failed; i++) {
      const r = await etcdctl(ep, ['put', `key${i % 4}`], big);
      if (r.code !== 0) failed = r.stderr;
    }
    assert.match(failed, /etcdserver: mvcc: database space exceeded/);
    assert.match(await ok(ep, ['alarm', 'list']), /^memberID:\d+ alarm:NOSPACE \n$/);
    const status = JSON.parse(await ok(ep, ['endpoint', 'status', '-w', 'json']))[0].Status;
    assert.match(status.errors[0], /^memberID:\d+ alarm:NOSPACE $/);
    const health = await fetch(`${ep}/health`);
    assert.equal(health.status, 503);
    assert.equal(await health.text(), '{"health":"false"}\n');
    assert.equal((await fetch(`${ep}/health?exclude=NOSPACE`)).status, 200);
    // reads and deletes still work; puts do not
    assert.match(await ok(ep, ['get', 'key1', '--keys-only']), /key1/);
    assert.equal((await etcdctl(ep, ['put', 'small', 'v'])).code, 1);
    const rev = status.header.revision as number;
    assert.match(await ok(ep, ['compact', String(rev)]), new RegExp(`compacted revision ${rev}`));
    assert.match(await ok(ep, ['defrag']), /Finished defragmenting etcd member/);
    const after = JSON.parse(await ok(ep, ['endpoint', 'status', '-w', 'json']))[0].Status;
    assert.ok(after.dbSize < status.dbSize / 2, `dbSize ${after.dbSize} after defrag vs ${status.dbSize}`);
    assert.match(await ok(ep, ['alarm', 'disarm']), /alarm:NOSPACE/);
    assert.equal(await ok(ep, ['alarm', 'list']), '');
    assert.equal(await ok(ep, ['put', 'small', 'v']), 'OK\n');
    assert.equal((await fetch(`${ep}/health`)).status, 200);
    assert.match(p.output(), /defrag: switched to the compacted backend/);
    await p.stop();
  });

  it('snapshot save + status; restored by etcdctl and served by the real etcd', {
    skip: skipReal,
  }, async () => {
    const dir = tempDir();
    dirs.push(dir);
    const p = await startEtcdProcess({ dataDir: join(dir, 'd'), extraArgs: ['--unsafe-no-fsync'] });
    procs.push(p);
    const ep = p.clientUrl;
    await ok(ep, ['put', 'a', '1']);
    await ok(ep, ['put', 'b', '2']);
    await ok(ep, ['put', 'a', '3']);
    await ok(ep, ['del', 'b']);
    const lease = (await ok(ep, ['lease', 'grant', '600'])).split(' ')[1]!;
    await ok(ep, ['put', 'leased', 'x', `--lease=${lease}`]);
    await ok(ep, ['compact', '3']);
    const want = kvs(await ok(ep, ['get', '', '--prefix', '-w', 'json']));
    const snap = join(dir, 's.db');
    await ok(ep, ['snapshot', 'save', snap]);
    const table = await ok(ep, ['snapshot', 'status', snap, '-w', 'table']);
    assert.match(table, /\| +HASH +\| REVISION \| TOTAL KEYS \| TOTAL SIZE \|/);
    assert.match(table, /\| +[0-9a-f]{8} \| +6 \| +\d+ \| +\d+ kB \|/);
    await p.stop();

    const peer = `http://127.0.0.1:${await freePort()}`;
    await restore(snap, join(dir, 'r'), peer);
    const real = await startEtcdProcess({
      bin: REAL_ETCD,
      dataDir: join(dir, 'r'),
      peerPort: Number(new URL(peer).port),
    });
    procs.push(real);
    assert.deepEqual(kvs(await ok(real.clientUrl, ['get', '', '--prefix', '-w', 'json'])), want);
    assert.match(await ok(real.clientUrl, ['lease', 'list']), new RegExp(lease));
    const compacted = await etcdctl(real.clientUrl, ['get', 'a', '--rev=2']);
    assert.match(compacted.stderr, /required revision has been compacted/);
    await real.stop();
  });

  it('the real etcd snapshot, restored by etcdctl, boots etcd-ts with the same data', {
    skip: skipReal,
  }, async () => {
    const dir = tempDir();
    dirs.push(dir);
    const real = await startEtcdProcess({ bin: REAL_ETCD, dataDir: join(dir, 'e') });
    procs.push(real);
    const ep = real.clientUrl;
    await ok(ep, ['put', 'x', '1']);
    await ok(ep, ['put', 'y', '2']);
    await ok(ep, ['put', 'x', '3']);
    const lease = (await ok(ep, ['lease', 'grant', '600'])).split(' ')[1]!;
    await ok(ep, ['put', 'lz', 'q', `--lease=${lease}`]);
    const want = kvs(await ok(ep, ['get', '', '--prefix', '-w', 'json']));
    const snap = join(dir, 's.db');
    await ok(ep, ['snapshot', 'save', snap]);
    await real.stop();

    const peer = `http://127.0.0.1:${await freePort()}`;
    await restore(snap, join(dir, 'r'), peer);
    const ts = await startEtcdProcess({ dataDir: join(dir, 'r'), peerPort: Number(new URL(peer).port) });
    procs.push(ts);
    assert.match(ts.output(), /imported the bbolt backend/);
    assert.deepEqual(kvs(await ok(ts.clientUrl, ['get', '', '--prefix', '-w', 'json'])), want);
    assert.match(await ok(ts.clientUrl, ['lease', 'list']), new RegExp(lease));
    assert.equal(await ok(ts.clientUrl, ['put', 'after', '1']), 'OK\n');
    await ts.stop();
  });

  it('a damaged member/snap/db stops the start with a clear error', async () => {
    const dir = tempDir();
    dirs.push(dir);
    const { mkdirSync } = await import('node:fs');
    mkdirSync(join(dir, 'd', 'member', 'snap'), { recursive: true });
    writeFileSync(join(dir, 'd', 'member', 'snap', 'db'), Buffer.alloc(8192, 3));
    await assert.rejects(
      startEtcdProcess({ dataDir: join(dir, 'd'), timeoutMs: 10_000 }),
      /not a sound bbolt database/,
    );
  });
});
