// Interop with the real etcd 3.4 (skipped when /usr/bin/etcd or /usr/bin/etcdctl is absent):
// (a) our reader reads a snapshot that the real etcd streamed to `etcdctl snapshot save`;
// (b) a db from our writer passes `etcdctl snapshot status` (bbolt's Tx.Check) and
//     `etcdctl snapshot restore`, and the real etcd then serves its keys, revisions and lease.

import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Lease } from '../../gen/leasepb/lease.js';
import { KeyValue } from '../../gen/mvccpb/kv.js';
import {
  CLUSTER_VERSION_KEY,
  decodeLeaseKey,
  decodeMemberValue,
  decodeRevisionKey,
  decodeUint64BE,
  ETCD_34_BUCKET_NAMES,
  ETCD_BUCKETS,
  encodeLeaseKey,
  encodeMemberKey,
  encodeMemberValue,
  encodeRevisionKey,
  encodeUint64BE,
  META_KEYS,
} from './etcd-schema.js';
import { BboltReader } from './reader.js';
import { etcdctl, freePort, realEtcdAvailable, startEtcd } from './real-etcd.test-support.js';
import { type BucketInput, type KeyValuePair, writeBboltFile } from './writer.js';

const skip = realEtcdAvailable() ? false : 'real etcd/etcdctl not installed';

interface JsonKv {
  key: string;
  value?: string;
  create_revision: number;
  mod_revision: number;
  version: number;
  lease?: number | string;
}

async function getAll(endpoint: string): Promise<{ revision: number; kvs: JsonKv[] }> {
  const out = JSON.parse(await etcdctl(['get', '', '--prefix', '-w', 'json'], endpoint)) as {
    header: { revision: number };
    kvs?: JsonKv[];
  };
  return { revision: out.header.revision, kvs: out.kvs ?? [] };
}

const b64 = (s: string | undefined) => Buffer.from(s ?? '', 'base64').toString();

