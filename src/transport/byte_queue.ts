// A FIFO of received chunks from which decoders take exact byte counts. Taking from within one
// chunk is a zero-copy subarray; only a frame that straddles chunks is copied, once.

export class ByteQueue {
  private chunks: Buffer[] = [];
  private offset = 0; // consumed bytes of chunks[0]
  length = 0;

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.length += chunk.length;
  }

  /** Removes and returns the next n bytes; the caller checks `length >= n` first. */
  take(n: number): Buffer {
    if (n > this.length) throw new RangeError(`take(${n}) with ${this.length} bytes queued`);
    this.length -= n;
    const first = this.chunks[0];
    if (n === 0) return Buffer.alloc(0);
    if (first.length - this.offset >= n) {
      const out = first.subarray(this.offset, this.offset + n);
      this.offset += n;
      if (this.offset === first.length) {
        this.chunks.shift();
        this.offset = 0;
      }
      return out;
    }
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const c = this.chunks[0];
      const avail = c.length - this.offset;
      const want = n - filled;
      if (avail <= want) {
        c.copy(out, filled, this.offset);
        filled += avail;
        this.chunks.shift();
        this.offset = 0;
      } else {
        c.copy(out, filled, this.offset, this.offset + want);
        this.offset += want;
        filled += want;
      }
    }
    return out;
  }

  takeUInt8(): number {
    const first = this.chunks[0];
    const v = first[this.offset];
    this.length -= 1;
    if (++this.offset === first.length) {
      this.chunks.shift();
      this.offset = 0;
    }
    return v;
  }

  /** An 8-byte big-endian unsigned integer as a JS number (exact below 2^53). */
  takeUInt64(): number {
    const first = this.chunks[0];
    const off = this.offset;
    if (first.length - off >= 8) {
      const v = first.readUInt32BE(off) * 0x1_0000_0000 + first.readUInt32BE(off + 4);
      this.length -= 8;
      this.offset += 8;
      if (this.offset === first.length) {
        this.chunks.shift();
        this.offset = 0;
      }
      return v;
    }
    const b = this.take(8);
    return b.readUInt32BE(0) * 0x1_0000_0000 + b.readUInt32BE(4);
  }

  /** Everything still queued, as one buffer (used to hand the rest of a body on). */
  drain(): Buffer {
    return this.take(this.length);
  }
}

/** Writes an 8-byte big-endian unsigned integer (a JS number below 2^53) at `off`. */
export function putUInt64(buf: Buffer, v: number, off: number): void {
  buf.writeUInt32BE(Math.floor(v / 0x1_0000_0000), off);
  buf.writeUInt32BE(v >>> 0, off + 4);
}
