// One remote member: its two stream writers (filled by its dials to us), two stream readers (our
// dials to it), a pipeline, snapshot sends, and its status. A "remote" (a member we do not have in
// our membership yet, met through its requests) gets only a pipeline, as in etcd.
import type { ClientRequest, ServerResponse } from 'node:http';
import { type Message, MessageType } from '../gen/raftpb/raft.js';
import { idHex, type StreamType, UNREACHABLE_LOG_INTERVAL_MS } from './constants.js';
import { PeerStatus } from './peer_status.js';
import { Pipeline } from './pipeline.js';
import { sendSnapshot } from './snapshot_sender.js';
import { StreamReader } from './stream_reader.js';
import { StreamWriter } from './stream_writer.js';
import type { TransportContext } from './types.js';
import { UrlPicker } from './url_picker.js';

export class Peer {
  readonly status: PeerStatus;
  readonly picker: UrlPicker;
  private readonly msgAppWriter: StreamWriter | undefined;
  private readonly msgWriter: StreamWriter | undefined;
  private readonly readers: StreamReader[] = [];
  private readonly pipeline: Pipeline;
  private readonly snapshots = new Set<ClientRequest>();
  private lastDropLog = 0;
  paused = false;

  constructor(
    private readonly ctx: TransportContext,
    readonly id: bigint,
    urls: readonly string[],
    readonly remoteOnly = false,
  ) {
    this.picker = new UrlPicker(urls);
    this.status = new PeerStatus(ctx.local.localId, id, ctx.logger);
    this.pipeline = new Pipeline(ctx, id, this.picker, this.status);
    if (!remoteOnly) {
      this.msgAppWriter = new StreamWriter(ctx, 'msgappv2', id, this.status);
      this.msgWriter = new StreamWriter(ctx, 'message', id, this.status);
      for (const t of ['msgappv2', 'message'] as const) {
        const r = new StreamReader(ctx, t, id, this.picker, this.status);
        this.readers.push(r);
        r.start();
      }
    }
  }

  /** Never blocks: picks a stream or the pipeline; drops (reporting unreachable) when full. */
  send(m: Message, deferred = false): void {
    if (this.paused) return;
    let ok: boolean;
    if (m.type === MessageType.MsgSnap) ok = this.pipeline.send(m);
    else if (m.type === MessageType.MsgApp && this.msgAppWriter?.working)
      ok = this.msgAppWriter.send(m, deferred);
    else if (this.msgWriter?.working) ok = this.msgWriter.send(m, deferred);
    else ok = this.pipeline.send(m);
    if (ok) return;
    const h = this.ctx.handler;
    h.reportUnreachable(m.to);
    if (m.type === MessageType.MsgSnap) h.reportSnapshot(m.to, false);
    const now = Date.now();
    if (now - this.lastDropLog >= UNREACHABLE_LOG_INTERVAL_MS) {
      this.lastDropLog = now;
      this.ctx.logger.warn(
        {
          'message-type': MessageType[m.type],
          'local-member-id': idHex(this.ctx.local.localId),
          'remote-peer-id': idHex(this.id),
          'remote-peer-active': this.status.active,
        },
        this.status.active
          ? 'dropped internal Raft message since sending buffer is full (overloaded network)'
          : 'dropped Raft message since sending buffer is full (overloaded network)',
      );
    }
  }

  /** Writes the stream messages queued by send(m, true). */
  flushStreams(): void {
    this.msgAppWriter?.flushPending();
    this.msgWriter?.flushPending();
  }

  sendSnapshot(m: Message, db: NodeJS.ReadableStream, size: number): void {
    const req = sendSnapshot(this.ctx, this.picker, this.status, m, db, size, () =>
      this.snapshots.delete(req),
    );
    this.snapshots.add(req);
  }

  /** A peer's GET of one of our streams: its response now carries our messages of that type. */
  attachOutgoing(type: StreamType, res: ServerResponse): boolean {
    const w = type === 'msgappv2' ? this.msgAppWriter : this.msgWriter;
    if (!w) return false;
    w.attach(res);
    return true;
  }

  heartbeat(): void {
    this.msgAppWriter?.heartbeat();
    this.msgWriter?.heartbeat();
  }

  update(urls: readonly string[]): void {
    this.picker.update(urls);
  }

  /** Pause/resume (etcd's CutPeer/MendPeer, for tests): drop what goes out and what comes in. */
  setPaused(p: boolean): void {
    this.paused = p;
    for (const r of this.readers) r.paused = p;
  }

  /** Both streams of ours to this peer are attached (messages go out streamed, in order). */
  streamsWorking(): boolean {
    return this.msgAppWriter?.working === true && this.msgWriter?.working === true;
  }

  activeSince(): number | undefined {
    return this.status.active ? this.status.since : undefined;
  }

  stop(): void {
    for (const r of this.readers) r.stop();
    this.msgAppWriter?.close();
    this.msgWriter?.close();
    this.pipeline.stop();
    for (const s of this.snapshots) s.destroy();
    this.snapshots.clear();
  }
}
