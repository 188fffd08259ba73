// Property test: MvccStore + KvApplier against a simple model (a full copy of the key space per revision)
// over random sequences of put / delete / txn / compact / range at random revisions, with restarts.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  CompactionRequest,
  type Compare,
  Compare_CompareResult as CR,
  Compare_CompareTarget as CT,
  DeleteRangeRequest,
  RangeRequest_SortOrder as Order,
  PutRequest,
  RangeRequest,
  type RequestOp,
  type ResponseOp,
  RangeRequest_SortTarget as Target,
  TxnRequest,
} from '../gen/etcdserverpb/rpc.js';
import type { KeyValue } from '../gen/mvccpb/kv.js';
import { bytesToRev, isTombstoneKey } from '../mvcc/revision.js';
import { MvccStore } from '../mvcc/store.js';
import { KvApplier } from './apply_kv.js';
import { Errors } from './errors.js';
import { checkTxnRequest } from './kv_validate.js';

// ---- the model ----

interface MKv {
  value: string;
  create: number;
  mod: number;
  version: number;
  lease: bigint;
}
type State = Map<string, MKv>;

const cmpStr = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

function inRange(k: string, key: string, end: string): boolean {
  if (end === '') return k === key;
  if (end === '\0') return k >= key;
  return k >= key && k < end;
}

function sortedKeys(s: State, key: string, end: string): string[] {
  return [...s.keys()].filter((k) => inRange(k, key, end)).sort(cmpStr);
}

class Model {
  states: State[] = [new Map(), new Map()]; // index = revision; revision 1 is the empty store
  rev = 1;
  compactRev = -1;

  view(rev: number): State {
    if (rev > this.rev) throw Errors.futureRev;
    if (rev <= 0) rev = this.rev;
    if (rev < this.compactRev) throw Errors.compacted;
    return this.states[rev];
  }
}

interface ModelRange {
  kvs: Array<[string, MKv]>;
  more: boolean;
  count: number;
}

function modelRange(s: State, r: RangeRequest): ModelRange {
  const key = r.key.toString('latin1');
  const end = r.rangeEnd.toString('latin1');
  const ks = sortedKeys(s, key, end);
  let kvs: Array<[string, MKv]> = r.countOnly ? [] : ks.map((k) => [k, s.get(k)!]);
  if (r.minModRevision) kvs = kvs.filter(([, v]) => v.mod >= r.minModRevision);
  // etcd 3.4's applier fetches only limit+1 keys (in key order) when no sort order is given, even if
  // a non-key sort target then sorts them: a quirk etcd-ts keeps, so clients see the same answers
  if (r.sortOrder === Order.NONE && !r.minModRevision && r.limit > 0) kvs = kvs.slice(0, r.limit + 1);
  if (r.sortOrder !== Order.NONE || r.sortTarget !== Target.KEY) {
    const sign = r.sortOrder === Order.DESCEND ? -1 : 1;
    const f = (x: [string, MKv]) =>
      r.sortTarget === Target.MOD ? x[1].mod : r.sortTarget === Target.VERSION ? x[1].version : 0;
    kvs = kvs.slice().sort((a, b) => sign * (r.sortTarget === Target.KEY ? cmpStr(a[0], b[0]) : f(a) - f(b)));
  }
  let more = false;
  if (r.limit > 0 && kvs.length > r.limit) {
    kvs = kvs.slice(0, r.limit);
    more = true;
  }
  return { kvs, more, count: ks.length };
}

function modelCompare(s: State, c: Compare): boolean {
  const ks = sortedKeys(s, c.key.toString('latin1'), c.rangeEnd.toString('latin1'));
  const one = (v: MKv | undefined) => {
    let r = 0;
    switch (c.target) {
      case CT.VALUE:
        r = Buffer.compare(B(v!.value), c.value ?? B(''));
        break;
      case CT.VERSION:
        r = Math.sign((v?.version ?? 0) - Number(c.version ?? 0n));
        break;
      case CT.MOD:
        r = Math.sign((v?.mod ?? 0) - Number(c.modRevision ?? 0n));
        break;
      case CT.CREATE:
        r = Math.sign((v?.create ?? 0) - Number(c.createRevision ?? 0n));
        break;
    }
    return c.result === CR.EQUAL
      ? r === 0
      : c.result === CR.NOT_EQUAL
        ? r !== 0
        : c.result === CR.GREATER
          ? r > 0
          : r < 0;
  };
  if (ks.length === 0) return c.target === CT.VALUE ? false : one(undefined);
  return ks.every((k) => one(s.get(k)));
}

