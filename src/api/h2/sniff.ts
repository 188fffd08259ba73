// Decides, from a new HTTP/2 connection's first frames, whether Node's HTTP/2 server can take the
// raw socket (the fast path) or the connection needs the header repair filter (repair.ts).
//
// The decision needs the connection's first header block, but gRPC clients (grpc-go, grpc-js) send
// no request before they have the server's preface (a SETTINGS frame). So when the client has sent
// all it will send for now, the listener answers with an empty SETTINGS frame itself (which changes
// no setting), and the client's ACK for it, which the real server must never see, is cut out of
// the bytes handed over. A client whose request overtakes that ACK is routed through the filter,
// which drops the ACK as it passes.
import {
  EMPTY_SETTINGS,
  Flag,
  FRAME_HEADER_LENGTH,
  FrameType,
  headersFragment,
  PREFACE,
  readFrameHeader,
} from './frames.js';
import { HpackDecoder } from './hpack.js';
import { needsRepair } from './repair.js';

export type SniffDecision =
  /** Read more before deciding; when sendSettings is set, first write EMPTY_SETTINGS to the client. */
  | { kind: 'more'; sendSettings: boolean }
  /** Unshift head onto the socket and give the socket itself to the HTTP/2 server. */
  | { kind: 'fast'; head: Buffer; reason: string }
  /** Route the connection through repairStream(socket, head, { dropFirstSettingsAck }). */
  | { kind: 'repair'; head: Buffer; dropFirstSettingsAck: boolean; reason: string };

export { EMPTY_SETTINGS };

/** Buffered bytes beyond which the sniffer gives up and takes the fast path. */
export const MAX_SNIFF_BYTES = 64 * 1024;

export class H2Sniffer {
  private buf: Buffer = Buffer.alloc(0);
  private pos = PREFACE.length;
  private settingsSent = false;
  /** Where the client's ACK of our SETTINGS sits in buf. */
  private ack: { start: number; end: number } | null = null;
  private decided = false;
  /**
   * The first request was fine but the client has not yet acknowledged our SETTINGS: keep reading
   * (the ACK is on its way) from this offset, so the connection can still take the fast path.
   */
  private awaitAckFrom = -1;

  /** Feeds bytes read from the socket (the first call's start with the preface). */
  push(chunk: Buffer): SniffDecision {
    if (this.decided) throw new Error('H2Sniffer: already decided');
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    const d = this.scan();
    // answer only at a frame boundary: a partial frame means the rest is already on its way
    if (d.kind === 'more' && !this.settingsSent && this.pos === this.buf.length) {
      this.settingsSent = true;
      return { kind: 'more', sendSettings: true };
    }
    return d;
  }

  /** The client sent nothing decisive for too long: hand the connection over as it is. */
  timeout(): SniffDecision {
    return this.decide(false, 'timeout');
  }

  private scan(): SniffDecision {
    if (this.awaitAckFrom >= 0) return this.scanForAck();
    while (this.buf.length - this.pos >= FRAME_HEADER_LENGTH) {
      if (this.buf.length > MAX_SNIFF_BYTES)
        return this.decide(false, 'too many bytes before the first request');
      const start = this.pos;
      const h = readFrameHeader(this.buf, start);
      const end = start + FRAME_HEADER_LENGTH + h.length;
      if (h.length > MAX_SNIFF_BYTES) return this.decide(false, 'large frame');
      if (h.type === FrameType.HEADERS) return this.headers(start);
      if (end > this.buf.length) break;
      switch (h.type) {
        case FrameType.SETTINGS:
          if (h.flags & Flag.ACK) {
            // nothing but our own SETTINGS can have been acknowledged yet
            if (!this.settingsSent || this.ack) return this.decide(false, 'unexpected SETTINGS ACK');
            this.ack = { start, end };
          }
          break;
        case FrameType.WINDOW_UPDATE:
        case FrameType.PRIORITY:
          break;
        default:
          return this.decide(false, `frame type ${h.type} before the first request`);
      }
      this.pos = end;
    }
    if (this.buf.length > MAX_SNIFF_BYTES)
      return this.decide(false, 'too many bytes before the first request');
    return { kind: 'more', sendSettings: false };
  }

  /** The first header block starts at start: decide on it once it is complete. */
  private headers(start: number): SniffDecision {
    const fragments: Buffer[] = [];
    let off = start;
    for (;;) {
      if (this.buf.length - off < FRAME_HEADER_LENGTH) return { kind: 'more', sendSettings: false };
      const h = readFrameHeader(this.buf, off);
      const end = off + FRAME_HEADER_LENGTH + h.length;
      if (end > this.buf.length) return { kind: 'more', sendSettings: false };
      const payload = this.buf.subarray(off + FRAME_HEADER_LENGTH, end);
      if (off === start) {
        try {
          fragments.push(headersFragment(h.flags, payload));
        } catch {
          return this.decide(false, 'malformed HEADERS');
        }
      } else if (
        h.type === FrameType.CONTINUATION &&
        h.streamId === readFrameHeader(this.buf, start).streamId
      ) {
        fragments.push(payload);
      } else {
        return this.decide(false, 'malformed header block');
      }
      if (h.flags & Flag.END_HEADERS) break;
      off = end;
    }
    let repair: boolean;
    try {
      repair = needsRepair(new HpackDecoder().decode(Buffer.concat(fragments)));
    } catch {
      return this.decide(false, 'undecodable header block');
    }
    if (!repair && this.settingsSent && !this.ack) {
      this.awaitAckFrom = off + FRAME_HEADER_LENGTH + readFrameHeader(this.buf, off).length;
      return this.scanForAck();
    }
    return this.decide(repair, repair ? 'authority' : 'first request');
  }

  /** After a good first request: find the client's SETTINGS ACK among the frames that follow it. */
  private scanForAck(): SniffDecision {
    let off = this.awaitAckFrom;
    while (this.buf.length - off >= FRAME_HEADER_LENGTH) {
      if (this.buf.length > MAX_SNIFF_BYTES) break;
      const h = readFrameHeader(this.buf, off);
      const end = off + FRAME_HEADER_LENGTH + h.length;
      if (end > this.buf.length) break;
      if (h.type === FrameType.SETTINGS && h.flags & Flag.ACK) {
        this.ack = { start: off, end };
        return this.decide(false, 'first request');
      }
      off = end;
    }
    this.awaitAckFrom = off;
    if (this.buf.length > MAX_SNIFF_BYTES) return this.decide(false, 'settings ack not seen');
    return { kind: 'more', sendSettings: false };
  }

  private decide(repair: boolean, reason: string): SniffDecision {
    this.decided = true;
    const ackPending = this.settingsSent && !this.ack;
    const head = this.ack
      ? Buffer.concat([this.buf.subarray(0, this.ack.start), this.buf.subarray(this.ack.end)])
      : this.buf;
    if (repair || ackPending) {
      return {
        kind: 'repair',
        head,
        dropFirstSettingsAck: ackPending,
        reason: repair ? reason : 'settings ack pending',
      };
    }
    return { kind: 'fast', head, reason };
  }
}
