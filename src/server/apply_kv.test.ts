import assert from 'node:assert/strict';
import { after, beforeEach, describe, test } from 'node:test';
import {
  CompactionRequest,
  type Compare,
  DeleteRangeRequest,
  RangeRequest_SortOrder as Order,
  PutRequest,
  Compare_CompareResult as R,
  RangeRequest,
  type ResponseHeader,
  Compare_CompareTarget as T,
  RangeRequest_SortTarget as Target,
  TxnRequest,
} from '../gen/etcdserverpb/rpc.js';
import type { KeyValue } from '../gen/mvccpb/kv.js';
import { MvccStore } from '../mvcc/store.js';
import { tempDirs } from '../testing/temp_dirs.js';
import { KvApplier } from './apply_kv.js';
import { Errors } from './errors.js';

const tmp = tempDirs('applykv-test-');

const B = (s: string) => Buffer.from(s, 'latin1');
const header = (revision: number): ResponseHeader => ({ clusterId: 1n, memberId: 2n, revision, raftTerm: 3 });

let store: MvccStore;
let kv: KvApplier;
let ci = 0;
const leases = new Set<bigint>([100n, 200n]);

beforeEach(async () => {
  if (store) await store.close();
  store = MvccStore.open({ dir: tmp(), noSync: true });
  kv = new KvApplier(store, header, { leaseExists: (id) => leases.has(id) });
});
after(async () => {
  await store?.close();
});

const apply = <X>(f: () => X): X => store.applyBatch(++ci, f);
const put = (key: string, value: string, extra: Partial<Parameters<typeof PutRequest.fromPartial>[0]> = {}) =>
  apply(() => kv.put(PutRequest.fromPartial({ key: B(key), value: B(value), ...extra })));
const range = (key: string, extra: Parameters<typeof RangeRequest.fromPartial>[0] = {}) =>
  kv.range(RangeRequest.fromPartial({ key: B(key), ...extra }));
const keysOf = (kvs: KeyValue[]) => kvs.map((x) => x.key.toString('latin1'));
const txn = (t: Parameters<typeof TxnRequest.fromPartial>[0]) =>
  apply(() => kv.txn(TxnRequest.fromPartial(t)));
const cmp = (c: Parameters<typeof Compare.fromPartial>[0]) => c;

