// Applies KV requests to the MVCC store with etcd's semantics (etcd: etcdserver/apply.go).
//
// Mutations (put, deleteRange, txn with writes, compact) run inside store.applyBatch(); reads (range,
// read-only txn) may run anywhere. Every check that can fail runs before the first write, so a request
// either applies completely or returns an error having changed nothing.

import {
  type CompactionRequest,
  type CompactionResponse,
  type Compare,
  Compare_CompareResult,
  Compare_CompareTarget,
  type DeleteRangeRequest,
  type DeleteRangeResponse,
  type PutRequest,
  type PutResponse,
  type RangeRequest,
  RangeRequest_SortOrder,
  RangeRequest_SortTarget,
  type RangeResponse,
  type RequestOp,
  type ResponseHeader,
  type ResponseOp,
  type TxnRequest,
  type TxnResponse,
} from '../gen/etcdserverpb/rpc.js';
import type { KeyValue } from '../gen/mvccpb/kv.js';
import { CompactedError, FutureRevisionError } from '../mvcc/errors.js';
import type { MvccStore, RangeOptions, RangeResult, TxnWrite } from '../mvcc/store.js';
import { Errors } from './errors.js';

export interface KvApplierOptions {
  /** Whether a lease exists (the lessor's lookup). Without a lessor no lease exists, as in etcd. */
  leaseExists?: (id: bigint) => boolean;
}

/** What ranges and compares read from: the store (read-only) or a write txn. */
interface View {
  range(key: Buffer, end: Buffer | undefined, opts?: RangeOptions): RangeResult;
  /** the revision reads at rev 0 see */
  rev(): number;
}

const EMPTY = Buffer.alloc(0);
const ZERO_KV: KeyValue = {
  key: EMPTY,
  createRevision: 0,
  modRevision: 0,
  version: 0,
  value: EMPTY,
  lease: 0n,
};

/** Headers of responses nested in a txn carry only a revision, as etcd fills them. */
function innerHeader(revision: number): ResponseHeader {
  return { clusterId: 0n, memberId: 0n, revision, raftTerm: 0 };
}

/** mvcc errors become the client-visible etcd errors. */
function mapErr(e: unknown): unknown {
  if (e instanceof CompactedError) return Errors.compacted;
  if (e instanceof FutureRevisionError) return Errors.futureRev;
  return e;
}

function rangeEndOf(end: Buffer): Buffer | undefined {
  return end.length === 0 ? undefined : end;
}

function cmpInt(a: number, b: bigint): number {
  const bn = Number(b);
  if (Number.isSafeInteger(bn)) return a < bn ? -1 : a > bn ? 1 : 0;
  const ab = BigInt(a);
  return ab < b ? -1 : ab > b ? 1 : 0;
}

function isTxnReadonly(r: TxnRequest): boolean {
  for (const u of r.success) if (!u.requestRange) return false;
  for (const u of r.failure) if (!u.requestRange) return false;
  return true;
}

export class KvApplier {
  private readonly leaseExists: (id: bigint) => boolean;
  private readonly storeView: View;

  constructor(
    private readonly store: MvccStore,
    private readonly header: (revision: number) => ResponseHeader,
    opts: KvApplierOptions = {},
  ) {
    this.leaseExists = opts.leaseExists ?? (() => false);
    this.storeView = {
      range: (key, end, o) => store.range(key, end, o),
      rev: () => store.currentRevision,
    };
  }

  // ---- Range ----

  range(req: RangeRequest): RangeResponse {
    try {
      const resp = this.doRange(this.storeView, req);
      resp.header = this.header(resp.header!.revision);
      return resp;
    } catch (e) {
      throw mapErr(e);
    }
  }

  private doRange(view: View, r: RangeRequest): RangeResponse {
    const sorted = r.sortOrder !== RangeRequest_SortOrder.NONE;
    const filtered =
      r.minModRevision !== 0 ||
      r.maxModRevision !== 0 ||
      r.minCreateRevision !== 0 ||
      r.maxCreateRevision !== 0;
    // sorting or filtering needs everything; otherwise fetch one extra to learn `more`
    let limit = sorted || filtered ? 0 : r.limit;
    if (limit > 0) limit++;
    const rr = view.range(r.key, rangeEndOf(r.rangeEnd), { limit, rev: r.revision, countOnly: r.countOnly });
    let kvs = rr.kvs;
    if (filtered) {
      kvs = kvs.filter(
        (kv) =>
          !(r.maxModRevision !== 0 && kv.modRevision > r.maxModRevision) &&
          !(r.minModRevision !== 0 && kv.modRevision < r.minModRevision) &&
          !(r.maxCreateRevision !== 0 && kv.createRevision > r.maxCreateRevision) &&
          !(r.minCreateRevision !== 0 && kv.createRevision < r.minCreateRevision),
      );
    }
    let order = r.sortOrder;
    // results come in ascending key order: a non-key target without an order sorts ascending
    if (r.sortTarget !== RangeRequest_SortTarget.KEY && order === RangeRequest_SortOrder.NONE) {
      order = RangeRequest_SortOrder.ASCEND;
    }
    if (order === RangeRequest_SortOrder.ASCEND || order === RangeRequest_SortOrder.DESCEND) {
      const cmp = sorter(r.sortTarget);
      if (cmp) {
        const sign = order === RangeRequest_SortOrder.DESCEND ? -1 : 1;
        kvs = kvs.slice().sort((a, b) => sign * cmp(a, b)); // stable: ties keep key order
      }
    }
    let more = false;
    if (r.limit > 0 && kvs.length > r.limit) {
      kvs = kvs.slice(0, r.limit);
      more = true;
    }
    if (r.keysOnly) kvs = kvs.map((kv) => ({ ...kv, value: EMPTY }));
    return { header: innerHeader(rr.rev), kvs, more, count: rr.count };
  }

