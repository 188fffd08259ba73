// The lessor's durable state: the backend's `lease` bucket, keyed and encoded as etcd keys it
// (8-byte big-endian lease ID -> leasepb.Lease), written inside the apply transaction.
import { Lease as LeasePb } from '../gen/leasepb/lease.js';
import type { LeaseBackend, LeaseRecord } from '../lease/lessor.js';
import type { MvccStore } from '../mvcc/store.js';

export const LEASE_BUCKET = 'lease';

function leaseKey(id: bigint): Buffer {
  const b = Buffer.allocUnsafe(8);
  b.writeBigInt64BE(id);
  return b;
}

export function lmdbLeaseBackend(store: MvccStore): LeaseBackend {
  const bucket = store.bucket(LEASE_BUCKET);
  return {
    save(rec: LeaseRecord) {
      const value = LeasePb.encode({ ID: rec.id, TTL: rec.ttl, RemainingTTL: rec.remainingTtl }).finish();
      bucket.putSync(leaseKey(rec.id), Buffer.from(value));
    },
    remove(id: bigint) {
      bucket.removeSync(leaseKey(id));
    },
    loadAll() {
      const out: LeaseRecord[] = [];
      for (const { value } of bucket.getRange({})) {
        const l = LeasePb.decode(value);
        out.push({ id: l.ID, ttl: l.TTL, remainingTtl: l.RemainingTTL });
      }
      return out;
    },
  };
}
