// Checks a KV request before it is proposed, with etcd's rules and errors (etcd: api/v3rpc/key.go).

import type {
  DeleteRangeRequest,
  PutRequest,
  RangeRequest,
  RequestOp,
  TxnRequest,
} from '../gen/etcdserverpb/rpc.js';
import { Errors } from './errors.js';

export function checkRangeRequest(r: RangeRequest): void {
  if (r.key.length === 0) throw Errors.emptyKey;
}

export function checkPutRequest(r: PutRequest): void {
  if (r.key.length === 0) throw Errors.emptyKey;
  if (r.ignoreValue && r.value.length !== 0) throw Errors.valueProvided;
  if (r.ignoreLease && r.lease !== 0n) throw Errors.leaseProvided;
}

export function checkDeleteRequest(r: DeleteRangeRequest): void {
  if (r.key.length === 0) throw Errors.emptyKey;
}

/**
 * Checks a txn: op counts against maxTxnOps (nested txns share the budget as in etcd), empty keys, empty
 * ops, then etcd's overlap rules: within one branch, no key may be put twice, and no put may fall into a
 * range deleted in the same branch (including through nested txns).
 */
export function checkTxnRequest(r: TxnRequest, maxTxnOps: number): void {
  checkTxnOps(r, maxTxnOps);
  checkIntervals(r.success);
  checkIntervals(r.failure);
}

function checkTxnOps(r: TxnRequest, maxTxnOps: number): void {
  const opc = Math.max(r.compare.length, r.success.length, r.failure.length);
  if (opc > maxTxnOps) throw Errors.tooManyOps;
  for (const c of r.compare) if (c.key.length === 0) throw Errors.emptyKey;
  for (const u of r.success) checkRequestOp(u, maxTxnOps - opc);
  for (const u of r.failure) checkRequestOp(u, maxTxnOps - opc);
}

function checkRequestOp(u: RequestOp, maxTxnOps: number): void {
  if (u.requestRange) checkRangeRequest(u.requestRange);
  else if (u.requestPut) checkPutRequest(u.requestPut);
  else if (u.requestDeleteRange) checkDeleteRequest(u.requestDeleteRange);
  else if (u.requestTxn) checkTxnOps(u.requestTxn, maxTxnOps);
  else throw Errors.keyNotFound; // an empty op, as etcd answers it
}

// Intervals over keys as latin1 strings, where the empty string is +infinity (etcd's "affine" strings).
interface Interval {
  begin: string;
  end: string;
}

function cmpAffine(a: string, b: string): number {
  if (a.length === 0) return b.length === 0 ? 0 : 1;
  if (b.length === 0) return -1;
  return a < b ? -1 : a > b ? 1 : 0;
}

/** etcd's interval comparison: 0 when they overlap. */
function overlaps(iv: Interval, d: Interval): boolean {
  if (cmpAffine(iv.begin, d.begin) < 0 && cmpAffine(iv.end, d.begin) <= 0) return false;
  if (cmpAffine(iv.begin, d.end) >= 0) return false;
  return true;
}

function hitsDeletes(dels: Interval[], k: string): boolean {
  const point = { begin: k, end: k + '\0' };
  for (const d of dels) if (overlaps(point, d)) return true;
  return false;
}

function checkIntervals(reqs: RequestOp[]): { puts: Set<string>; dels: Interval[] } {
  const dels: Interval[] = [];
  for (const req of reqs) {
    const d = req.requestDeleteRange;
    if (!d) continue;
    const begin = d.key.toString('latin1');
    dels.push(
      d.rangeEnd.length !== 0 ? { begin, end: d.rangeEnd.toString('latin1') } : { begin, end: begin + '\0' },
    );
  }
  const puts = new Set<string>();
  for (const req of reqs) {
    const t = req.requestTxn;
    if (!t) continue;
    const then = checkIntervals(t.success);
    const els = checkIntervals(t.failure);
    for (const k of then.puts) {
      if (puts.has(k) || hitsDeletes(dels, k)) throw Errors.duplicateKey;
      puts.add(k);
    }
    for (const k of els.puts) {
      // a key put in both branches of the same nested txn is fine: only one branch runs
      if (puts.has(k) && !then.puts.has(k)) throw Errors.duplicateKey;
      if (hitsDeletes(dels, k)) throw Errors.duplicateKey;
      puts.add(k);
    }
    dels.push(...then.dels, ...els.dels);
  }
  for (const req of reqs) {
    const p = req.requestPut;
    if (!p) continue;
    const k = p.key.toString('latin1');
    if (puts.has(k) || hitsDeletes(dels, k)) throw Errors.duplicateKey;
    puts.add(k);
  }
  return { puts, dels };
}
