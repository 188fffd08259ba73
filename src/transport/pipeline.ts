// Messages to a peer whose streams are down (and every MsgSnap without a backend): one POST /raft
// per message, at most 4 in flight per peer, 64 queued, as etcd's pipeline.
import { type Message, Message as MessageCodec, MessageType } from '../gen/raftpb/raft.js';
import { CONN_PER_PIPELINE, CT_PROTOBUF, PIPELINE_BUF_SIZE, RAFT_PREFIX } from './constants.js';
import type { PeerStatus } from './peer_status.js';
import { post } from './post.js';
import type { TransportContext } from './types.js';
import type { UrlPicker } from './url_picker.js';

export class Pipeline {
  private queue: Message[] = [];
  private inflight = 0;
  private stopped = false;
  private readonly requests = new Set<import('node:http').ClientRequest>();

  constructor(
    private readonly ctx: TransportContext,
    private readonly peerId: bigint,
    private readonly picker: UrlPicker,
    private readonly status: PeerStatus,
  ) {}

  /** Queues a message; false when the queue is full (the caller drops it). */
  send(m: Message): boolean {
    if (this.stopped || this.queue.length >= PIPELINE_BUF_SIZE) return false;
    this.queue.push(m);
    this.pump();
    return true;
  }

  stop(): void {
    this.stopped = true;
    this.queue = [];
    for (const r of this.requests) r.destroy();
    this.requests.clear();
  }

  private pump(): void {
    while (this.inflight < CONN_PER_PIPELINE && this.queue.length > 0) {
      const m = this.queue.shift()!;
      this.inflight++;
      const base = this.picker.pick();
      const body = Buffer.from(MessageCodec.encode(m).finish());
      const req = post(
        this.ctx,
        { url: base + RAFT_PREFIX, contentType: CT_PROTOBUF, body, to: this.peerId },
        (err) => {
          this.requests.delete(req);
          this.inflight--;
          if (this.stopped) return;
          const h = this.ctx.handler;
          if (err) {
            this.picker.unreachable(base);
            this.status.deactivate('pipeline', 'write', err.message, base);
            if (err.removed) h.reportCriticalError?.(err);
            h.reportUnreachable(m.to);
            if (m.type === MessageType.MsgSnap) h.reportSnapshot(m.to, false);
          } else {
            this.status.activate();
            if (m.type === MessageType.MsgSnap) h.reportSnapshot(m.to, true);
          }
          this.pump();
        },
      );
      this.requests.add(req);
    }
  }
}
