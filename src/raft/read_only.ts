// Linearizable read-only queries without writing to the log (thesis §6.4).
// Safe: the leader records its commit index as the read index, then confirms it is still leader by a
// round of heartbeats carrying the request's context; once a quorum acknowledged that context, every
// request queued up to it is answered with its read index.
// LeaseBased (§6.4.1): the leader answers from its commit index without the heartbeat round, relying on
// CheckQuorum's lease (correct only with bounded clock drift).
import type { Message } from '../gen/raftpb/raft.js';

export enum ReadOnlyOption {
  Safe = 0,
  LeaseBased = 1,
}

/** A read that may be served once the application has applied up to `index`. */
export interface ReadState {
  index: number;
  requestCtx: Buffer;
}

export interface ReadIndexStatus {
  req: Message;
  index: number;
  /** Voters that acknowledged the heartbeat carrying this request's context (true = acked). */
  acks: Map<bigint, boolean>;
}

const key = (ctx: Buffer): string => ctx.toString('latin1');

export class ReadOnly {
  readonly option: ReadOnlyOption;
  private pending = new Map<string, ReadIndexStatus>();
  private queue: string[] = [];

  constructor(option: ReadOnlyOption) {
    this.option = option;
  }

  /** Queues a read request (m.entries[0].data is its unique context) at the leader's commit index. */
  addRequest(index: number, m: Message): void {
    const ctx = key(m.entries[0].data);
    if (this.pending.has(ctx)) return;
    this.pending.set(ctx, { req: m, index, acks: new Map() });
    this.queue.push(ctx);
  }

  /** Records that `id` acknowledged the heartbeat with `context`; returns the acks so far, if pending. */
  recvAck(id: bigint, context: Buffer): Map<bigint, boolean> | undefined {
    const rs = this.pending.get(key(context));
    if (rs === undefined) return undefined;
    rs.acks.set(id, true);
    return rs.acks;
  }

  /**
   * The request with m.context was confirmed by a quorum: it and every request queued before it (which a
   * later heartbeat round confirms just as well) are removed and returned, in order.
   */
  advance(m: Message): ReadIndexStatus[] {
    const ctx = key(m.context);
    const idx = this.queue.indexOf(ctx);
    if (idx < 0) return [];
    const out: ReadIndexStatus[] = [];
    for (let i = 0; i <= idx; i++) {
      const k = this.queue[i];
      const rs = this.pending.get(k);
      if (rs === undefined) throw new Error('cannot find corresponding read state from pending map');
      out.push(rs);
      this.pending.delete(k);
    }
    this.queue = this.queue.slice(idx + 1);
    return out;
  }

  /** Context of the newest pending request (heartbeats carry it), or undefined. */
  lastPendingRequestCtx(): Buffer | undefined {
    if (this.queue.length === 0) return undefined;
    return this.pending.get(this.queue[this.queue.length - 1])!.req.entries[0].data;
  }

  pendingCount(): number {
    return this.queue.length;
  }
}
