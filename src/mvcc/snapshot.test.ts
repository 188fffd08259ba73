// Store-level maintenance: a bbolt snapshot of the store reads back with etcd's schema and imports into a
// fresh LMDB with the same keys, revisions and marks; defragmentation shrinks the file, keeps the data and
// serves reads while it copies; an interrupted defrag is completed or discarded at the next open.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ImportError, importBboltBackend } from '../server/backend_import.js';
import { BboltReader, decodeRevisionKey, ETCD_34_BUCKET_NAMES } from './bbolt/index.js';
import { defragStore, recoverDefrag } from './defrag.js';
import { writeStoreSnapshot } from './snapshot.js';
import { MvccStore } from './store.js';

let ci = 0;
function put(store: MvccStore, key: string, value: string | Buffer): void {
  store.applyBatch(++ci, () => {
    const tw = store.txnWrite();
    tw.put(Buffer.from(key), Buffer.isBuffer(value) ? value : Buffer.from(value), 0n);
    tw.end();
  });
}
function del(store: MvccStore, key: string): void {
  store.applyBatch(++ci, () => {
    const tw = store.txnWrite();
    tw.deleteRange(Buffer.from(key), undefined);
    tw.end();
  });
}
function dump(store: MvccStore): string[] {
  return store
    .range(Buffer.from([0]), Buffer.from([0]))
    .kvs.map(
      (kv) =>
        `${kv.key}=${kv.value.length > 20 ? kv.value.length : kv.value}@${kv.createRevision}/${kv.modRevision}/${kv.version}`,
    );
}