/** Expected results of ops, in the shape checked against the applier's responses. */
type Expect =
  | { range: ModelRange }
  | { put: number; prev?: MKv }
  | { del: number; rev: number }
  | { txn: boolean; responses: Expect[] };

function modelTxn(m: Model, t: TxnRequest): { expect: Expect; next: State; changed: boolean } {
  const before = m.states[m.rev];
  const next = new Map(before);
  const newRev = m.rev + 1;
  let changed = false;
  // the path is decided on the state before the txn
  const decide = (tx: TxnRequest): boolean => tx.compare.every((c) => modelCompare(before, c));
  const run = (tx: TxnRequest): Expect => {
    const ok = decide(tx);
    const responses: Expect[] = [];
    for (const op of ok ? tx.success : tx.failure) {
      if (op.requestRange) {
        responses.push({ range: modelRange(next, op.requestRange) });
      } else if (op.requestPut) {
        const p = op.requestPut;
        const k = p.key.toString('latin1');
        const prev = next.get(k);
        next.set(k, {
          value: p.value.toString('latin1'),
          create: prev ? prev.create : newRev,
          mod: newRev,
          version: (prev?.version ?? 0) + 1,
          lease: p.lease,
        });
        changed = true;
        responses.push({ put: newRev, prev });
      } else if (op.requestDeleteRange) {
        const d = op.requestDeleteRange;
        const ks = sortedKeys(next, d.key.toString('latin1'), d.rangeEnd.toString('latin1'));
        for (const k of ks) next.delete(k);
        if (ks.length > 0) changed = true;
        responses.push({ del: ks.length, rev: changed ? newRev : m.rev });
      } else if (op.requestTxn) {
        responses.push(run(op.requestTxn));
      }
    }
    return { txn: ok, responses };
  };
  const expect = run(t);
  return { expect, next, changed };
}

// ---- comparing ----

const B = (s: string) => Buffer.from(s, 'latin1');

function sameKv(kv: KeyValue, [k, v]: [string, MKv]) {
  assert.deepEqual(
    [
      kv.key.toString('latin1'),
      kv.value.toString('latin1'),
      kv.createRevision,
      kv.modRevision,
      kv.version,
      kv.lease,
    ],
    [k, v.value, v.create, v.mod, v.version, v.lease],
  );
}

function sameRange(got: { kvs: KeyValue[]; more: boolean; count: number }, want: ModelRange) {
  assert.equal(got.count, want.count);
  assert.equal(got.more, want.more);
  assert.equal(got.kvs.length, want.kvs.length);
  for (let i = 0; i < got.kvs.length; i++) sameKv(got.kvs[i], want.kvs[i]);
}

function sameResponse(got: ResponseOp, want: Expect) {
  if ('range' in want) sameRange(got.responseRange!, want.range);
  else if ('put' in want) assert.equal(got.responsePut!.header!.revision, want.put);
  else if ('del' in want) {
    assert.equal(got.responseDeleteRange!.deleted, want.del);
    assert.equal(got.responseDeleteRange!.header!.revision, want.rev);
  } else {
    assert.equal(got.responseTxn!.succeeded, want.txn);
    const rs = got.responseTxn!.responses;
    assert.equal(rs.length, want.responses.length);
    for (let i = 0; i < rs.length; i++) sameResponse(rs[i], want.responses[i]);
  }
}

// ---- generators ----

const KEYS = ['a', 'a/1', 'a/2', 'b', 'b\xff', 'c'];
const ENDS = ['', '', '', '\0', 'a0', 'b', 'c', 'd'];
const keyArb = fc.constantFrom(...KEYS);
const endArb = fc.constantFrom(...ENDS);
const valArb = fc.constantFrom('x', 'y', 'zz', '');

