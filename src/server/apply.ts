// The one apply function: every committed request, in log order, changes state here and only here.
// It is deterministic: the same log gives the same state on every member.
import type { InternalRaftRequest } from '../gen/etcdserverpb/raft_internal.js';
import type {
  LeaseCheckpointResponse,
  LeaseGrantResponse,
  LeaseRevokeResponse,
  ResponseHeader,
} from '../gen/etcdserverpb/rpc.js';
import type { Lessor } from '../lease/lessor.js';
import type { MvccStore } from '../mvcc/store.js';
import type { KvApplier } from './apply_kv.js';
import { Code, EtcdError } from './errors.js';
import type { Maintenance } from './maintenance.js';

/** The result of applying one request: its response, or the error the waiting client gets. */
export type ApplyResult = unknown;

export class Applier {
  constructor(
    private readonly store: MvccStore,
    private readonly kv: KvApplier,
    private readonly lessor: Lessor,
    private readonly header: (revision: number) => ResponseHeader,
    private readonly maintenance?: Maintenance,
  ) {}

  /** Called inside the backend's write transaction for the batch. Never throws: errors are results. */
  apply(req: InternalRaftRequest): ApplyResult {
    try {
      const refused = this.maintenance?.admit(req); // NOSPACE raised: puts and lease grants are refused
      if (refused) return refused;
      if (req.put !== undefined) return this.kv.put(req.put);
      if (req.deleteRange !== undefined) return this.kv.deleteRange(req.deleteRange);
      if (req.txn !== undefined) return this.kv.txn(req.txn);
      if (req.compaction !== undefined) return this.kv.compact(req.compaction);
      if (req.range !== undefined) return this.kv.range(req.range);
      if (req.leaseGrant !== undefined) return this.leaseGrant(req.leaseGrant.ID, req.leaseGrant.TTL);
      if (req.leaseRevoke !== undefined) return this.leaseRevoke(req.leaseRevoke.ID);
      if (req.leaseCheckpoint !== undefined) {
        for (const c of req.leaseCheckpoint.checkpoints) this.lessor.checkpoint(c.ID, c.remainingTTL);
        return { header: this.header(this.store.currentRevision) } satisfies LeaseCheckpointResponse;
      }
      if (req.alarm !== undefined && this.maintenance) return this.maintenance.applyAlarm(req.alarm);
      return new EtcdError(Code.UNIMPLEMENTED, 'etcd-ts: this request type is not supported yet');
    } catch (err) {
      return err instanceof Error ? err : new Error(String(err));
    }
  }

  private leaseGrant(id: bigint, ttl: number): LeaseGrantResponse {
    const l = this.lessor.grant(id, ttl);
    return { header: this.header(this.store.currentRevision), ID: l.id, TTL: l.ttl, error: '' };
  }

  /** Deletes the lease's keys in one revision, then forgets the lease (etcd's order). */
  private leaseRevoke(id: bigint): LeaseRevokeResponse {
    const keys = this.lessor.revoke(id);
    if (keys.length > 0) {
      const tw = this.store.txnWrite();
      for (const k of keys) tw.deleteRange(Buffer.from(k, 'latin1'), undefined);
      tw.end();
    }
    return { header: this.header(this.store.currentRevision) };
  }
}