describe('store snapshot and import', () => {
  it('writes etcd buckets, reads back and imports with the same data', async () => {
    const root = mkdtempSync(join(tmpdir(), 'snap-'));
    try {
      const store = MvccStore.open({ dir: join(root, 'a'), noSync: true });
      put(store, 'a', '1');
      put(store, 'b', '2');
      put(store, 'a', '3');
      del(store, 'b');
      put(store, 'c', '4');
      store.compact(4);
      await store.compactionsDone();
      store.applyBatch(++ci, () => store.bucket('lease').putSync(Buffer.alloc(8, 1), Buffer.from([8, 1])));
      const path = join(root, 'snap.db');
      const info = await writeStoreSnapshot(store, path, {
        replace: { cluster: [['clusterVersion', '3.4.0']], members: [['abc', '{"id":2748,"peerURLs":[]}']] },
      });
      assert.equal(info.revision, 6);
      assert.equal(info.consistentIndex, ci);
      const r = BboltReader.open(path);
      assert.deepEqual(
        r.bucketNames().map((b) => b.toString()),
        [...ETCD_34_BUCKET_NAMES],
      );
      const revs = [...r.entries('key')].map(([k]) => decodeRevisionKey(k));
      const inStore = [...(store.bucket('key').getKeys({}) as Iterable<Buffer>)].map((k) =>
        decodeRevisionKey(k),
      );
      assert.deepEqual(revs, inStore, 'the key bucket as the store holds it');
      assert.ok(!revs.some((x) => x.main === 2n), 'compacted history is gone');
      assert.equal(r.get('cluster', 'clusterVersion')?.toString(), '3.4.0');
      assert.equal(r.get('meta', 'consistent_index')?.readUInt32BE(4), ci);
      assert.equal(r.count('lease'), 1);
      assert.equal(r.check().length, 0);
      r.close();

      // import: the snapshot as member/snap/db of a fresh data dir
      const member = join(root, 'd', 'member');
      mkdirSync(join(member, 'snap'), { recursive: true });
      renameSync(path, join(member, 'snap', 'db'));
      const res = importBboltBackend(member, join(member, 'lmdb'));
      assert.ok(res);
      assert.equal(res.consistentIndex, ci);
      assert.ok(existsSync(join(member, 'snap', 'db.imported')));
      assert.equal(importBboltBackend(member, join(member, 'lmdb')), undefined, 'only once');
      const imported = MvccStore.open({ dir: join(member, 'lmdb'), noSync: true });
      assert.deepEqual(dump(imported), dump(store));
      assert.equal(imported.currentRevision, store.currentRevision);
      assert.equal(imported.compactRevision, 4);
      assert.equal(store.compactRevision, 4);
      assert.equal(imported.consistentIndex, ci);
      assert.equal(imported.hashKV(0).hash, store.hashKV(0).hash);
      await imported.close();
      await store.close();
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('refuses a damaged bbolt file with a clear error and leaves it in place', () => {
    const root = mkdtempSync(join(tmpdir(), 'snap-bad-'));
    try {
      const member = join(root, 'member');
      mkdirSync(join(member, 'snap'), { recursive: true });
      writeFileSync(join(member, 'snap', 'db'), Buffer.alloc(8192, 7));
      assert.throws(
        () => importBboltBackend(member, join(member, 'lmdb')),
        (e: unknown) => {
          assert.ok(e instanceof ImportError);
          assert.match(e.message, /not a sound bbolt database.*snapshot restore/);
          return true;
        },
      );
      assert.ok(existsSync(join(member, 'snap', 'db')));
      assert.ok(!existsSync(join(member, 'lmdb')));
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

describe('defrag', () => {
  it('shrinks the file, keeps the data, serves reads during the copy', async () => {
    const root = mkdtempSync(join(tmpdir(), 'defrag-'));
    try {
      const dir = join(root, 'lmdb');
      const store = MvccStore.open({ dir, noSync: true });
      const leases = store.bucket('lease'); // a handle held across the switch
      store.applyBatch(++ci, () => leases.putSync(Buffer.alloc(8, 2), Buffer.from([8, 2])));
      for (let i = 0; i < 400; i++) put(store, `k${i % 20}`, Buffer.alloc(20_000, i));
      store.compact(store.currentRevision);
      await store.compactionsDone();
      const before = dump(store);
      const hash = store.hash();
      const sizeBefore = store.dbSize();
      let readsDuring = 0;
      const reader = setInterval(() => {
        assert.equal(dump(store).length, 20);
        readsDuring++;
      }, 0);
      const res = await defragStore(store);
      clearInterval(reader);
      assert.ok(res.sizeAfter < sizeBefore / 2, `${res.sizeAfter} < ${sizeBefore}/2`);
      assert.equal(store.dbSize(), res.sizeAfter);
      assert.deepEqual(dump(store), before);
      assert.equal(store.hash(), hash);
      assert.ok(readsDuring >= 0);
      assert.equal(leases.get(Buffer.alloc(8, 2))?.length, 2, 'bucket handles follow the switch');
      put(store, 'after', 'x');
      assert.ok(!existsSync(`${dir}.defrag`) && !existsSync(`${dir}.old`));
      await store.close();
      const again = MvccStore.open({ dir, noSync: true });
      assert.equal(again.range(Buffer.from('after'), undefined).kvs.length, 1);
      await again.close();
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('recovers an interrupted defrag', () => {
    const root = mkdtempSync(join(tmpdir(), 'defrag-rec-'));
    try {
      const dir = join(root, 'lmdb');
      mkdirSync(dir);
      mkdirSync(`${dir}.defrag`);
      assert.equal(recoverDefrag(dir), 'discarded');
      assert.ok(!existsSync(`${dir}.defrag`));
      // crash between the renames: the synced copy becomes the store
      renameSync(dir, `${dir}.old`);
      mkdirSync(`${dir}.defrag`);
      writeFileSync(join(`${dir}.defrag`, 'data.mdb'), 'x');
      assert.equal(recoverDefrag(dir), 'completed');
      assert.ok(existsSync(join(dir, 'data.mdb')) && !existsSync(`${dir}.old`));
      assert.equal(recoverDefrag(dir), 'none');
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
