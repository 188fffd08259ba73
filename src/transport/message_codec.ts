// The "message" stream and snapshot-header encoding: each raft message as an 8-byte big-endian
// length followed by the marshaled raftpb.Message.
import { Message } from '../gen/raftpb/raft.js';
import { encodeToBuffer } from '../pb/encode.js';
import { ByteQueue, putUInt64 } from './byte_queue.js';
import { READ_BYTES_LIMIT } from './constants.js';

/** One framed message: length prefix + body, in one buffer. */
export function encodeMessageFrame(m: Message): Buffer {
  const out = encodeToBuffer(Message, m, 8);
  putUInt64(out, out.length - 8, 0);
  return out;
}

export class ExceedSizeLimitError extends Error {
  constructor() {
    super('rafthttp: error limit exceeded');
  }
}

/**
 * Incremental decoder: push() received chunks, get back the messages they complete. A frame
 * larger than `limit` is an error (the stream must be dropped).
 */
export class MessageDecoder {
  readonly queue = new ByteQueue();
  private pending = -1; // body length of the frame being read, -1 while reading the prefix

  constructor(private readonly limit = READ_BYTES_LIMIT) {}

  /** Decodes every complete frame; calls `onMessage` in order. Throws on a malformed stream. */
  push(chunk: Buffer, onMessage: (m: Message) => void): void {
    const q = this.queue;
    q.push(chunk);
    for (;;) {
      if (this.pending < 0) {
        if (q.length < 8) return;
        const len = q.takeUInt64();
        if (len > this.limit) throw new ExceedSizeLimitError();
        this.pending = len;
      }
      if (q.length < this.pending) return;
      const body = q.take(this.pending);
      this.pending = -1;
      onMessage(Message.decode(body));
    }
  }

  /** Decodes at most one frame (the snapshot header); returns it, or undefined while incomplete. */
  pushOne(chunk: Buffer): Message | undefined {
    const q = this.queue;
    q.push(chunk);
    if (this.pending < 0) {
      if (q.length < 8) return undefined;
      const len = q.takeUInt64();
      if (len > this.limit) throw new ExceedSizeLimitError();
      this.pending = len;
    }
    if (q.length < this.pending) return undefined;
    const body = q.take(this.pending);
    this.pending = -1;
    return Message.decode(body);
  }
}