  // ---- Put ----

  /** Call inside store.applyBatch. */
  put(req: PutRequest): PutResponse {
    if (req.lease !== 0n && !this.leaseExists(req.lease)) throw Errors.leaseNotFound;
    const tw = this.store.txnWrite();
    try {
      const resp = this.doPut(tw, req);
      const rev = tw.end();
      resp.header = this.header(rev);
      return resp;
    } catch (e) {
      tw.abort();
      throw mapErr(e);
    }
  }

  private doPut(tw: TxnWrite, p: PutRequest): PutResponse {
    let value = p.value;
    let lease = p.lease;
    let prev: KeyValue | undefined;
    if (p.ignoreValue || p.ignoreLease || p.prevKv) {
      prev = tw.range(p.key, undefined).kvs[0];
      if ((p.ignoreValue || p.ignoreLease) && prev === undefined) throw Errors.keyNotFound;
      if (p.ignoreValue) value = prev!.value;
      if (p.ignoreLease) lease = prev!.lease;
    }
    tw.put(p.key, value, lease);
    return { header: innerHeader(tw.beginRev + 1), prevKv: p.prevKv ? prev : undefined };
  }

  // ---- DeleteRange ----

  /** Call inside store.applyBatch. */
  deleteRange(req: DeleteRangeRequest): DeleteRangeResponse {
    const tw = this.store.txnWrite();
    try {
      const resp = this.doDeleteRange(tw, req);
      const rev = tw.end();
      resp.header = this.header(rev);
      return resp;
    } catch (e) {
      tw.abort();
      throw mapErr(e);
    }
  }

  private doDeleteRange(tw: TxnWrite, d: DeleteRangeRequest): DeleteRangeResponse {
    const before = tw.changes;
    const prevs = tw.deleteRange(d.key, rangeEndOf(d.rangeEnd), { values: d.prevKv });
    const deleted = tw.changes - before;
    const rev = tw.beginRev + (tw.changes > 0 ? 1 : 0);
    return { header: innerHeader(rev), deleted, prevKvs: d.prevKv ? prevs : [] };
  }

  // ---- Txn ----

  /** A txn that writes must run inside store.applyBatch; a read-only one may run anywhere. */
  txn(req: TxnRequest): TxnResponse {
    try {
      const readView = this.storeView;
      const path = compareToPath(readView, req);
      const writes = !isTxnReadonly(req);
      if (writes) this.checkRequests(readView, req, path, true);
      this.checkRequests(readView, req, path, false);
      if (!writes) {
        const resp = this.applyTxn(readView, undefined, req, path, 0).resp;
        resp.header = this.header(readView.rev());
        return resp;
      }
      const tw = this.store.txnWrite();
      const view = txnView(tw);
      try {
        const resp = this.applyTxn(view, tw, req, path, 0).resp;
        const rev = tw.end();
        resp.header = this.header(rev);
        return resp;
      } catch (e) {
        tw.abort();
        throw e;
      }
    } catch (e) {
      throw mapErr(e);
    }
  }

  /** Checks the ops on the chosen path before anything is written (etcd's checkRequests). */
  private checkRequests(view: View, rt: TxnRequest, path: boolean[], puts: boolean, at = 0): number {
    const reqs = path[at] ? rt.success : rt.failure;
    let next = at + 1;
    for (const u of reqs) {
      if (u.requestTxn) {
        next = this.checkRequests(view, u.requestTxn, path, puts, next);
        continue;
      }
      if (puts && u.requestPut) {
        const p = u.requestPut;
        if (p.ignoreValue || p.ignoreLease) {
          if (view.range(p.key, undefined).kvs.length === 0) throw Errors.keyNotFound;
        }
        if (p.lease !== 0n && !this.leaseExists(p.lease)) throw Errors.leaseNotFound;
      } else if (!puts && u.requestRange) {
        const rev = u.requestRange.revision;
        if (rev !== 0) {
          if (rev > view.rev()) throw Errors.futureRev;
          if (rev < this.store.compactRevision) throw Errors.compacted;
        }
      }
    }
    return next;
  }

