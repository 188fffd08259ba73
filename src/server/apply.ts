// The one apply function: every committed request, in log order, changes state here and only here.
// It is deterministic: the same log gives the same state on every member.
import type { InternalRaftRequest } from '../gen/etcdserverpb/raft_internal.js';
import type { KvApplier } from './apply_kv.js';
import { Code, EtcdError } from './errors.js';

/** The result of applying one request: its response, or the error the waiting client gets. */
export type ApplyResult = unknown;

export class Applier {
  constructor(private readonly kv: KvApplier) {}

  /** Called inside the backend's write transaction for the batch. Never throws: errors are results. */
  apply(req: InternalRaftRequest): ApplyResult {
    try {
      if (req.put !== undefined) return this.kv.put(req.put);
      if (req.deleteRange !== undefined) return this.kv.deleteRange(req.deleteRange);
      if (req.txn !== undefined) return this.kv.txn(req.txn);
      if (req.compaction !== undefined) return this.kv.compact(req.compaction);
      if (req.range !== undefined) return this.kv.range(req.range);
      return new EtcdError(Code.UNIMPLEMENTED, 'etcd-ts: this request type is not supported yet');
    } catch (err) {
      return err instanceof Error ? err : new Error(String(err));
    }
  }
}