describe('KvApplier.range', () => {
  beforeEach(() => {
    // values and revisions chosen so every sort target orders differently
    put('a', 'z'); // 2
    put('b', 'y'); // 3
    put('c', 'x'); // 4
    put('a', 'w'); // 5: a version 2
    put('d', 'y'); // 6
    put('a', 'v'); // 7: a version 3
  });

  test('header, count, single key, prefix, from key', () => {
    const r = range('a');
    assert.deepEqual(r.header, header(7));
    assert.equal(r.count, 1);
    assert.equal(r.more, false);
    assert.equal(r.kvs[0].value.toString(), 'v');
    assert.deepEqual(keysOf(range('b', { rangeEnd: B('d') }).kvs), ['b', 'c']);
    assert.deepEqual(keysOf(range('b', { rangeEnd: B('\0') }).kvs), ['b', 'c', 'd']);
    assert.deepEqual(keysOf(range('\0', { rangeEnd: B('\0') }).kvs), ['a', 'b', 'c', 'd']);
    assert.equal(range('zz').count, 0);
  });

  test('limit, more and count', () => {
    const r = range('a', { rangeEnd: B('\0'), limit: 2 });
    assert.deepEqual(keysOf(r.kvs), ['a', 'b']);
    assert.equal(r.more, true);
    assert.equal(r.count, 4);
    const r2 = range('a', { rangeEnd: B('\0'), limit: 4 });
    assert.equal(r2.more, false);
    assert.equal(r2.kvs.length, 4);
  });

  test('sort targets and orders', () => {
    const all = { rangeEnd: B('\0') };
    const sorted = (t: Target, o: Order) => keysOf(range('a', { ...all, sortTarget: t, sortOrder: o }).kvs);
    assert.deepEqual(sorted(Target.KEY, Order.DESCEND), ['d', 'c', 'b', 'a']);
    assert.deepEqual(sorted(Target.KEY, Order.NONE), ['a', 'b', 'c', 'd']);
    assert.deepEqual(sorted(Target.VALUE, Order.ASCEND), ['a', 'c', 'b', 'd']);
    assert.deepEqual(sorted(Target.VALUE, Order.DESCEND), ['b', 'd', 'c', 'a'], 'ties keep key order');
    assert.deepEqual(
      sorted(Target.VALUE, Order.NONE),
      ['a', 'c', 'b', 'd'],
      'non-key target defaults to ascending',
    );
    assert.deepEqual(sorted(Target.CREATE, Order.DESCEND), ['d', 'c', 'b', 'a']);
    assert.deepEqual(sorted(Target.MOD, Order.ASCEND), ['b', 'c', 'd', 'a']);
    assert.deepEqual(sorted(Target.VERSION, Order.DESCEND), ['a', 'b', 'c', 'd']);
    const r = range('a', { ...all, sortTarget: Target.MOD, sortOrder: Order.DESCEND, limit: 2 });
    assert.deepEqual(keysOf(r.kvs), ['a', 'd']);
    assert.equal(r.more, true);
    assert.equal(r.count, 4);
  });

  test('min/max mod/create revision filters; count is before filtering, as in etcd', () => {
    const all = { rangeEnd: B('\0') };
    assert.deepEqual(keysOf(range('a', { ...all, minModRevision: 4 }).kvs), ['a', 'c', 'd']);
    assert.deepEqual(keysOf(range('a', { ...all, maxModRevision: 4 }).kvs), ['b', 'c']);
    assert.deepEqual(keysOf(range('a', { ...all, minCreateRevision: 3, maxCreateRevision: 4 }).kvs), [
      'b',
      'c',
    ]);
    const r = range('a', { ...all, minCreateRevision: 3, limit: 1 });
    assert.deepEqual(keysOf(r.kvs), ['b']);
    assert.equal(r.more, true);
    assert.equal(r.count, 4);
  });

  test('keys_only, count_only, revision', () => {
    const k = range('a', { rangeEnd: B('\0'), keysOnly: true });
    assert.ok(k.kvs.every((x) => x.value.length === 0));
    assert.equal(k.kvs[0].version, 3);
    const c = range('a', { rangeEnd: B('\0'), countOnly: true, limit: 1 });
    assert.deepEqual([c.kvs.length, c.count, c.more], [0, 4, false]);
    const old = range('a', { rangeEnd: B('\0'), revision: 3 });
    assert.deepEqual(keysOf(old.kvs), ['a', 'b']);
    assert.equal(old.kvs[0].value.toString(), 'z');
    assert.equal(old.header!.revision, 7, 'the header carries the current revision');
    assert.throws(
      () => range('a', { revision: 8 }),
      (e) => e === Errors.futureRev,
    );
  });

  test('compacted revisions', async () => {
    const { response, done } = apply(() => kv.compact(CompactionRequest.fromPartial({ revision: 5 })));
    assert.deepEqual(response.header, header(7));
    await done;
    assert.throws(
      () => range('a', { revision: 4 }),
      (e) => e === Errors.compacted,
    );
    assert.equal(
      range('a', { revision: 5 }).kvs[0].value.toString(),
      'w',
      'the compaction revision itself is readable',
    );
    assert.throws(
      () => apply(() => kv.compact(CompactionRequest.fromPartial({ revision: 5 }))),
      (e) => e === Errors.compacted,
    );
    assert.throws(
      () => apply(() => kv.compact(CompactionRequest.fromPartial({ revision: 8 }))),
      (e) => e === Errors.futureRev,
    );
  });
});

describe('KvApplier.put and deleteRange', () => {
  test('put: revision, prev_kv, lease', () => {
    const r1 = put('k', 'v1', { prevKv: true });
    assert.deepEqual(r1.header, header(2));
    assert.equal(r1.prevKv, undefined);
    const r2 = put('k', 'v2', { prevKv: true, lease: 100n });
    assert.equal(r2.prevKv!.value.toString(), 'v1');
    assert.equal(range('k').kvs[0].lease, 100n);
    assert.throws(
      () => put('k', 'v3', { lease: 999n }),
      (e) => e === Errors.leaseNotFound,
    );
    assert.equal(store.currentRevision, 3);
  });

  test('ignore_value and ignore_lease keep the previous value/lease; they need the key', () => {
    assert.throws(
      () => put('k', '', { ignoreValue: true }),
      (e) => e === Errors.keyNotFound,
    );
    assert.throws(
      () => put('k', 'v', { ignoreLease: true }),
      (e) => e === Errors.keyNotFound,
    );
    assert.equal(store.currentRevision, 1);
    put('k', 'v1', { lease: 200n });
    put('k', '', { ignoreValue: true, lease: 100n });
    let x = range('k').kvs[0];
    assert.deepEqual([x.value.toString(), x.lease, x.version], ['v1', 100n, 2]);
    put('k', 'v2', { ignoreLease: true });
    x = range('k').kvs[0];
    assert.deepEqual([x.value.toString(), x.lease, x.version], ['v2', 100n, 3]);
  });

  test('deleteRange: deleted count, prev_kvs, revision only when something is deleted', () => {
    put('a', '1');
    put('b', '2');
    put('c', '3');
    const none = apply(() => kv.deleteRange(DeleteRangeRequest.fromPartial({ key: B('x') })));
    assert.deepEqual([none.deleted, none.header!.revision], [0, 4]);
    const r = apply(() =>
      kv.deleteRange(DeleteRangeRequest.fromPartial({ key: B('a'), rangeEnd: B('c'), prevKv: true })),
    );
    assert.equal(r.deleted, 2);
    assert.deepEqual(keysOf(r.prevKvs), ['a', 'b']);
    assert.equal(r.prevKvs[1].value.toString(), '2');
    assert.deepEqual(r.header, header(5));
    const r2 = apply(() =>
      kv.deleteRange(DeleteRangeRequest.fromPartial({ key: B('a'), rangeEnd: B('\0') })),
    );
    assert.deepEqual([r2.deleted, r2.prevKvs.length, r2.header!.revision], [1, 0, 6]);
    put('a', 'again');
    const x = range('a').kvs[0];
    assert.deepEqual([x.createRevision, x.version], [7, 1]);
  });
});