const rangeArb = fc.record({
  key: keyArb,
  end: endArb,
  limit: fc.constantFrom(0, 0, 1, 2),
  countOnly: fc.constantFrom(false, false, false, false, true),
  sortTarget: fc.constantFrom(Target.KEY, Target.KEY, Target.MOD, Target.VERSION),
  sortOrder: fc.constantFrom(Order.NONE, Order.NONE, Order.ASCEND, Order.DESCEND),
  minMod: fc.constantFrom(0, 0, 0, 3),
});
const toRange = (r: Rr, revision = 0) =>
  RangeRequest.fromPartial({
    key: B(r.key),
    rangeEnd: B(r.end),
    limit: r.limit,
    countOnly: r.countOnly,
    sortTarget: r.sortTarget,
    sortOrder: r.sortOrder,
    minModRevision: r.minMod,
    revision,
  });
type Rr = {
  key: string;
  end: string;
  limit: number;
  countOnly: boolean;
  sortTarget: Target;
  sortOrder: Order;
  minMod: number;
};

const putArb = fc.record({
  key: keyArb,
  value: valArb,
  lease: fc.constantFrom(0n, 0n, 100n),
  prevKv: fc.boolean(),
});
const delArb = fc.record({ key: keyArb, end: endArb, prevKv: fc.boolean() });
const compareArb = fc.record({
  key: keyArb,
  end: fc.constantFrom('', '', '\0', 'b'),
  target: fc.constantFrom(CT.VERSION, CT.VALUE, CT.MOD, CT.CREATE),
  result: fc.constantFrom(CR.EQUAL, CR.NOT_EQUAL, CR.GREATER, CR.LESS),
  n: fc.integer({ min: 0, max: 6 }),
  value: valArb,
});

const opArb: fc.Arbitrary<RequestOp> = fc.oneof(
  putArb.map((p) => ({
    requestPut: PutRequest.fromPartial({ key: B(p.key), value: B(p.value), lease: p.lease }),
  })),
  delArb.map((d) => ({
    requestDeleteRange: DeleteRangeRequest.fromPartial({ key: B(d.key), rangeEnd: B(d.end) }),
  })),
  rangeArb.map((r) => ({ requestRange: toRange(r) })),
);

const toCompare = (c: Cc): Compare => ({
  key: B(c.key),
  rangeEnd: B(c.end),
  target: c.target,
  result: c.result,
  ...(c.target === CT.VALUE
    ? { value: B(c.value) }
    : c.target === CT.VERSION
      ? { version: BigInt(c.n) }
      : c.target === CT.MOD
        ? { modRevision: BigInt(c.n * 3) }
        : { createRevision: BigInt(c.n * 3) }),
});
type Cc = { key: string; end: string; target: CT; result: CR; n: number; value: string };

const txnArb: fc.Arbitrary<TxnRequest> = fc
  .record({
    compare: fc.array(compareArb, { maxLength: 2 }),
    success: fc.array(opArb, { maxLength: 4 }),
    failure: fc.array(opArb, { maxLength: 3 }),
    nested: fc.option(
      fc.record({
        compare: fc.array(compareArb, { maxLength: 2 }),
        success: fc.array(opArb, { maxLength: 3 }),
        failure: fc.array(opArb, { maxLength: 3 }),
      }),
      { freq: 3 },
    ),
  })
  .map((t) => {
    const success = [...t.success];
    if (t.nested) {
      success.splice(1, 0, {
        requestTxn: TxnRequest.fromPartial({
          compare: t.nested.compare.map(toCompare),
          success: t.nested.success,
          failure: t.nested.failure,
        }),
      });
    }
    return TxnRequest.fromPartial({ compare: t.compare.map(toCompare), success, failure: t.failure });
  });