  /** Runs the ops of the chosen branches; returns the response and the next path position. */
  private applyTxn(
    view: View,
    tw: TxnWrite | undefined,
    rt: TxnRequest,
    path: boolean[],
    at: number,
  ): { resp: TxnResponse; next: number } {
    const succeeded = path[at];
    const reqs = succeeded ? rt.success : rt.failure;
    let next = at + 1;
    const responses: ResponseOp[] = [];
    for (const u of reqs) {
      responses.push(this.applyOp(view, tw, u, path, next, (n) => (next = n)));
    }
    return { resp: { header: innerHeader(0), succeeded, responses }, next };
  }

  private applyOp(
    view: View,
    tw: TxnWrite | undefined,
    u: RequestOp,
    path: boolean[],
    at: number,
    setNext: (n: number) => void,
  ): ResponseOp {
    if (u.requestRange) return { responseRange: this.doRange(view, u.requestRange) };
    if (u.requestPut) return { responsePut: this.doPut(tw!, u.requestPut) };
    if (u.requestDeleteRange) return { responseDeleteRange: this.doDeleteRange(tw!, u.requestDeleteRange) };
    if (u.requestTxn) {
      const { resp, next } = this.applyTxn(view, tw, u.requestTxn, path, at);
      setNext(next);
      return { responseTxn: resp };
    }
    return {};
  }

  // ---- Compact ----

  /**
   * Call inside store.applyBatch. The response is ready at once; `done` resolves when the old revisions
   * are physically gone (a `physical` compaction answers only then).
   */
  compact(req: CompactionRequest): { response: CompactionResponse; done: Promise<void> } {
    try {
      const { done } = this.store.compact(req.revision);
      return { response: { header: this.header(this.store.currentRevision) }, done };
    } catch (e) {
      throw mapErr(e);
    }
  }
}

function txnView(tw: TxnWrite): View {
  return {
    range: (key, end, opts) => tw.range(key, end, opts),
    rev: () => tw.beginRev + (tw.changes > 0 ? 1 : 0),
  };
}

/** Evaluates the compares of the txn and of every nested txn on the chosen branches, before any write. */
function compareToPath(view: View, rt: TxnRequest): boolean[] {
  const path: boolean[] = [];
  const walk = (t: TxnRequest) => {
    const ok = t.compare.every((c) => applyCompare(view, c));
    path.push(ok);
    for (const u of ok ? t.success : t.failure) if (u.requestTxn) walk(u.requestTxn);
  };
  walk(rt);
  return path;
}

function applyCompare(view: View, c: Compare): boolean {
  let rr: RangeResult;
  try {
    rr = view.range(c.key, rangeEndOf(c.rangeEnd));
  } catch {
    return false;
  }
  if (rr.kvs.length === 0) {
    // a value compare on a missing key always fails: there is no way to express "no value"
    if (c.target === Compare_CompareTarget.VALUE) return false;
    return compareKV(c, ZERO_KV);
  }
  for (const kv of rr.kvs) if (!compareKV(c, kv)) return false;
  return true;
}

function compareKV(c: Compare, kv: KeyValue): boolean {
  let result = 0;
  switch (c.target) {
    case Compare_CompareTarget.VALUE:
      result = Buffer.compare(kv.value, c.value ?? EMPTY);
      break;
    case Compare_CompareTarget.CREATE:
      result = cmpInt(kv.createRevision, c.createRevision ?? 0n);
      break;
    case Compare_CompareTarget.MOD:
      result = cmpInt(kv.modRevision, c.modRevision ?? 0n);
      break;
    case Compare_CompareTarget.VERSION:
      result = cmpInt(kv.version, c.version ?? 0n);
      break;
    case Compare_CompareTarget.LEASE: {
      const l = c.lease ?? 0n;
      result = kv.lease < l ? -1 : kv.lease > l ? 1 : 0;
      break;
    }
  }
  switch (c.result) {
    case Compare_CompareResult.EQUAL:
      return result === 0;
    case Compare_CompareResult.NOT_EQUAL:
      return result !== 0;
    case Compare_CompareResult.GREATER:
      return result > 0;
    case Compare_CompareResult.LESS:
      return result < 0;
  }
  return true;
}

type Cmp = (a: KeyValue, b: KeyValue) => number;

function sorter(target: RangeRequest_SortTarget): Cmp | undefined {
  switch (target) {
    case RangeRequest_SortTarget.KEY:
      return (a, b) => Buffer.compare(a.key, b.key);
    case RangeRequest_SortTarget.VERSION:
      return (a, b) => a.version - b.version;
    case RangeRequest_SortTarget.CREATE:
      return (a, b) => a.createRevision - b.createRevision;
    case RangeRequest_SortTarget.MOD:
      return (a, b) => a.modRevision - b.modRevision;
    case RangeRequest_SortTarget.VALUE:
      return (a, b) => Buffer.compare(a.value, b.value);
  }
  return undefined;
}