describe('KvApplier.txn', () => {
  test('compares on every target, success and failure branches, one revision', () => {
    put('k', 'v', { lease: 100n }); // 2
    const ok = txn({
      compare: [
        cmp({ key: B('k'), target: T.VERSION, result: R.EQUAL, version: 1n }),
        cmp({ key: B('k'), target: T.CREATE, result: R.EQUAL, createRevision: 2n }),
        cmp({ key: B('k'), target: T.MOD, result: R.LESS, modRevision: 3n }),
        cmp({ key: B('k'), target: T.VALUE, result: R.EQUAL, value: B('v') }),
        cmp({ key: B('k'), target: T.LEASE, result: R.EQUAL, lease: 100n }),
        cmp({ key: B('k'), target: T.VALUE, result: R.GREATER, value: B('a') }),
        cmp({ key: B('k'), target: T.VERSION, result: R.NOT_EQUAL, version: 5n }),
      ],
      success: [
        { requestPut: { key: B('x'), value: B('1') } },
        { requestPut: { key: B('y'), value: B('2') } },
        { requestRange: { key: B('x'), rangeEnd: B('z') } },
        { requestDeleteRange: { key: B('k'), prevKv: true } },
      ],
      failure: [{ requestPut: { key: B('fail'), value: B('1') } }],
    });
    assert.equal(ok.succeeded, true);
    assert.deepEqual(ok.header, header(3));
    assert.equal(store.currentRevision, 3);
    const [p1, p2, rr, dr] = ok.responses;
    assert.equal(p1.responsePut!.header!.revision, 3);
    assert.equal(p2.responsePut!.header!.revision, 3);
    assert.deepEqual(keysOf(rr.responseRange!.kvs), ['x', 'y'], 'reads see earlier writes of the txn');
    assert.equal(rr.responseRange!.header!.revision, 3);
    assert.equal(dr.responseDeleteRange!.deleted, 1);
    assert.equal(dr.responseDeleteRange!.prevKvs[0].value.toString(), 'v');
    assert.equal(range('x').kvs[0].modRevision, 3);

    const fail = txn({
      compare: [cmp({ key: B('x'), target: T.VALUE, result: R.EQUAL, value: B('nope') })],
      success: [{ requestPut: { key: B('s'), value: B('1') } }],
      failure: [{ requestRange: { key: B('x') } }],
    });
    assert.equal(fail.succeeded, false);
    assert.equal(fail.responses[0].responseRange!.kvs[0].value.toString(), '1');
    assert.deepEqual(fail.header, header(3), 'a txn that writes nothing makes no revision');
  });

  test('compares on missing keys and ranges', () => {
    put('a1', '1');
    put('a2', '2');
    const t = (c: ReturnType<typeof cmp>) => txn({ compare: [c] }).succeeded;
    // a missing key has version/create/mod/lease 0; a value compare on it always fails
    assert.equal(t(cmp({ key: B('nope'), target: T.VERSION, result: R.EQUAL, version: 0n })), true);
    assert.equal(t(cmp({ key: B('nope'), target: T.CREATE, result: R.EQUAL })), true);
    assert.equal(t(cmp({ key: B('nope'), target: T.VALUE, result: R.NOT_EQUAL, value: B('x') })), false);
    // with range_end every key in the range must satisfy the compare
    assert.equal(
      t(cmp({ key: B('a'), rangeEnd: B('b'), target: T.VERSION, result: R.EQUAL, version: 1n })),
      true,
    );
    assert.equal(
      t(cmp({ key: B('a'), rangeEnd: B('b'), target: T.VALUE, result: R.EQUAL, value: B('1') })),
      false,
    );
    assert.equal(
      t(cmp({ key: B('a'), rangeEnd: B('\0'), target: T.MOD, result: R.GREATER, modRevision: 1n })),
      true,
    );
    assert.equal(
      t(cmp({ key: B('a'), rangeEnd: B('\0'), target: T.MOD, result: R.GREATER, modRevision: 2n })),
      false,
    );
    // a huge compare operand
    assert.equal(t(cmp({ key: B('a1'), target: T.MOD, result: R.LESS, modRevision: 2n ** 62n })), true);
  });

  test('nested txns: compares see the state before the txn; paths through nested branches', () => {
    put('k', '1'); // 2
    const r = txn({
      compare: [cmp({ key: B('k'), target: T.VALUE, result: R.EQUAL, value: B('1') })],
      success: [
        { requestPut: { key: B('k'), value: B('2') } },
        {
          requestTxn: {
            // evaluated before the put above: k is still '1'
            compare: [cmp({ key: B('k'), target: T.VALUE, result: R.EQUAL, value: B('1') })],
            success: [
              { requestPut: { key: B('inner'), value: B('yes') } },
              {
                requestTxn: {
                  compare: [cmp({ key: B('zz'), target: T.VERSION, result: R.GREATER, version: 0n })],
                  success: [{ requestPut: { key: B('deep-s'), value: B('1') } }],
                  failure: [{ requestPut: { key: B('deep-f'), value: B('1') } }],
                },
              },
            ],
            failure: [{ requestPut: { key: B('inner-f'), value: B('no') } }],
          },
        },
        { requestRange: { key: B('deep-f') } },
      ],
    });
    assert.equal(r.succeeded, true);
    assert.deepEqual(r.header, header(3));
    const inner = r.responses[1].responseTxn!;
    assert.equal(inner.succeeded, true);
    assert.equal(inner.header!.revision, 0);
    assert.equal(inner.responses[1].responseTxn!.succeeded, false);
    assert.equal(r.responses[2].responseRange!.count, 1);
    assert.deepEqual(keysOf(range('a', { rangeEnd: B('\0') }).kvs), ['deep-f', 'inner', 'k']);
    assert.equal(range('k').kvs[0].value.toString(), '2');
  });

  test('checks run before any write: ignore_value on a missing key, unknown lease, bad revisions', () => {
    put('k', '1');
    const before = store.currentRevision;
    assert.throws(
      () =>
        txn({
          success: [
            { requestPut: { key: B('a'), value: B('1') } },
            { requestPut: { key: B('m'), ignoreValue: true } },
          ],
        }),
      (e) => e === Errors.keyNotFound,
    );
    assert.throws(
      () =>
        txn({
          success: [
            { requestPut: { key: B('a'), value: B('1') } },
            { requestPut: { key: B('b'), lease: 5n } },
          ],
        }),
      (e) => e === Errors.leaseNotFound,
    );
    assert.throws(
      () =>
        txn({
          success: [
            { requestPut: { key: B('a'), value: B('1') } },
            { requestRange: { key: B('k'), revision: 3 } },
          ],
        }),
      (e) => e === Errors.futureRev,
    );
    // only the chosen branch is checked
    const ok = txn({
      compare: [cmp({ key: B('k'), target: T.VERSION, result: R.EQUAL, version: 9n })],
      success: [{ requestPut: { key: B('m'), ignoreValue: true } }],
      failure: [{ requestPut: { key: B('k'), ignoreValue: true } }],
    });
    assert.equal(ok.succeeded, false);
    assert.equal(store.currentRevision, before + 1);
    assert.equal(range('a').count, 0);
  });

  test('a read-only txn runs outside a batch and answers at the current revision', () => {
    put('k', '1');
    const r = kv.txn(
      TxnRequest.fromPartial({
        compare: [{ key: B('k'), target: T.VERSION, result: R.EQUAL, version: 1n }],
        success: [{ requestRange: { key: B('k') } }],
      }),
    );
    assert.equal(r.succeeded, true);
    assert.deepEqual(r.header, header(2));
    assert.equal(r.responses[0].responseRange!.kvs[0].value.toString(), '1');
    assert.throws(
      () => kv.txn(TxnRequest.fromPartial({ success: [{ requestRange: { key: B('k'), revision: 5 } }] })),
      (e) => e === Errors.futureRev,
    );
  });
});