describe('interop with real etcd 3.4', { skip }, () => {
  let dir = '';
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bbolt-interop-'));
  });
  after(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('(a) reads a snapshot saved from a running etcd', async () => {
    const etcd = await startEtcd({ dataDir: join(dir, 'a-data') });
    try {
      const ep = etcd.endpoint;
      await etcdctl(['put', 'alpha', 'one'], ep);
      await etcdctl(['put', 'beta', 'two'], ep);
      await etcdctl(['put', 'alpha', 'three'], ep);
      await etcdctl(['put', 'gone', 'x'], ep);
      await etcdctl(['del', 'gone'], ep);
      const grant = await etcdctl(['lease', 'grant', '600'], ep);
      const leaseHex = /lease ([0-9a-f]+) granted/.exec(grant)?.[1];
      assert.ok(leaseHex, grant);
      const leaseId = BigInt(`0x${leaseHex}`);
      await etcdctl(['put', 'leased', 'v', `--lease=${leaseHex}`], ep);
      await etcdctl(['put', 'big', 'x'.repeat(20000)], ep);
      const live = await getAll(ep);

      const snap = join(dir, 'a.db');
      await etcdctl(['snapshot', 'save', snap], ep);
      const r = BboltReader.open(snap);
      try {
        // etcdctl keeps the stream as received: db + sha256 trailer, which the reader verifies.
        assert.equal(r.trailer, 'verified');
        assert.deepEqual(r.check(), []);
        const names = r.bucketNames().map(String);
        for (const b of ['key', 'meta', 'lease', 'members', 'cluster', 'auth', 'alarm'])
          assert.ok(names.includes(b), b);

        // Latest revision of each key in the key bucket == what etcd serves.
        const latest = new Map<string, { kv: KeyValue; tomb: boolean; main: bigint }>();
        let maxRev = 0n;
        for (const [k, v] of r.entries(ETCD_BUCKETS.key)) {
          const rev = decodeRevisionKey(k);
          const kv = KeyValue.decode(v);
          assert.ok(rev.main > maxRev || (rev.main === maxRev && rev.sub > 0n));
          maxRev = rev.main;
          latest.set(Buffer.from(kv.key).toString(), { kv, tomb: rev.tombstone, main: rev.main });
        }
        assert.equal(maxRev, BigInt(live.revision));
        assert.equal(latest.get('gone')?.tomb, true);
        const served = live.kvs.map((x) => b64(x.key)).sort();
        const fromDb = [...latest]
          .filter(([, e]) => !e.tomb)
          .map(([k]) => k)
          .sort();
        assert.deepEqual(fromDb, served);
        for (const x of live.kvs) {
          const e = latest.get(b64(x.key))!;
          assert.equal(e.kv.modRevision, Number(x.mod_revision));
          assert.equal(e.kv.createRevision, Number(x.create_revision));
          assert.equal(e.kv.version, Number(x.version));
          assert.equal(Buffer.from(e.kv.value).toString(), b64(x.value));
          assert.equal(e.main, BigInt(x.mod_revision));
        }
        assert.equal(latest.get('leased')!.kv.lease, leaseId);
        assert.equal(latest.get('alpha')!.kv.version, 2);

        const leases = [...r.entries(ETCD_BUCKETS.lease)];
        assert.equal(leases.length, 1);
        assert.equal(decodeLeaseKey(leases[0]![0]), leaseId);
        const lease = Lease.decode(leases[0]![1]);
        assert.equal(lease.ID, leaseId);
        assert.equal(lease.TTL, 600);

        assert.ok(decodeUint64BE(r.get(ETCD_BUCKETS.meta, META_KEYS.consistentIndex)!) > 0n);
        const members = [...r.entries(ETCD_BUCKETS.members)].map(([, v]) => decodeMemberValue(v));
        assert.equal(members.length, 1);
        assert.equal(members[0]!.name, 'n');
        assert.deepEqual(members[0]!.peerURLs, [etcd.peerUrl]);
        assert.match(r.get(ETCD_BUCKETS.cluster, CLUSTER_VERSION_KEY)!.toString(), /^3\.4\.\d+$/);
      } finally {
        r.close();
      }
    } finally {
      await etcd.stop();
    }
  });

  it('(b) a written db passes snapshot status and restore; etcd serves it', async () => {
    const leaseId = 0x1234abcdn;
    // History: rev 2 put foo=bar, rev 3 put foo=baz, rev 4 put leased (lease), rev 5 put zed,
    // rev 6 delete zed (tombstone), rev 7 put two keys in one txn (sub revisions 0 and 1).
    const kv = (key: string, value: string, create: number, mod: number, version: number, lease = 0n) =>
      Buffer.from(
        KeyValue.encode({
          key: Buffer.from(key),
          value: Buffer.from(value),
          createRevision: create,
          modRevision: mod,
          version,
          lease,
        }).finish(),
      );
    const keyBucket: KeyValuePair[] = [
      [encodeRevisionKey(2, 0), kv('foo', 'bar', 2, 2, 1)],
      [encodeRevisionKey(3, 0), kv('foo', 'baz', 2, 3, 2)],
      [encodeRevisionKey(4, 0), kv('leased', 'lv', 4, 4, 1, leaseId)],
      [encodeRevisionKey(5, 0), kv('zed', 'z', 5, 5, 1)],
      [
        encodeRevisionKey(6, 0, true),
        Buffer.from(
          KeyValue.encode({
            key: Buffer.from('zed'),
            value: Buffer.alloc(0),
            createRevision: 0,
            modRevision: 0,
            version: 0,
            lease: 0n,
          }).finish(),
        ),
      ],
      [encodeRevisionKey(7, 0), kv('t1', 'a', 7, 7, 1)],
      [encodeRevisionKey(7, 1), kv('t2', 'x'.repeat(10000), 7, 7, 1)],
    ];
    const content = new Map<string, KeyValuePair[]>();
    const set = (name: string, entries: KeyValuePair[]) => content.set(name, entries);
    set(ETCD_BUCKETS.key, keyBucket);
    set(ETCD_BUCKETS.meta, [[META_KEYS.consistentIndex, encodeUint64BE(10)]]);
    set(ETCD_BUCKETS.lease, [
      [
        encodeLeaseKey(leaseId),
        Buffer.from(Lease.encode({ ID: leaseId, TTL: 600, RemainingTTL: 0 }).finish()),
      ],
    ]);
    const oldMember = 0x8e9e05c52164694dn;
    set(ETCD_BUCKETS.members, [
      [
        encodeMemberKey(oldMember),
        encodeMemberValue({
          id: oldMember,
          name: 'old',
          peerURLs: ['http://127.0.0.1:1'],
          clientURLs: ['http://127.0.0.1:2'],
        }),
      ],
    ]);
    set(ETCD_BUCKETS.cluster, [[CLUSTER_VERSION_KEY, '3.4.0']]);

    // Every bucket etcd 3.4 creates, the unused ones empty.
    const buckets: BucketInput[] = ETCD_34_BUCKET_NAMES.map((name) => ({
      name,
      entries: content.get(name) ?? [],
    }));
    const db = join(dir, 'b.db');
    await writeBboltFile(db, buckets, { sha256Trailer: true });

    const status = JSON.parse(await etcdctl(['snapshot', 'status', db, '-w', 'json'])) as {
      revision: number;
      totalKey: number;
    };
    assert.equal(status.revision, 7);
    assert.equal(status.totalKey, keyBucket.length + 1 + 1 + 1 + 1);

    const peerPort = await freePort();
    const peer = `http://127.0.0.1:${peerPort}`;
    const dataDir = join(dir, 'b-data');
    await etcdctl([
      'snapshot',
      'restore',
      db,
      `--data-dir=${dataDir}`,
      '--name=n',
      `--initial-cluster=n=${peer}`,
      `--initial-advertise-peer-urls=${peer}`,
    ]);
    // Restore rewrote member/snap/db with bbolt itself; our reader reads the result too.
    const restored = BboltReader.open(join(dataDir, 'member', 'snap', 'db'));
    assert.equal(restored.count(ETCD_BUCKETS.key), keyBucket.length);
    restored.close();

    const etcd = await startEtcd({ dataDir, name: 'n', peerPort });
    try {
      const ep = etcd.endpoint;
      const all = await getAll(ep);
      assert.equal(all.revision, 7);
      const byKey = new Map(all.kvs.map((x) => [b64(x.key), x]));
      assert.deepEqual([...byKey.keys()].sort(), ['foo', 'leased', 't1', 't2']);
      const foo = byKey.get('foo')!;
      assert.equal(b64(foo.value), 'baz');
      assert.equal(Number(foo.create_revision), 2);
      assert.equal(Number(foo.mod_revision), 3);
      assert.equal(Number(foo.version), 2);
      assert.equal(BigInt(byKey.get('leased')!.lease!), leaseId);
      assert.equal(b64(byKey.get('t2')!.value).length, 10000);
      // Old revisions are readable too (nothing compacted).
      const old = JSON.parse(await etcdctl(['get', 'foo', '--rev=2', '-w', 'json'], ep)) as { kvs: JsonKv[] };
      assert.equal(b64(old.kvs[0]!.value), 'bar');
      const zedAt5 = JSON.parse(await etcdctl(['get', 'zed', '--rev=5', '-w', 'json'], ep)) as {
        kvs: JsonKv[];
      };
      assert.equal(b64(zedAt5.kvs[0]!.value), 'z');

      const leases = await etcdctl(['lease', 'list'], ep);
      assert.match(leases, new RegExp(leaseId.toString(16)));
      const ttl = await etcdctl(['lease', 'timetolive', leaseId.toString(16), '--keys'], ep);
      assert.match(ttl, /granted with TTL\(600s\)/);
      assert.match(ttl, /attached keys\(\[leased\]\)/);

      // And it keeps working as a normal store on top of the imported history.
      await etcdctl(['put', 'foo', 'new'], ep);
      const foo2 = JSON.parse(await etcdctl(['get', 'foo', '-w', 'json'], ep)) as { kvs: JsonKv[] };
      assert.equal(Number(foo2.kvs[0]!.mod_revision), 8);
      assert.equal(Number(foo2.kvs[0]!.version), 3);
    } finally {
      await etcd.stop();
    }
  });

  it('(c) random dbs from the writer pass bbolt Tx.Check via etcdctl snapshot status', async () => {
    let seed = 12345;
    const rnd = (n: number) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    for (const [pageSize, fillPercent, inlineBuckets] of [
      [4096, 0.9, true],
      [4096, 1, false],
      [4096, 0.5, true],
    ] as const) {
      const buckets: BucketInput[] = [];
      let total = 0;
      for (let b = 0; b < 6; b++) {
        const n = [0, 3, 50, 2000, 20000, 7][b]!;
        const pairs: KeyValuePair[] = [];
        for (let i = 0; i < n; i++) {
          const big = rnd(200) === 0;
          pairs.push([
            `k-${String(i).padStart(8, '0')}-${'p'.repeat(rnd(30))}`,
            Buffer.alloc(big ? 4000 + rnd(30000) : rnd(300), i & 0xff),
          ]);
        }
        total += n;
        buckets.push({ name: `bucket${b}`, entries: pairs });
      }
      buckets.push({ name: 'nested', entries: [{ name: 'child', entries: [['a', '1']] }, ['plain', 'v']] });
      total += 2;
      const db = join(dir, `c-${fillPercent}-${inlineBuckets}.db`);
      await writeBboltFile(db, buckets, { pageSize, fillPercent, inlineBuckets });
      const status = JSON.parse(await etcdctl(['snapshot', 'status', db, '-w', 'json'])) as {
        totalKey: number;
      };
      assert.equal(status.totalKey, total);
    }
  });
});
