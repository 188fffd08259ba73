// The backend quota (etcd's backendQuota): a request that would grow the store is admitted only while
// the backend file plus the request's estimated cost stays under --quota-backend-bytes. Costs are etcd's
// estimates, so the same workload trips the alarm at the same point.
import type { PutRequest, RequestOp, TxnRequest } from '../gen/etcdserverpb/rpc.js';
import { DEFAULT_QUOTA_BYTES } from './config.js';

/** etcd's estimate of a lease's cost. */
export const LEASE_OVERHEAD = 64;
/** etcd's estimate of a key's metadata cost. */
export const KV_OVERHEAD = 256;
/** Above this etcd warns that performance may degrade (8 GiB). */
export const MAX_QUOTA_BYTES = 8 * 1024 * 1024 * 1024;

export type QuotaRequest = { put: PutRequest } | { txn: TxnRequest } | { leaseGrant: unknown };

export function costPut(r: PutRequest): number {
  return KV_OVERHEAD + r.key.length + r.value.length;
}

function costOp(op: RequestOp): number {
  return op.requestPut ? costPut(op.requestPut) : 0;
}

/** A txn costs its larger branch (only puts count; nested txns are not counted, as in etcd 3.4). */
export function costTxn(r: TxnRequest): number {
  let success = 0;
  for (const op of r.success) success += costOp(op);
  let failure = 0;
  for (const op of r.failure) failure += costOp(op);
  return Math.max(success, failure);
}

export function cost(req: QuotaRequest): number {
  if ('put' in req) return costPut(req.put);
  if ('txn' in req) return costTxn(req.txn);
  return LEASE_OVERHEAD;
}

/** The backend size is measured at most this often for quota checks (a measurement per put would show). */
const SIZE_CACHE_MS = 50;

export class Quota {
  /** The effective limit in bytes; Infinity when disabled (a negative --quota-backend-bytes). */
  readonly limit: number;
  private size = 0;
  private sizeAt = Number.NEGATIVE_INFINITY;

  /** `configured`: --quota-backend-bytes (0 = etcd's 2 GiB default, negative = no quota). */
  constructor(
    configured: number,
    private readonly dbSize: () => number,
  ) {
    this.limit =
      configured < 0 ? Number.POSITIVE_INFINITY : configured === 0 ? DEFAULT_QUOTA_BYTES : configured;
  }

  /** Whether the request fits: requests that cost nothing (no puts) always do. */
  available(req: QuotaRequest): boolean {
    const c = cost(req);
    if (c === 0) return true;
    return this.currentSize() + c < this.limit;
  }

  remaining(): number {
    return this.limit - this.currentSize();
  }

  private currentSize(): number {
    const now = performance.now();
    if (now - this.sizeAt >= SIZE_CACHE_MS) {
      this.size = this.dbSize();
      this.sizeAt = now;
    }
    return this.size;
  }
}
