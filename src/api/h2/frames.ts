// The few pieces of HTTP/2 framing (RFC 9113 section 4 and 6) the client-port listener needs to
// look at a connection's header blocks before Node's HTTP/2 server sees them.

export const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
export const FRAME_HEADER_LENGTH = 9;
/** SETTINGS_MAX_FRAME_SIZE's initial value; our server never raises it. */
export const DEFAULT_MAX_FRAME_SIZE = 16384;

export const FrameType = {
  DATA: 0,
  HEADERS: 1,
  PRIORITY: 2,
  RST_STREAM: 3,
  SETTINGS: 4,
  PUSH_PROMISE: 5,
  PING: 6,
  GOAWAY: 7,
  WINDOW_UPDATE: 8,
  CONTINUATION: 9,
} as const;

export const Flag = {
  /** DATA, HEADERS */
  END_STREAM: 0x1,
  /** SETTINGS, PING */
  ACK: 0x1,
  /** HEADERS, PUSH_PROMISE, CONTINUATION */
  END_HEADERS: 0x4,
  /** DATA, HEADERS, PUSH_PROMISE */
  PADDED: 0x8,
  /** HEADERS */
  PRIORITY: 0x20,
} as const;

export interface FrameHeader {
  length: number;
  type: number;
  flags: number;
  streamId: number;
}

export function readFrameHeader(buf: Uint8Array, off = 0): FrameHeader {
  return {
    length: (buf[off] << 16) | (buf[off + 1] << 8) | buf[off + 2],
    type: buf[off + 3],
    flags: buf[off + 4],
    streamId: ((buf[off + 5] & 0x7f) << 24) | (buf[off + 6] << 16) | (buf[off + 7] << 8) | buf[off + 8],
  };
}

export function writeFrameHeader(buf: Uint8Array, off: number, h: FrameHeader): void {
  buf[off] = (h.length >>> 16) & 0xff;
  buf[off + 1] = (h.length >>> 8) & 0xff;
  buf[off + 2] = h.length & 0xff;
  buf[off + 3] = h.type;
  buf[off + 4] = h.flags;
  buf[off + 5] = (h.streamId >>> 24) & 0x7f;
  buf[off + 6] = (h.streamId >>> 16) & 0xff;
  buf[off + 7] = (h.streamId >>> 8) & 0xff;
  buf[off + 8] = h.streamId & 0xff;
}

export function frame(
  type: number,
  flags: number,
  streamId: number,
  payload: Uint8Array = Buffer.alloc(0),
): Buffer {
  const out = Buffer.allocUnsafe(FRAME_HEADER_LENGTH + payload.length);
  writeFrameHeader(out, 0, { length: payload.length, type, flags, streamId });
  out.set(payload, FRAME_HEADER_LENGTH);
  return out;
}

/** An empty SETTINGS frame: a valid server preface that changes nothing. */
export const EMPTY_SETTINGS = frame(FrameType.SETTINGS, 0, 0);

export class FrameError extends Error {
  override readonly name = 'FrameError';
}

/** The header block fragment of a HEADERS frame's payload: padding and priority fields removed. */
export function headersFragment(flags: number, payload: Buffer): Buffer {
  let start = 0;
  let end = payload.length;
  if (flags & Flag.PADDED) {
    if (payload.length < 1) throw new FrameError('HEADERS: padded frame without pad length');
    end -= payload[0];
    start = 1;
  }
  if (flags & Flag.PRIORITY) start += 5;
  if (start > end) throw new FrameError('HEADERS: padding or priority larger than the frame');
  return payload.subarray(start, end);
}

/**
 * A header block as HEADERS + CONTINUATION frames of at most maxFrameSize payload bytes each:
 * END_STREAM on the HEADERS frame when asked, END_HEADERS on the last frame, no padding or priority.
 */
export function headerFrames(
  streamId: number,
  block: Buffer,
  endStream: boolean,
  maxFrameSize = DEFAULT_MAX_FRAME_SIZE,
): Buffer {
  const count = Math.max(1, Math.ceil(block.length / maxFrameSize));
  const out = Buffer.allocUnsafe(block.length + count * FRAME_HEADER_LENGTH);
  let off = 0;
  for (let i = 0; i < count; i++) {
    const part = block.subarray(i * maxFrameSize, (i + 1) * maxFrameSize);
    const last = i === count - 1;
    const type = i === 0 ? FrameType.HEADERS : FrameType.CONTINUATION;
    const flags = (i === 0 && endStream ? Flag.END_STREAM : 0) | (last ? Flag.END_HEADERS : 0);
    writeFrameHeader(out, off, { length: part.length, type, flags, streamId });
    out.set(part, off + FRAME_HEADER_LENGTH);
    off += FRAME_HEADER_LENGTH + part.length;
  }
  return out;
}
