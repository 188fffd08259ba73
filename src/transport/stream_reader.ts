// The receiving half of a stream: we dial GET <peer>/raft/stream/<type>/<our id> and the peer
// writes its messages to us into the response body. Redials with backoff while the peer is alive
// in our membership; decoded messages go to the handler in order.
import type { ClientRequest, IncomingMessage } from 'node:http';
import { type Message, MessageType } from '../gen/raftpb/raft.js';
import {
  CONN_READ_TIMEOUT_MS,
  DIAL_RETRY_BASE_MS,
  DIAL_RETRY_MAX_MS,
  ERR_CLUSTER_ID_MISMATCH,
  ERR_INCOMPATIBLE_VERSION,
  ERR_MEMBER_REMOVED,
  HDR_CLUSTER_ID,
  idHex,
  OUT_HDR,
  type StreamType,
  streamEndpoint,
  streamName,
} from './constants.js';
import { requestHeaders } from './headers.js';
import { MessageDecoder } from './message_codec.js';
import { isLinkHeartbeat, MsgAppV2Decoder } from './msgappv2_codec.js';
import { netErrorText, type PeerStatus } from './peer_status.js';
import type { TransportContext } from './types.js';
import type { UrlPicker } from './url_picker.js';

export class StreamReader {
  private req: ClientRequest | undefined;
  private timer: NodeJS.Timeout | undefined;
  private delay = DIAL_RETRY_BASE_MS;
  private stopped = false;
  paused = false;

  constructor(
    private readonly ctx: TransportContext,
    readonly type: StreamType,
    private readonly peerId: bigint,
    private readonly picker: UrlPicker,
    private readonly status: PeerStatus,
  ) {}

  start(): void {
    this.dial();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.req?.destroy();
    this.req = undefined;
  }

