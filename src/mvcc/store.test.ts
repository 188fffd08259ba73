import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type Event, Event_EventType } from '../gen/mvccpb/kv.js';
import { tempDirs } from '../testing/temp_dirs.js';
import { CompactedError, FutureRevisionError } from './errors.js';
import { bytesToRev, isTombstoneKey } from './revision.js';
import { MvccStore } from './store.js';

const tmp = tempDirs('mvcc-test-');

const B = (s: string) => Buffer.from(s, 'latin1');
const ALL = Buffer.from([0]);
let ci = 0;

function put(s: MvccStore, key: string, value: string, lease = 0n): number {
  return s.applyBatch(++ci, () => {
    const t = s.txnWrite();
    t.put(B(key), B(value), lease);
    return t.end();
  });
}

function del(s: MvccStore, key: string, end?: string): number {
  return s.applyBatch(++ci, () => {
    const t = s.txnWrite();
    t.deleteRange(B(key), end === undefined ? undefined : B(end));
    return t.end();
  });
}

function get(s: MvccStore, key: string, rev = 0) {
  const r = s.range(B(key), undefined, { rev });
  return r.kvs[0];
}

function keys(s: MvccStore, key: string, end: Buffer | undefined, opts = {}) {
  return s.range(B(key), end, opts).kvs.map((kv) => kv.key.toString('latin1'));
}

/** Revision keys on disk: [main, sub, tombstone]. */
function onDisk(s: MvccStore): Array<[number, number, boolean]> {
  const out: Array<[number, number, boolean]> = [];
  for (const k of s.bucket('key').getKeys({}) as Iterable<Buffer>) {
    const r = bytesToRev(k);
    out.push([r.main, r.sub, isTombstoneKey(k)]);
  }
  return out;
}

