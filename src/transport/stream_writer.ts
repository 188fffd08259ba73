// The sending half of a stream: when a peer dials GET /raft/stream/<type>/<our id>, its response
// body is attached here and our messages to that peer are written into it. Messages queue per
// peer and are encoded and written once per event-loop turn (one chunk per batch).
import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Message } from '../gen/raftpb/raft.js';
import { CONN_WRITE_TIMEOUT_MS, idHex, STREAM_BUF_SIZE, type StreamType, streamName } from './constants.js';
import { encodeMessageFrame } from './message_codec.js';
import { isLinkHeartbeat, linkHeartbeat, MsgAppV2Encoder } from './msgappv2_codec.js';
import type { PeerStatus } from './peer_status.js';
import type { TransportContext } from './types.js';

const LINK_HEARTBEAT = linkHeartbeat();

/** Where a stream's bytes go: the response itself, or its socket when we frame the chunks ourselves. */
type Sink = Pick<Socket, 'write' | 'writableNeedDrain' | 'once'>;

/**
 * One HTTP/1.1 chunk (size in hex, CRLF, data, CRLF) in one buffer. Writing it straight to the socket
 * costs one write call where ServerResponse.write makes three (a corked writev) and a string per chunk,
 * on every raft message batch.
 */
export function httpChunk(data: Uint8Array): Buffer {
  const size = data.length.toString(16);
  const out = Buffer.allocUnsafe(size.length + 2 + data.length + 2);
  let at = out.write(size, 0, 'latin1');
  out[at++] = 13;
  out[at++] = 10;
  out.set(data, at);
  at += data.length;
  out[at++] = 13;
  out[at] = 10;
  return out;
}

export class StreamWriter {
  private res: ServerResponse | undefined;
  /** The socket, once the response's headers are out and its body is chunked; else the response. */
  private sink: Sink | undefined;
  private rawChunks = false;
  private enc: MsgAppV2Encoder | undefined;
  private queue: Message[] = [];
  private scheduled = false;
  private waitingDrain = false;
  private needDrainSince = 0;
  private readonly flushNow = () => this.flush();

  constructor(
    private readonly ctx: TransportContext,
    readonly type: StreamType,
    private readonly peerId: bigint,
    private readonly status: PeerStatus,
  ) {}

  get working(): boolean {
    return this.res !== undefined;
  }

  /** Takes over a peer's stream response (200 and headers already sent); replaces an older one. */
  attach(res: ServerResponse): void {
    const replaced = this.close('replaced');
    this.res = res;
    // Headers were flushed at attach (handler.ts); from here on the body is ours to frame, unless the
    // peer spoke HTTP/1.0 (no chunked encoding) or the socket is not there to write to.
    const chunked = (res as unknown as { chunkedEncoding?: boolean }).chunkedEncoding === true;
    this.rawChunks = chunked && res.headersSent && res.socket !== null;
    this.sink = this.rawChunks ? res.socket! : (res as unknown as Sink);
    this.enc = this.type === 'msgappv2' ? new MsgAppV2Encoder() : undefined;
    this.waitingDrain = false;
    this.needDrainSince = 0;
    const onGone = (err?: Error) => {
      if (this.res !== res) return;
      this.lost(err ? err.message : 'connection closed by remote peer');
    };
    res.on('close', () => onGone());
    res.on('error', onGone);
    this.status.activate();
    const fields = this.fields();
    if (replaced) this.ctx.logger.warn(fields, 'closed TCP streaming connection with remote peer');
    this.ctx.logger.info(fields, 'established TCP streaming connection with remote peer');
  }

  /**
   * Queues a message; false when the queue is full or no connection is attached (caller drops).
   * With `deferred` the caller flushes (flushPending) once it has queued its whole batch; otherwise the
   * queue is written at the end of this event-loop turn.
   */
  send(m: Message, deferred = false): boolean {
    if (this.res === undefined || this.queue.length >= STREAM_BUF_SIZE) return false;
    this.queue.push(m);
    if (!deferred && !this.scheduled && !this.waitingDrain) {
      this.scheduled = true;
      setImmediate(this.flushNow);
    }
    return true;
  }

  /** Called every link-heartbeat period: keeps an idle stream alive, detects a stuck one. */
  heartbeat(): void {
    const res = this.res;
    if (res === undefined) return;
    if (this.sink!.writableNeedDrain) {
      if (this.needDrainSince === 0) this.needDrainSince = Date.now();
      else if (Date.now() - this.needDrainSince > CONN_WRITE_TIMEOUT_MS) {
        this.lost('write timeout: remote peer is not reading');
      }
      return;
    }
    this.needDrainSince = 0;
    if (this.queue.length === 0 && !this.scheduled) this.write(res, [LINK_HEARTBEAT]);
  }

  /** Writes what is queued now (one chunk), unless the connection is waiting for a drain. */
  flushPending(): void {
    if (this.queue.length > 0 && !this.waitingDrain) this.flush();
  }

  private flush(): void {
    this.scheduled = false;
    const res = this.res;
    if (res === undefined || this.queue.length === 0) return;
    if (this.sink!.writableNeedDrain) {
      this.waitForDrain(res);
      return;
    }
    const batch = this.queue;
    this.queue = [];
    this.write(res, batch);
  }

  private waitForDrain(res: ServerResponse): void {
    if (this.waitingDrain) return;
    this.waitingDrain = true;
    this.sink!.once('drain', () => {
      this.waitingDrain = false;
      this.needDrainSince = 0;
      if (this.res === res) this.flush();
    });
  }

  private write(res: ServerResponse, batch: Message[]): void {
    let data: Buffer;
    try {
      if (this.enc) {
        const parts: Buffer[] = [];
        for (const m of batch) this.enc.encode(m, parts);
        data = parts.length === 1 ? parts[0] : Buffer.concat(parts);
      } else if (batch.length === 1) {
        data = encodeMessageFrame(batch[0]);
      } else {
        data = Buffer.concat(batch.map(encodeMessageFrame));
      }
    } catch (err) {
      // A message that cannot be marshaled is a bug upstream; do not let it kill the stream.
      this.ctx.logger.error({ ...this.fields(), error: String(err) }, 'failed to encode Raft message');
      return;
    }
    if (data.length === 0) return; // an empty chunk would end the response
    let ok: boolean;
    if (this.rawChunks) ok = this.sink!.write(httpChunk(data));
    else {
      ok = res.write(data);
      // http corks the socket for a chunk until the next tick: send it now (raft sends before it syncs)
      if (res.socket?.writableCorked) res.socket.uncork();
    }
    if (!ok) this.waitForDrain(res);
    if (batch.length > 0 && !isLinkHeartbeat(batch[0])) this.status.activate();
  }

  private lost(reason: string): void {
    this.close(reason);
    this.status.deactivate(streamName(this.type), 'write', reason);
    this.ctx.logger.warn(this.fields(), 'lost TCP streaming connection with remote peer');
  }

  /** Ends the attached response, if any; queued messages are dropped (reported unreachable). */
  close(_reason = 'closed'): boolean {
    const res = this.res;
    if (res === undefined) return false;
    this.res = undefined;
    this.sink = undefined;
    this.enc = undefined;
    if (this.queue.length > 0) {
      this.queue = [];
      this.ctx.handler.reportUnreachable(this.peerId);
    }
    if (!res.writableEnded) res.end();
    return true;
  }

  private fields(): Record<string, string> {
    return {
      'stream-writer-type': streamName(this.type),
      'local-member-id': idHex(this.ctx.local.localId),
      'remote-peer-id': idHex(this.peerId),
    };
  }
}