  private scheduleRedial(): void {
    if (this.stopped || this.ctx.stopped || this.timer) return;
    const d = this.delay;
    this.delay = Math.min(this.delay * 2, DIAL_RETRY_MAX_MS);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.dial();
    }, d);
    this.timer.unref?.();
  }

  private dial(): void {
    if (this.stopped || this.ctx.stopped) return;
    const base = this.picker.pick();
    const url = `${base}${streamEndpoint(this.type)}/${idHex(this.ctx.local.localId)}`;
    const headers = requestHeaders(this.ctx.local);
    headers[OUT_HDR.raftTo] = idHex(this.peerId);
    let req: ClientRequest;
    try {
      req = this.ctx.dialer.request(url, { method: 'GET', headers }, 'stream');
    } catch (err) {
      this.picker.unreachable(base);
      this.failed('dial', `failed to make http request to ${base} (${String(err)})`, base);
      return;
    }
    this.req = req;
    req.setNoDelay(true);
    let settled = false;
    const finish = (action: string, reason: string | undefined) => {
      if (settled) return;
      settled = true;
      if (this.req === req) this.req = undefined;
      req.destroy();
      if (reason !== undefined) this.failed(action, reason, base);
      this.scheduleRedial();
    };
    const dialTimer = setTimeout(() => {
      this.picker.unreachable(base);
      finish('dial', `dial tcp ${new URL(base).host}: i/o timeout`);
    }, this.ctx.dialTimeoutMs);
    let connectedLost: ((reason: string) => void) | undefined;
    req.on('error', (err) => {
      clearTimeout(dialTimer);
      if (this.stopped) return finish('read', undefined);
      if (connectedLost) return connectedLost(netErrorText(err));
      this.picker.unreachable(base);
      finish('dial', netErrorText(err));
    });
    req.on('response', (res) => {
      clearTimeout(dialTimer);
      if (res.statusCode !== 200) {
        this.picker.unreachable(base);
        readText(res, (body) => finish('dial', this.rejection(res, body)));
        return;
      }
      connectedLost = this.connected(req, res, (reason) => finish('read', reason));
    });
    req.end();
  }

  /** Reads the stream; returns the function that ends it with a reason. */
  private connected(
    req: ClientRequest,
    res: IncomingMessage,
    done: (reason: string | undefined) => void,
  ): (reason: string) => void {
    this.delay = DIAL_RETRY_BASE_MS;
    this.status.activate();
    const fields = this.fields();
    this.ctx.logger.info(fields, 'established TCP streaming connection with remote peer');
    // No bytes for a read timeout (link heartbeats come every ~1.7 s) means the link is dead.
    req.setTimeout(CONN_READ_TIMEOUT_MS, () => {
      lost('read tcp: i/o timeout');
    });
    const localId = this.ctx.local.localId;
    const deliver = (m: Message) => this.deliver(m);
    const decoder =
      this.type === 'msgappv2' ? new MsgAppV2Decoder(localId, this.peerId) : new MessageDecoder();
    let ended = false;
    const lost = (reason: string | undefined) => {
      if (ended) return;
      ended = true;
      this.ctx.logger.warn(
        { ...fields, ...(reason ? { error: reason } : {}) },
        'lost TCP streaming connection with remote peer',
      );
      if (reason !== undefined && !this.stopped)
        this.status.deactivate(streamName(this.type), 'read', reason);
      done(undefined);
    };
    res.on('data', (chunk: Buffer) => {
      if (ended) return;
      try {
        decoder.push(chunk, deliver);
      } catch (err) {
        lost(`failed to decode raft message (${(err as Error).message})`);
      }
    });
    res.on('end', () => lost(undefined)); // EOF: the peer closed the stream (e.g. replaced it)
    res.on('error', (err) => lost(netErrorText(err)));
    res.on('close', () => lost(this.stopped ? undefined : 'unexpected EOF'));
    return lost;
  }

  private deliver(m: Message): void {
    if (this.paused || isLinkHeartbeat(m)) return;
    const h = this.ctx.handler;
    try {
      const r = h.process(m);
      if (r !== undefined && typeof (r as Promise<void>).then === 'function') {
        (r as Promise<void>).then(undefined, (err) => this.processFailed(m, err));
      }
    } catch (err) {
      this.processFailed(m, err);
    }
  }

  private processFailed(m: Message, err: unknown): void {
    this.ctx.logger.warn(
      {
        'local-member-id': idHex(this.ctx.local.localId),
        'remote-peer-id': idHex(this.peerId),
        'message-type': MessageType[m.type],
        error: String(err),
      },
      'failed to process Raft message',
    );
  }

  /** Turns a non-200 answer into the failure reason (and the critical "removed" report). */
  private rejection(res: IncomingMessage, body: string): string {
    const text = body.replace(/\n$/, '');
    switch (res.statusCode) {
      case 410: {
        const err = new Error(ERR_MEMBER_REMOVED);
        this.ctx.handler.reportCriticalError?.(err);
        return ERR_MEMBER_REMOVED;
      }
      case 404:
        return `peer ${idHex(this.peerId)} failed to find local node ${idHex(this.ctx.local.localId)}`;
      case 412:
        if (text === ERR_INCOMPATIBLE_VERSION) {
          this.ctx.logger.warn(
            this.fields(),
            'request sent was ignored by remote peer due to server version incompatibility',
          );
          return ERR_INCOMPATIBLE_VERSION;
        }
        if (text === ERR_CLUSTER_ID_MISMATCH) {
          this.ctx.logger.warn(
            {
              ...this.fields(),
              'remote-peer-cluster-id': String(res.headers[HDR_CLUSTER_ID] ?? ''),
              'local-member-cluster-id': idHex(this.ctx.local.clusterId),
            },
            'request sent was ignored by remote peer due to cluster ID mismatch',
          );
          return ERR_CLUSTER_ID_MISMATCH;
        }
        return `unhandled error ${JSON.stringify(body)} when precondition failed`;
      default:
        return `unhandled http status ${res.statusCode}`;
    }
  }

  private failed(action: string, reason: string, url: string): void {
    if (this.stopped || this.ctx.stopped) return;
    this.status.deactivate(streamName(this.type), action, reason, url);
  }

  private fields(): Record<string, string> {
    return {
      'stream-reader-type': streamName(this.type),
      'local-member-id': idHex(this.ctx.local.localId),
      'remote-peer-id': idHex(this.peerId),
    };
  }
}

/** Reads a small response body as text (error answers). */
export function readText(res: IncomingMessage, cb: (text: string) => void): void {
  const chunks: Buffer[] = [];
  let size = 0;
  let done = false;
  const finish = () => {
    if (done) return;
    done = true;
    cb(Buffer.concat(chunks).toString('utf8'));
  };
  res.on('data', (c: Buffer) => {
    if (size < 64 * 1024) chunks.push(c);
    size += c.length;
  });
  res.on('end', finish);
  res.on('error', finish);
  res.on('close', finish);
}
