// Frame encoder: walpb.Records, each framed by an 8-byte length word and padded to 8 bytes, with
// the rolling CRC-32C (each record's crc continues from the previous record's).
import { crc32c } from '@node-rs/crc32';
import { putVarint, varintSize } from './pb.js';
import { CRC_TYPE, FRAME_SIZE_BYTES } from './record_types.js';

export interface RawRecord {
  type: number;
  /** Payload; omitted for crc records (Go's nil data: the field is not written). */
  data?: Uint8Array;
}

/** The length word: record size in the low 56 bits; if padded, top bit set and pad count in bits 56-58. */
export function writeLengthWord(buf: Buffer, off: number, recBytes: number, padBytes: number): void {
  const high = Math.floor(recBytes / 0x100000000);
  buf.writeUInt32LE(recBytes >>> 0, off);
  buf.writeUInt32LE((padBytes === 0 ? high : high | ((0x80 | padBytes) << 24)) >>> 0, off + 4);
}

export function padFor(recBytes: number): number {
  return (8 - (recBytes % 8)) % 8;
}

export class FrameEncoder {
  /** @param crc the running crc to continue from (the previous segment's, or 0 for a new WAL). */
  constructor(public crc: number) {}

  /** Encodes `records` into one buffer of frames and advances the running crc. */
  encode(records: readonly RawRecord[]): Buffer {
    const n = records.length;
    const crcs = new Array<number>(n);
    const sizes = new Array<number>(n);
    let total = 0;
    let crc = this.crc;
    for (let i = 0; i < n; i++) {
      const r = records[i]!;
      const data = r.data;
      // A crc record's crc field carries the running crc itself (etcd: crc.Write(nil), Sum32()).
      if (data !== undefined && r.type !== CRC_TYPE && data.length > 0) crc = crc32c(data as Buffer, crc);
      crcs[i] = crc;
      const recBytes =
        1 +
        varintSize(r.type) +
        1 +
        varintSize(crc) +
        (data === undefined ? 0 : 1 + varintSize(data.length) + data.length);
      sizes[i] = recBytes;
      total += FRAME_SIZE_BYTES + recBytes + padFor(recBytes);
    }
    const out = Buffer.allocUnsafe(total);
    let off = 0;
    for (let i = 0; i < n; i++) {
      const r = records[i]!;
      const recBytes = sizes[i]!;
      const pad = padFor(recBytes);
      writeLengthWord(out, off, recBytes, pad);
      off += FRAME_SIZE_BYTES;
      out[off++] = 0x08;
      off = putVarint(out, off, r.type);
      out[off++] = 0x10;
      off = putVarint(out, off, crcs[i]!);
      if (r.data !== undefined) {
        out[off++] = 0x1a;
        off = putVarint(out, off, r.data.length);
        out.set(r.data, off);
        off += r.data.length;
      }
      out.fill(0, off, off + pad);
      off += pad;
    }
    this.crc = crc;
    return out;
  }
}
