// gRPC message framing over HTTP/2 DATA frames: each message is a 5-byte prefix
// (1 byte compressed flag, 4 bytes big-endian length) followed by the encoded protobuf.

import { type Encoder, encodeToBuffer } from '../../pb/encode.js';

export const PREFIX_BYTES = 5;

/** Frames one encoded message. */
export function frameMessage(payload: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(PREFIX_BYTES + payload.length);
  out.set(payload, PREFIX_BYTES);
  return putPrefix(out);
}

/** Encodes and frames one message in a single buffer. */
export function encodeFramed<T>(codec: Encoder<T>, message: T): Buffer {
  return putPrefix(encodeToBuffer(codec, message, PREFIX_BYTES));
}

/** Fills in the prefix of a frame whose message already follows it: uncompressed, and its length. */
function putPrefix(frame: Buffer): Buffer {
  frame[0] = 0;
  frame.writeUInt32BE(frame.length - PREFIX_BYTES, 1);
  return frame;
}

export class FrameTooLargeError extends Error {
  constructor(
    readonly size: number,
    readonly limit: number,
  ) {
    super(`grpc: received message larger than max (${size} vs. ${limit})`);
  }
}

export class CompressedFrameError extends Error {
  constructor() {
    super('grpc: compressed messages are not supported; send uncompressed messages (grpc-encoding identity)');
  }
}

/**
 * Reassembles messages from arbitrarily split chunks. Keeps at most one partial message buffered;
 * a declared length over the limit is refused before its body is buffered.
 */
export class Deframer {
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  constructor(private readonly maxMessageBytes: number) {}

  /** Feeds a chunk; returns the complete messages it finished (usually zero or one). */
  push(chunk: Buffer): Buffer[] {
    let buf: Buffer;
    if (this.pendingBytes === 0) buf = chunk;
    else {
      this.pending.push(chunk);
      buf = Buffer.concat(this.pending, this.pendingBytes + chunk.length);
      this.pending = [];
      this.pendingBytes = 0;
    }
    const out: Buffer[] = [];
    let off = 0;
    while (buf.length - off >= PREFIX_BYTES) {
      const flag = buf[off];
      const len = buf.readUInt32BE(off + 1);
      if (len > this.maxMessageBytes) throw new FrameTooLargeError(len, this.maxMessageBytes);
      if (flag !== 0) throw new CompressedFrameError();
      if (buf.length - off - PREFIX_BYTES < len) break;
      out.push(buf.subarray(off + PREFIX_BYTES, off + PREFIX_BYTES + len));
      off += PREFIX_BYTES + len;
    }
    if (off < buf.length) {
      const rest = buf.subarray(off);
      this.pending.push(rest);
      this.pendingBytes = rest.length;
    }
    return out;
  }

  /** True when a message was started but not finished. */
  get hasPartial(): boolean {
    return this.pendingBytes > 0;
  }
}