type Cmd =
  | { t: 'put'; p: { key: string; value: string; lease: bigint; prevKv: boolean }; ignoreValue: boolean }
  | { t: 'del'; d: { key: string; end: string; prevKv: boolean } }
  | { t: 'txn'; txn: TxnRequest }
  | { t: 'compact'; frac: number }
  | { t: 'range'; r: Rr; frac: number }
  | { t: 'restart' }
  | { t: 'awaitCompaction' };

const cmdArb: fc.Arbitrary<Cmd> = fc.oneof(
  {
    arbitrary: fc
      .record({ p: putArb, ignoreValue: fc.constantFrom(false, false, false, false, true) })
      .map(({ p, ignoreValue }) => ({ t: 'put' as const, p, ignoreValue })),
    weight: 6,
  },
  { arbitrary: delArb.map((d) => ({ t: 'del' as const, d })), weight: 2 },
  { arbitrary: txnArb.map((txn) => ({ t: 'txn' as const, txn })), weight: 4 },
  {
    arbitrary: fc
      .oneof(fc.constant(1), fc.double({ min: 0, max: 1.1, noNaN: true }))
      .map((frac) => ({ t: 'compact' as const, frac })),
    weight: 1,
  },
  {
    arbitrary: fc
      .record({ r: rangeArb, frac: fc.double({ min: -0.1, max: 1.1, noNaN: true }) })
      .map(({ r, frac }) => ({ t: 'range' as const, r, frac })),
    weight: 4,
  },
  { arbitrary: fc.constant({ t: 'restart' as const }), weight: 1 },
  { arbitrary: fc.constant({ t: 'awaitCompaction' as const }), weight: 1 },
);

// ---- the run ----

const header = (revision: number) => ({ clusterId: 0n, memberId: 0n, revision, raftTerm: 0 });

/** Runs f; returns its result, or the EtcdError it threw. */
function attempt<X>(f: () => X): X | { error: unknown } {
  try {
    return f();
  } catch (e) {
    return { error: e };
  }
}

