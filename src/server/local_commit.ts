// Commits proposals on this member alone, in arrival order: the stand-in for the raft driver until
// members replicate. It keeps the write path's shape (propose -> commit -> apply in log order ->
// answer the waiter) and batches: every proposal that arrives in one event-loop turn is applied in
// one backend transaction, made durable by one sync, then answered.
import type { InternalRaftRequest } from '../gen/etcdserverpb/raft_internal.js';
import type { MvccStore } from '../mvcc/store.js';
import type { Applier } from './apply.js';
import { Errors } from './errors.js';

interface Pending {
  req: InternalRaftRequest;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
}

export class LocalCommitter {
  private queue: Pending[] = [];
  private scheduled = false;
  private stopped = false;
  private index: number;

  constructor(
    private readonly store: MvccStore,
    private readonly applier: Applier,
  ) {
    this.index = store.consistentIndex;
  }

  get appliedIndex(): number {
    return this.index;
  }

  propose(req: InternalRaftRequest): Promise<unknown> {
    if (this.stopped) return Promise.reject(Errors.stopped);
    return new Promise((resolve, reject) => {
      this.queue.push({ req, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.scheduled = false;
    const batch = this.queue;
    this.queue = [];
    if (batch.length === 0) return;
    const results = new Array<unknown>(batch.length);
    const first = this.index + 1;
    try {
      this.store.applyBatch(first + batch.length - 1, () => {
        for (let i = 0; i < batch.length; i++) results[i] = this.applier.apply(batch[i]!.req);
      });
    } catch (err) {
      // the backend could not commit (disk full, I/O error): nobody was told "done", nothing is lost
      for (const p of batch) p.reject(err);
      return;
    }
    this.index += batch.length;
    for (let i = 0; i < batch.length; i++) {
      const r = results[i];
      if (r instanceof Error) batch[i]!.reject(r);
      else batch[i]!.resolve(r);
    }
  }

  stop(): void {
    this.stopped = true;
    if (this.queue.length > 0) this.flush();
  }
}
