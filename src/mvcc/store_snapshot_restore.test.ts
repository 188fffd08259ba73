// MvccStore.restoreFromBbolt: the in-place replacement of the backend by a leader's snapshot db.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { tempDirs } from '../testing/temp_dirs.js';
import { CompactedError } from './errors.js';
import { writeStoreSnapshot } from './snapshot.js';
import { MvccStore, type RestoreInfo } from './store.js';
import { WatchableStore, type WatchDelivery } from './watchable_store.js';

const tmp = tempDirs('mvcc-restore-test-');

const B = (s: string) => Buffer.from(s, 'latin1');

function put(s: MvccStore, ci: number, key: string, value: string, lease = 0n): number {
  return s.applyBatch(ci, () => {
    const t = s.txnWrite();
    t.put(B(key), B(value), lease);
    return t.end();
  });
}

function del(s: MvccStore, ci: number, key: string): number {
  return s.applyBatch(ci, () => {
    const t = s.txnWrite();
    t.deleteRange(B(key), undefined);
    return t.end();
  });
}

function keys(s: MvccStore): string[] {
  return s.range(B('\0'), Buffer.from([0])).kvs.map((kv) => `${kv.key}=${kv.value}`);
}

/** A leader-side store with history, a compaction and an extra bucket; returns its bbolt copy. */
async function leaderDb(): Promise<{ path: string; leader: MvccStore }> {
  const leader = MvccStore.open({ dir: tmp() });
  let ci = 10;
  for (let i = 0; i < 50; i++) put(leader, ++ci, `k${i % 7}`, `v${i}`, i % 5 === 0 ? 7n : 0n);
  del(leader, ++ci, 'k3');
  await leader.compact(30).done;
  put(leader, ++ci, 'late', 'x');
  leader.applyBatch(++ci, () => leader.bucket('members').putSync(B('abc'), B('{"id":2748}')));
  const path = join(tmp(), 'snap.db');
  await writeStoreSnapshot(leader, path);
  return { path, leader };
}

describe('MvccStore.restoreFromBbolt', () => {
  test('replaces data, revisions, compaction point and consistent index in place', async () => {
    const { path, leader } = await leaderDb();
    const s = MvccStore.open({ dir: tmp() });
    put(s, 1, 'old', 'gone');
    put(s, 2, 'k1', 'stale');
    s.bucket('lease').putSync(B('stale-lease'), B('x'));
    s.bucket('members').putSync(B('dead'), B('{"id":3}'));
    const events: number[] = [];
    s.onChanges((rev) => events.push(rev));
    const restored: RestoreInfo[] = [];
    s.onRestore((info) => restored.push(info));

    const info = s.restoreFromBbolt(path);

    assert.equal(restored.length, 1);
    assert.equal(info.consistentIndex, leader.consistentIndex);
    assert.equal(s.consistentIndex, leader.consistentIndex);
    assert.equal(s.currentRevision, leader.currentRevision);
    assert.equal(s.compactRevision, 30);
    assert.deepEqual(keys(s), keys(leader));
    assert.ok(!keys(s).some((k) => k.startsWith('old=')));
    assert.deepEqual(s.hashKV(0), leader.hashKV(0));
    assert.throws(() => s.range(B('k1'), undefined, { rev: 29 }), CompactedError);
    // old revision history after the compaction point is readable, as on the leader
    assert.deepEqual(s.range(B('k1'), undefined, { rev: 40 }), leader.range(B('k1'), undefined, { rev: 40 }));
    // buckets above the store: stale entries gone, the leader's present
    assert.equal(s.bucket('lease').get(B('stale-lease')), undefined);
    assert.equal(s.bucket('members').get(B('dead')), undefined);
    assert.equal(s.bucket('members').get(B('abc'))?.toString(), '{"id":2748}');
    assert.deepEqual(
      s.leasedKeys().map((k) => `${k.key}:${k.lease}`),
      leader.leasedKeys().map((k) => `${k.key}:${k.lease}`),
    );
    // a restore is not a change event
    assert.deepEqual(events, []);

    // writes continue from the restored revision and consistent index
    const rev = put(s, info.consistentIndex + 1, 'after', 'y');
    assert.equal(rev, leader.currentRevision + 1);
    assert.deepEqual(events, [rev]);
    assert.equal(s.consistentIndex, info.consistentIndex + 1);
    await s.close();
    await leader.close();
  });

  test('survives a reopen', async () => {
    const { path, leader } = await leaderDb();
    const dir = tmp();
    const s = MvccStore.open({ dir });
    put(s, 1, 'old', 'gone');
    s.restoreFromBbolt(path);
    await s.close();
    const r = MvccStore.open({ dir });
    assert.equal(r.currentRevision, leader.currentRevision);
    assert.equal(r.consistentIndex, leader.consistentIndex);
    assert.equal(r.compactRevision, 30);
    assert.deepEqual(keys(r), keys(leader));
    assert.deepEqual(r.hashKV(0), leader.hashKV(0));
    await r.close();
    await leader.close();
  });

  test('abandons a compaction of the old data that is still running', async () => {
    const { path, leader } = await leaderDb();
    const s = MvccStore.open({ dir: tmp(), compactionBatchLimit: 1 });
    let ci = 0;
    for (let i = 0; i < 200; i++) put(s, ++ci, `x${i % 3}`, `v${i}`);
    const release = s.pauseBackgroundWrites(); // the compaction stops before its backend phase
    const { done } = s.compact(150);
    await new Promise((r) => setTimeout(r, 20));
    s.restoreFromBbolt(path);
    release();
    await done;
    await s.compactionsDone();
    // the leader's data is intact: nothing of it was deleted by the old compaction
    assert.equal(s.compactRevision, 30);
    assert.deepEqual(keys(s), keys(leader));
    assert.deepEqual(s.hashKV(0), leader.hashKV(0));
    await s.close();
    await leader.close();
  });

  test('refuses a file that is not a bbolt database and leaves the store as it was', async () => {
    const s = MvccStore.open({ dir: tmp() });
    put(s, 1, 'a', '1');
    const bad = join(tmp(), 'bad.db');
    (await import('node:fs')).writeFileSync(bad, Buffer.alloc(10000, 7));
    assert.throws(() => s.restoreFromBbolt(bad));
    assert.deepEqual(keys(s), ['a=1']);
    assert.equal(s.consistentIndex, 1);
    await s.close();
  });
});