async function runCommands(cmds: Cmd[]): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'mvcc-prop-'));
  let store = MvccStore.open({ dir, noSync: true, compactionBatchLimit: 3 });
  let kv = new KvApplier(store, header, { leaseExists: (id) => id === 100n });
  const m = new Model();
  let ci = 0;
  const apply = <X>(f: () => X) => attempt(() => store.applyBatch(++ci, f));

  const checkDisk = () => {
    // after compaction at c, of every revision <= c only the live keys' latest revisions remain
    if (m.compactRev < 1) return;
    const onDisk: number[] = [];
    for (const k of store.bucket('key').getKeys({}) as Iterable<Buffer>) {
      const r = bytesToRev(k);
      if (r.main <= m.compactRev) {
        assert.ok(!isTombstoneKey(k), 'no tombstone at or below the compaction point');
        onDisk.push(r.main);
      }
    }
    const want = [...m.states[m.compactRev].values()].map((v) => v.mod).filter((r) => r <= m.compactRev);
    assert.deepEqual(
      onDisk.sort((a, b) => a - b),
      want.sort((a, b) => a - b),
    );
  };

  try {
    for (const c of cmds) {
      switch (c.t) {
        case 'put': {
          const req = PutRequest.fromPartial({
            key: B(c.p.key),
            value: c.ignoreValue ? B('') : B(c.p.value),
            lease: c.p.lease,
            prevKv: c.p.prevKv,
            ignoreValue: c.ignoreValue,
          });
          const got = apply(() => kv.put(req));
          const prev = m.states[m.rev].get(c.p.key);
          if (c.ignoreValue && !prev) {
            assert.deepEqual(got, { error: Errors.keyNotFound });
            break;
          }
          assert.ok(!('error' in got), String((got as { error: unknown }).error));
          const next = new Map(m.states[m.rev]);
          next.set(c.p.key, {
            value: c.ignoreValue ? prev!.value : c.p.value,
            create: prev ? prev.create : m.rev + 1,
            mod: m.rev + 1,
            version: (prev?.version ?? 0) + 1,
            lease: c.p.lease,
          });
          m.states.push(next);
          m.rev++;
          assert.equal(got.header!.revision, m.rev);
          if (c.p.prevKv && prev) sameKv(got.prevKv!, [c.p.key, prev]);
          else assert.equal(got.prevKv, undefined);
          break;
        }
        case 'del': {
          const req = DeleteRangeRequest.fromPartial({
            key: B(c.d.key),
            rangeEnd: B(c.d.end),
            prevKv: c.d.prevKv,
          });
          const got = apply(() => kv.deleteRange(req));
          assert.ok(!('error' in got));
          const before = m.states[m.rev];
          const ks = sortedKeys(before, c.d.key, c.d.end);
          assert.equal(got.deleted, ks.length);
          assert.equal(got.prevKvs.length, c.d.prevKv ? ks.length : 0);
          for (let i = 0; i < got.prevKvs.length; i++) sameKv(got.prevKvs[i], [ks[i], before.get(ks[i])!]);
          if (ks.length > 0) {
            const next = new Map(before);
            for (const k of ks) next.delete(k);
            m.states.push(next);
            m.rev++;
          }
          assert.equal(got.header!.revision, m.rev);
          break;
        }
        case 'txn': {
          try {
            checkTxnRequest(c.txn, 128);
          } catch {
            break; // rejected before proposal: nothing to compare
          }
          const got = apply(() => kv.txn(c.txn));
          const { expect, next, changed } = modelTxn(m, c.txn);
          assert.ok(!('error' in got), String((got as { error: unknown }).error));
          if (changed) {
            m.states.push(next);
            m.rev++;
          }
          assert.equal(got.header!.revision, m.rev);
          assert.equal(got.succeeded, (expect as { txn: boolean }).txn);
          const want = (expect as { responses: Expect[] }).responses;
          assert.equal(got.responses.length, want.length);
          for (let i = 0; i < want.length; i++) sameResponse(got.responses[i], want[i]);
          break;
        }
        case 'compact': {
          const rev = Math.round(c.frac * m.rev);
          const got = apply(() => kv.compact(CompactionRequest.fromPartial({ revision: rev })));
          if (rev <= m.compactRev) assert.deepEqual(got, { error: Errors.compacted });
          else if (rev > m.rev) assert.deepEqual(got, { error: Errors.futureRev });
          else {
            assert.ok(!('error' in got));
            m.compactRev = rev;
          }
          break;
        }
        case 'range': {
          const rev = Math.round(c.frac * m.rev);
          const req = toRange(c.r, rev);
          const got = attempt(() => kv.range(req));
          const want = attempt(() => modelRange(m.view(rev), req));
          if ('error' in want) {
            assert.deepEqual(got, want);
          } else {
            assert.ok(!('error' in got), String((got as { error: unknown }).error));
            sameRange(got, want);
            assert.equal(got.header!.revision, m.rev);
          }
          break;
        }
        case 'restart': {
          const h = store.hashKV(0);
          await store.close();
          store = MvccStore.open({ dir, noSync: true, compactionBatchLimit: 3 });
          kv = new KvApplier(store, header, { leaseExists: (id) => id === 100n });
          assert.deepEqual(store.hashKV(0), h, 'hashKV survives a restart');
          break;
        }
        case 'awaitCompaction': {
          await store.compactionsDone();
          checkDisk();
          break;
        }
      }
      assert.equal(store.currentRevision, m.rev);
      assert.equal(store.compactRevision, m.compactRev);
    }
    // the whole key space agrees at every readable revision
    for (let rev = Math.max(1, m.compactRev); rev <= m.rev; rev++) {
      const all = RangeRequest.fromPartial({ key: B('\0'), rangeEnd: B('\0'), revision: rev });
      sameRange(kv.range(all), modelRange(m.states[rev], all));
    }
    await store.compactionsDone();
    checkDisk();
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

test('MvccStore + KvApplier agree with a model over random histories, restarts included', async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(cmdArb, { minLength: 1, maxLength: 60 }), (cmds) => runCommands(cmds)),
    {
      numRuns: Number(process.env.MVCC_PROP_RUNS ?? 300),
      ...(process.env.MVCC_PROP_SEED ? { seed: Number(process.env.MVCC_PROP_SEED) } : {}),
    },
  );
});