describe('MvccStore', () => {
  test('an empty store starts at revision 1, never compacted', async () => {
    const s = MvccStore.open({ dir: tmp(), noSync: true });
    assert.equal(s.currentRevision, 1);
    assert.equal(s.compactRevision, -1);
    assert.equal(s.consistentIndex, 0);
    assert.deepEqual(s.range(B('a'), ALL), { kvs: [], count: 0, rev: 1 });
    await s.close();
  });

  test('versions, create and mod revisions across delete and re-put', async () => {
    const s = MvccStore.open({ dir: tmp(), noSync: true });
    assert.equal(put(s, 'foo', 'a'), 2);
    assert.equal(put(s, 'foo', 'b', 7n), 3);
    let kv = get(s, 'foo');
    assert.deepEqual(
      { c: kv.createRevision, m: kv.modRevision, v: kv.version, val: kv.value.toString(), l: kv.lease },
      { c: 2, m: 3, v: 2, val: 'b', l: 7n },
    );
    assert.equal(del(s, 'foo'), 4);
    assert.equal(get(s, 'foo'), undefined);
    assert.equal(del(s, 'foo'), 4, 'deleting nothing makes no revision');
    assert.equal(put(s, 'foo', 'c'), 5);
    kv = get(s, 'foo');
    assert.deepEqual([kv.createRevision, kv.modRevision, kv.version, kv.lease], [5, 5, 1, 0n]);
    // history stays readable
    assert.equal(get(s, 'foo', 2).value.toString(), 'a');
    assert.equal(get(s, 'foo', 3).version, 2);
    assert.equal(get(s, 'foo', 4), undefined);
    assert.equal(get(s, 'foo', 1), undefined);
    await s.close();
  });

  test('a long history reads right at every revision', async () => {
    const s = MvccStore.open({ dir: tmp(), noSync: true });
    s.applyBatch(++ci, () => {
      for (let i = 0; i < 300; i++) {
        const t = s.txnWrite();
        if (i % 50 === 49) t.deleteRange(B('k'), undefined);
        else t.put(B('k'), B(String(i)), 0n);
        if (i % 7 === 0) t.put(B('other'), B(String(i)), 0n);
        t.end();
      }
    });
    for (let i = 0; i < 300; i++) {
      const kv = get(s, 'k', i + 2);
      if (i % 50 === 49) assert.equal(kv, undefined);
      else {
        assert.equal(kv.value.toString(), String(i));
        assert.equal(kv.modRevision, i + 2);
        assert.equal(kv.version, (i % 50) + 1);
        assert.equal(kv.createRevision, i - (i % 50) + 2);
      }
    }
    await s.close();
  });

  test('one txn is one revision with sub revisions, and sees its own writes', async () => {
    const s = MvccStore.open({ dir: tmp(), noSync: true });
    put(s, 'x', '0');
    const rev = s.applyBatch(++ci, () => {
      const t = s.txnWrite();
      assert.equal(t.range(B('a'), ALL).rev, 2);
      t.put(B('a'), B('1'), 0n);
      t.put(B('b'), B('2'), 0n);
      const r = t.range(B('a'), ALL);
      assert.equal(r.rev, 3);
      assert.deepEqual(
        r.kvs.map((kv) => kv.key.toString()),
        ['a', 'b', 'x'],
      );
      const prevs = t.deleteRange(B('x'), undefined);
      assert.equal(prevs[0].value.toString(), '0');
      t.put(B('a'), B('3'), 0n);
      assert.equal(t.range(B('a'), undefined).kvs[0].version, 2);
      return t.end();
    });
    assert.equal(rev, 3);
    assert.equal(s.currentRevision, 3);
    assert.deepEqual(onDisk(s), [
      [2, 0, false],
      [3, 0, false],
      [3, 1, false],
      [3, 2, true],
      [3, 3, false],
    ]);
    const a = get(s, 'a');
    assert.deepEqual([a.createRevision, a.modRevision, a.version, a.value.toString()], [3, 3, 2, '3']);
    await s.close();
  });

  test('ranges: single key, [key, end), from key, all keys, limit and count, count only', async () => {
    const s = MvccStore.open({ dir: tmp(), noSync: true });
    for (const k of ['a', 'ab', 'abc', 'b', 'c\xff', 'd']) put(s, k, `v-${k}`);
    assert.deepEqual(keys(s, 'ab', undefined), ['ab']);
    assert.deepEqual(keys(s, 'a', B('b')), ['a', 'ab', 'abc']);
    assert.deepEqual(keys(s, 'ab', B('ac')), ['ab', 'abc']);
    assert.deepEqual(keys(s, 'b', ALL), ['b', 'c\xff', 'd']);
    assert.deepEqual(keys(s, '\0', ALL), ['a', 'ab', 'abc', 'b', 'c\xff', 'd']);
    assert.deepEqual(keys(s, 'c', B('c\xff\xff')), ['c\xff']);
    assert.deepEqual(keys(s, 'b', B('a')), [], 'an inverted range is empty');
    const r = s.range(B('a'), ALL, { limit: 2 });
    assert.deepEqual(
      r.kvs.map((kv) => kv.key.toString()),
      ['a', 'ab'],
    );
    assert.equal(r.count, 6);
    const c = s.range(B('a'), B('b'), { countOnly: true });
    assert.deepEqual(c, { kvs: [], count: 3, rev: 7 });
    // at an older revision
    assert.deepEqual(keys(s, 'a', ALL, { rev: 3 }), ['a', 'ab']);
    assert.throws(() => s.range(B('a'), undefined, { rev: 8 }), FutureRevisionError);
    await s.close();
  });

  test('a failed batch leaves nothing behind, in memory or on disk', async () => {
    const dir = tmp();
    let s = MvccStore.open({ dir, noSync: true });
    put(s, 'a', '1');
    const seen: number[] = [];
    s.onChanges((rev) => seen.push(rev));
    assert.throws(
      () =>
        s.applyBatch(100, () => {
          let t = s.txnWrite();
          t.put(B('a'), B('2'), 0n);
          t.put(B('new'), B('x'), 0n);
          t.end();
          t = s.txnWrite();
          t.deleteRange(B('a'), ALL);
          t.end();
          throw new Error('boom');
        }),
      /boom/,
    );
    assert.equal(s.currentRevision, 2);
    assert.equal(s.consistentIndex, ci);
    assert.equal(get(s, 'a').value.toString(), '1');
    assert.equal(get(s, 'a').version, 1);
    assert.equal(get(s, 'new'), undefined);
    assert.deepEqual(seen, []);
    assert.equal(put(s, 'a', '3'), 3);
    assert.equal(get(s, 'a').version, 2);
    assert.deepEqual(seen, [3]);
    await s.close();
    s = MvccStore.open({ dir, noSync: true });
    assert.deepEqual(keys(s, 'a', ALL), ['a']);
    assert.equal(get(s, 'a').version, 2);
    await s.close();
  });

  test('TxnWrite.abort undoes one txn and keeps the rest of the batch', async () => {
    const s = MvccStore.open({ dir: tmp(), noSync: true });
    put(s, 'a', '1');
    s.applyBatch(++ci, () => {
      let t = s.txnWrite();
      t.put(B('b'), B('1'), 0n);
      t.end();
      t = s.txnWrite();
      t.put(B('c'), B('1'), 0n);
      t.deleteRange(B('a'), undefined);
      t.abort();
      t = s.txnWrite();
      t.put(B('d'), B('1'), 0n);
      t.end();
    });
    assert.equal(s.currentRevision, 4);
    assert.deepEqual(keys(s, 'a', ALL), ['a', 'b', 'd']);
    assert.deepEqual(
      onDisk(s).map((r) => r[0]),
      [2, 3, 4],
    );
    await s.close();
  });

  test('misuse is refused', async () => {
    const s = MvccStore.open({ dir: tmp(), noSync: true });
    assert.throws(() => s.txnWrite(), /outside applyBatch/);
    assert.throws(() => s.applyBatch(1, () => s.applyBatch(2, () => 0)), /reentrant/);
    assert.throws(() => s.applyBatch(1, () => s.txnWrite()), /not ended/);
    assert.equal(s.currentRevision, 1);
    await s.close();
  });

  test('the consistent index is stored with the data and survives a restart', async () => {
    const dir = tmp();
    let s = MvccStore.open({ dir });
    s.applyBatch(41, () => {});
    s.applyBatch(42, () => {
      const t = s.txnWrite();
      t.put(B('k'), B('v'), 0n);
      t.end();
    });
    assert.equal(s.consistentIndex, 42);
    await s.close();
    s = MvccStore.open({ dir });
    assert.equal(s.consistentIndex, 42);
    assert.equal(s.currentRevision, 2);
    assert.equal(get(s, 'k').value.toString(), 'v');
    await s.close();
  });

  test('change events: one call per revision, after commit, with lazy prev kvs', async () => {
    const s = MvccStore.open({ dir: tmp(), noSync: true });
    const got: Array<[number, Event[]]> = [];
    const off = s.onChanges((rev, evs) => got.push([rev, evs]));
    put(s, 'a', '1', 5n);
    s.applyBatch(++ci, () => {
      const t = s.txnWrite();
      t.put(B('a'), B('2'), 0n);
      t.put(B('b'), B('x'), 0n);
      t.end();
      const t2 = s.txnWrite();
      t2.deleteRange(B('a'), B('c'));
      t2.end();
      assert.equal(got.length, 1, 'not before the commit');
    });
    assert.deepEqual(
      got.map(([rev, evs]) => [
        rev,
        evs.map((e) => [
          e.type,
          e.kv!.key.toString(),
          e.kv!.value.toString(),
          e.kv!.modRevision,
          e.prevKv?.value.toString(),
        ]),
      ]),
      [
        [2, [[Event_EventType.PUT, 'a', '1', 2, undefined]]],
        [
          3,
          [
            [Event_EventType.PUT, 'a', '2', 3, '1'],
            [Event_EventType.PUT, 'b', 'x', 3, undefined],
          ],
        ],
        [
          4,
          [
            [Event_EventType.DELETE, 'a', '', 4, '2'],
            [Event_EventType.DELETE, 'b', '', 4, 'x'],
          ],
        ],
      ],
    );
    assert.deepEqual(
      s
        .history(2, 4)
        .map((h) => [h.rev, h.events.map((e) => [e.type, e.kv!.key.toString(), e.kv!.modRevision])]),
      [
        [2, [[Event_EventType.PUT, 'a', 2]]],
        [
          3,
          [
            [Event_EventType.PUT, 'a', 3],
            [Event_EventType.PUT, 'b', 3],
          ],
        ],
        [
          4,
          [
            [Event_EventType.DELETE, 'a', 4],
            [Event_EventType.DELETE, 'b', 4],
          ],
        ],
      ],
    );
    assert.equal(s.history(2, 4, 1).length, 1);
    off();
    put(s, 'z', '1');
    assert.equal(got.length, 3);
    await s.close();
  });

  test('compaction keeps the latest revision of each key at or below it and removes the rest', async () => {
    const dir = tmp();
    let s = MvccStore.open({ dir, noSync: true, compactionBatchLimit: 2 });
    put(s, 'a', '1'); // 2
    put(s, 'a', '2'); // 3
    put(s, 'b', '1'); // 4
    del(s, 'b'); // 5
    put(s, 'c', '1'); // 6
    put(s, 'a', '3'); // 7
    del(s, 'c'); // 8
    put(s, 'c', '2'); // 9
    assert.throws(() => s.compact(10), FutureRevisionError);
    const { done } = s.compact(6);
    assert.equal(s.compactRevision, 6);
    assert.throws(() => s.range(B('a'), undefined, { rev: 5 }), CompactedError);
    assert.throws(() => s.compact(6), CompactedError);
    assert.throws(() => s.compact(3), CompactedError);
    await done;
    // a: 3 kept (latest <= 6), 7 above; b: tombstone 5 gone with everything before; c: 6, 8t, 9 above
    assert.deepEqual(
      onDisk(s).map((r) => r[0]),
      [3, 6, 7, 8, 9],
    );
    assert.equal(get(s, 'a', 6).value.toString(), '2');
    assert.equal(get(s, 'a', 6).version, 2);
    assert.equal(get(s, 'b', 6), undefined);
    assert.equal(get(s, 'c', 6).value.toString(), '1');
    assert.deepEqual(keys(s, 'a', ALL, { rev: 6 }), ['a', 'c']);
    assert.equal(get(s, 'a').version, 3);
    assert.equal(get(s, 'c').version, 1);
    await s.close();
    s = MvccStore.open({ dir, noSync: true });
    assert.equal(s.compactRevision, 6);
    assert.equal(s.currentRevision, 9);
    assert.equal(get(s, 'a').version, 3);
    assert.equal(get(s, 'a').createRevision, 2);
    assert.equal(get(s, 'c', 6).value.toString(), '1');
    await s.close();
  });

  test('compaction removes a key deleted at or below it from the index', async () => {
    const s = MvccStore.open({ dir: tmp(), noSync: true });
    put(s, 'a', '1');
    del(s, 'a');
    put(s, 'b', '1');
    assert.equal(s.indexedKeys, 2);
    await s.compact(3).done;
    assert.equal(s.indexedKeys, 1);
    assert.deepEqual(
      onDisk(s).map((r) => r[0]),
      [4],
    );
    await s.close();
  });

  test('the current revision survives compacting away trailing deletes', async () => {
    const dir = tmp();
    let s = MvccStore.open({ dir, noSync: true });
    put(s, 'a', '1');
    del(s, 'a');
    await s.compact(3).done;
    assert.deepEqual(onDisk(s), []);
    await s.close();
    s = MvccStore.open({ dir, noSync: true });
    assert.equal(s.currentRevision, 3);
    assert.equal(s.compactRevision, 3);
    assert.equal(put(s, 'a', '2'), 4);
    await s.close();
  });

  test('an interrupted compaction is finished at the next open', async () => {
    const dir = tmp();
    let s = MvccStore.open({ dir, noSync: true, compactionBatchLimit: 1 });
    for (let i = 0; i < 20; i++) put(s, 'k', String(i));
    s.compact(15);
    await s.close(); // before the background work ran
    s = MvccStore.open({ dir, noSync: true });
    assert.equal(s.compactRevision, 15);
    await s.compactionsDone();
    assert.deepEqual(
      onDisk(s).map((r) => r[0]),
      [15, 16, 17, 18, 19, 20, 21],
    );
    assert.equal(get(s, 'k').version, 20);
    await s.close();
  });

  test('pauseBackgroundWrites holds compaction batches until released', async () => {
    const s = MvccStore.open({ dir: tmp(), noSync: true, compactionBatchLimit: 1 });
    for (let i = 0; i < 10; i++) put(s, 'k', String(i));
    const release = s.pauseBackgroundWrites();
    const { done } = s.compact(8);
    let finished = false;
    void done.then(() => {
      finished = true;
    });
    for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
    assert.equal(finished, false);
    assert.equal(onDisk(s).length, 10, 'nothing removed while paused');
    assert.equal(get(s, 'k', 8).value.toString(), '6', 'reads at the compaction point work meanwhile');
    release();
    release(); // idempotent
    await done;
    assert.deepEqual(
      onDisk(s).map((r) => r[0]),
      [8, 9, 10, 11],
    );
    await s.close();
  });

  test('compact inside a batch takes effect with the batch', async () => {
    const s = MvccStore.open({ dir: tmp(), noSync: true });
    put(s, 'a', '1');
    put(s, 'a', '2');
    assert.throws(() =>
      s.applyBatch(++ci, () => {
        s.compact(2);
        throw new Error('boom');
      }),
    );
    assert.equal(s.compactRevision, -1);
    const { done } = s.applyBatch(++ci, () => s.compact(2));
    assert.equal(s.compactRevision, 2);
    await done;
    assert.deepEqual(
      onDisk(s).map((r) => r[0]),
      [2, 3],
    );
    await s.close();
  });

  test('hashKV: stable across restart, and the same while a compaction is in progress as after it', async () => {
    const dir = tmp();
    let s = MvccStore.open({ dir, noSync: true, compactionBatchLimit: 1 });
    for (let i = 0; i < 10; i++) put(s, `k${i % 3}`, String(i));
    del(s, 'k1');
    const h1 = s.hashKV(0);
    assert.equal(h1.hashRevision, 12);
    assert.equal(h1.compactRevision, -1);
    assert.deepEqual(s.hashKV(0), h1);
    const h8 = s.hashKV(8);
    assert.notEqual(h8.hash, h1.hash);
    await s.close();
    s = MvccStore.open({ dir, noSync: true, compactionBatchLimit: 1 });
    assert.deepEqual(s.hashKV(0), h1);
    assert.deepEqual(s.hashKV(8), h8);
    const { done } = s.compact(9);
    const during = s.hashKV(0);
    await done;
    const afterwards = s.hashKV(0);
    assert.deepEqual(during, afterwards);
    assert.equal(afterwards.compactRevision, 9);
    assert.throws(() => s.hashKV(9), CompactedError);
    assert.throws(() => s.hashKV(13), FutureRevisionError);
    await s.close();
    s = MvccStore.open({ dir, noSync: true });
    assert.deepEqual(s.hashKV(0), afterwards);
    const h = s.hash();
    assert.equal(typeof h, 'number');
    s.applyBatch(999, () => {});
    assert.equal(s.hash(), h, 'the consistent index is not part of hash()');
    await s.close();
  });

  test('hashKVAsync equals hashKV, also with writes and compaction going on during it', async () => {
    const s = MvccStore.open({ dir: tmp(), noSync: true, compactionBatchLimit: 100 });
    s.applyBatch(++ci, () => {
      for (let i = 0; i < 12000; i++) {
        const t = s.txnWrite();
        t.put(B(`k${i % 3000}`), B(String(i)), 0n);
        t.end();
      }
    });
    const want = s.hashKV(0);
    const wantOld = s.hashKV(5000);
    const p = s.hashKVAsync(0);
    await new Promise((r) => setImmediate(r));
    put(s, 'k1', 'changed');
    const { done } = s.compact(9000);
    assert.deepEqual(await p, want);
    await done;
    const after = s.hashKV(0);
    assert.deepEqual(await s.hashKVAsync(0), after);
    await assert.rejects(s.hashKVAsync(5000), CompactedError);
    assert.notEqual(wantOld.hash, want.hash);
    await s.close();
  });

  test('hashKV of the same history is the same in two stores', async () => {
    const run = async () => {
      const s = MvccStore.open({ dir: tmp(), noSync: true });
      for (let i = 0; i < 5; i++) put(s, `k${i}`, 'v', BigInt(i));
      del(s, 'k2');
      const h = [s.hashKV(0).hash, s.hashKV(3).hash, s.hash()];
      await s.close();
      return h;
    };
    assert.deepEqual(await run(), await run());
  });

  test('leasedKeys lists live keys with a lease', async () => {
    const dir = tmp();
    let s = MvccStore.open({ dir, noSync: true });
    put(s, 'a', '1', 10n);
    put(s, 'b', '1', 11n);
    put(s, 'b', '2');
    put(s, 'c', '1', 12n);
    del(s, 'c');
    const expect = [{ key: B('a'), lease: 10n }];
    assert.deepEqual(s.leasedKeys(), expect);
    await s.close();
    s = MvccStore.open({ dir, noSync: true });
    assert.deepEqual(s.leasedKeys(), expect);
    await s.close();
  });

  test('large values', async () => {
    const s = MvccStore.open({ dir: tmp(), noSync: true });
    const big = Buffer.alloc(3 * 1024 * 1024, 7);
    big[big.length - 1] = 1;
    put(s, 'big', big.toString('latin1'));
    put(s, 'small', 'x');
    const r = s.range(B('big'), B('t'));
    assert.ok(r.kvs[0].value.equals(big));
    assert.equal(r.kvs[1].value.toString(), 'x');
    await s.close();
  });

  test('sizes', async () => {
    const s = MvccStore.open({ dir: tmp(), noSync: true });
    for (let i = 0; i < 100; i++) put(s, `k${i}`, 'x'.repeat(1000));
    assert.ok(s.dbSize() > 100_000);
    assert.ok(s.dbSizeInUse() > 100_000);
    assert.ok(s.dbSizeInUse() <= s.dbSize());
    await s.close();
  });
});