describe('watchers across an in-place restore', () => {
  const turn = () => new Promise<void>((r) => setImmediate(r));
  async function settle(w: WatchableStore): Promise<void> {
    for (let i = 0; i < 1000; i++) {
      await turn();
      if (w.stats().unsynced === 0) return;
    }
    throw new Error(`watchers did not sync: ${JSON.stringify(w.stats())}`);
  }
  function collect(w: WatchableStore) {
    const got: WatchDelivery[] = [];
    const ws = w.newStream({
      send: (d) => {
        got.push(d);
        return true;
      },
    });
    const summary = () =>
      got.map((d) =>
        d.compactRevision > 0
          ? `compacted@${d.compactRevision}`
          : `${d.revision}:${d.events.map((e) => `${e.kv!.key}=${e.kv!.value}@${e.kv!.modRevision}`).join(',')}`,
      );
    return { ws, summary };
  }

  test('a watcher catches up with what the restored backend holds beyond what it saw, then goes on live', async () => {
    // the leader: revisions 2..6 (k1 at 2 and 5); the follower saw up to revision 2 before it lagged
    const leader = MvccStore.open({ dir: tmp() });
    put(leader, 1, 'k1', 'a'); // 2
    put(leader, 2, 'k2', 'b'); // 3
    put(leader, 3, 'zz', 'c'); // 4
    put(leader, 4, 'k1', 'd'); // 5
    del(leader, 5, 'k2'); // 6
    const path = join(tmp(), 'snap.db');
    await writeStoreSnapshot(leader, path);

    const s = MvccStore.open({ dir: tmp() });
    const w = new WatchableStore(s);
    put(s, 1, 'k1', 'a'); // 2, as on the leader
    const { ws, summary } = collect(w);
    ws.watch({ key: B('k'), end: B('l') });
    s.restoreFromBbolt(path);
    await settle(w);
    put(s, 6, 'k1', 'e'); // 7
    assert.deepEqual(summary(), ['6:k2=b@3,k1=d@5,k2=@6', '7:k1=e@7']);
    w.close();
    await s.close();
    await leader.close();
  });

  test('a watcher behind the restored compaction point is canceled with the compact revision', async () => {
    const leader = MvccStore.open({ dir: tmp() });
    for (let i = 1; i <= 10; i++) put(leader, i, 'k', `v${i}`); // 2..11
    await leader.compact(8).done;
    const path = join(tmp(), 'snap.db');
    await writeStoreSnapshot(leader, path);

    const s = MvccStore.open({ dir: tmp() });
    const w = new WatchableStore(s);
    put(s, 1, 'k', 'v1'); // 2
    const { ws, summary } = collect(w);
    ws.watch({ key: B('k') });
    s.restoreFromBbolt(path);
    await settle(w);
    assert.deepEqual(summary(), ['compacted@8']);
    assert.deepEqual(ws.ids(), []);
    w.close();
    await s.close();
    await leader.close();
  });
});
