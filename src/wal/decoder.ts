// Frame decoder: walks the segments of a WAL, checks the rolling CRC-32C, and tells a torn tail
// (the last segment ends in a partial frame, or a frame holds a zeroed disk sector) from corruption
// (anything else), which is an error naming the file and offset.
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { crc32c } from '@node-rs/crc32';
import { WalError } from './errors.js';
import {
  CRC_TYPE,
  FRAME_SIZE_BYTES,
  MAX_RECORD_BYTES,
  MIN_SECTOR_SIZE,
  recordTypeName,
} from './record_types.js';

export interface DecodedRecord {
  type: number;
  crc: number;
  /** A view into the segment buffer: copy it to keep it. */
  data: Buffer;
  /** Segment path and offset of the record's frame. */
  file: string;
  offset: number;
}

/** How decoding ended: `offset` is just past the last valid record of the last segment read. */
export interface DecodeEnd {
  file: string;
  offset: number;
  /** Set when the last segment ends in a torn write after `offset`. */
  torn?: string;
}

const hex = (n: number) => `0x${n.toString(16).padStart(8, '0')}`;

/** Splits a length word into record and padding byte counts. */
export function readLengthWord(buf: Buffer, off: number): { recBytes: number; padBytes: number } {
  const low = buf.readUInt32LE(off);
  const high = buf.readUInt32LE(off + 4);
  const recBytes = low + (high & 0x00ffffff) * 0x100000000;
  const padBytes = high & 0x80000000 ? (high >>> 24) & 0x7 : 0;
  return { recBytes, padBytes };
}

/** True when any sector-aligned piece of `buf[start, end)` (file offsets) is all zeros: a torn write. */
export function hasZeroSector(buf: Buffer, start: number, end: number): boolean {
  let off = start;
  while (off < end) {
    const chunkEnd = Math.min(end, off - (off % MIN_SECTOR_SIZE) + MIN_SECTOR_SIZE);
    let zero = true;
    for (let i = off; i < chunkEnd; i++) {
      if (buf[i] !== 0) {
        zero = false;
        break;
      }
    }
    if (zero) return true;
    off = chunkEnd;
  }
  return false;
}

let vpos = 0;
/** Reads a varint at `off` below `end` into a number, setting `vpos`; -1 if malformed. */
function readVarint(buf: Buffer, off: number, end: number): number {
  let result = 0;
  let mul = 1;
  for (let i = 0; i < 10; i++) {
    if (off >= end) return -1;
    const b = buf[off++]!;
    result += (b & 0x7f) * mul;
    mul *= 128;
    if (b < 0x80) {
      vpos = off;
      return result;
    }
  }
  return -1;
}

/** Parses a walpb.Record in buf[start, end); null if it is not a valid encoding. */
export function parseRecord(
  buf: Buffer,
  start: number,
  end: number,
): { type: number; crc: number; data: Buffer } | null {
  let type = 0;
  let crc = 0;
  let data: Buffer = buf.subarray(start, start);
  let off = start;
  while (off < end) {
    const tag = readVarint(buf, off, end);
    if (tag <= 0) return null;
    off = vpos;
    const wire = tag & 7;
    const field = Math.floor(tag / 8);
    if (wire === 0) {
      const v = readVarint(buf, off, end);
      if (v < 0) return null;
      off = vpos;
      if (field === 1) type = v;
      else if (field === 2) crc = v >>> 0;
    } else if (wire === 2) {
      const len = readVarint(buf, off, end);
      if (len < 0 || vpos + len > end) return null;
      off = vpos + len;
      if (field === 3) data = buf.subarray(vpos, off);
    } else if (wire === 1) {
      off += 8;
    } else if (wire === 5) {
      off += 4;
    } else {
      return null;
    }
  }
  return off === end ? { type, crc, data } : null;
}

/**
 * Reads the segments in order. The running crc continues across segments; each segment starts
 * with a crc record carrying the running crc of the previous one, which the caller checks with
 * `checkCrcRecord`. Torn tails are tolerated only in the last segment.
 */
export class WalDecoder {
  crc = 0;
  end: DecodeEnd = { file: '', offset: 0 };

  constructor(
    private readonly files: readonly string[],
    private readonly read: (path: string) => Buffer = (p) => readFileSync(p),
  ) {}

  /** Validates a crc record against the running crc, then continues from the crc it carries. */
  checkCrcRecord(rec: DecodedRecord): void {
    if (this.crc !== 0 && rec.crc !== this.crc) {
      throw new WalError(
        'CRC_MISMATCH',
        `wal: crc mismatch: crc record in ${basename(rec.file)} at offset ${rec.offset} carries ${hex(rec.crc)}, ` +
          `the records before it sum to ${hex(this.crc)}`,
        rec.file,
        rec.offset,
      );
    }
    this.crc = rec.crc;
  }

  *records(): Generator<DecodedRecord, DecodeEnd> {
    for (let i = 0; i < this.files.length; i++) {
      const file = this.files[i]!;
      const isLast = i === this.files.length - 1;
      yield* this.segment(file, this.read(file), isLast);
    }
    return this.end;
  }

  private *segment(file: string, buf: Buffer, isLast: boolean): Generator<DecodedRecord, void> {
    const name = basename(file);
    let off = 0;
    this.end = { file, offset: 0 };
    const fail = (code: 'CORRUPT' | 'CRC_MISMATCH' | 'MAX_ENTRY_SIZE', what: string): never => {
      throw new WalError(code, `wal: ${what} in ${name} at offset ${off}`, file, off);
    };
    const torn = (why: string) => {
      this.end = { file, offset: off, torn: why };
    };
    for (;;) {
      if (off === buf.length) return;
      if (off + FRAME_SIZE_BYTES > buf.length) {
        if (isLast) return torn('partial length word');
        fail('CORRUPT', 'segment ends inside a frame header');
      }
      const { recBytes, padBytes } = readLengthWord(buf, off);
      if (recBytes === 0 && padBytes === 0 && buf.readUInt32LE(off + 4) === 0) return; // preallocated zeros: end
      if (recBytes >= MAX_RECORD_BYTES - padBytes) {
        fail('MAX_ENTRY_SIZE', `record of ${recBytes} bytes exceeds the ${MAX_RECORD_BYTES}-byte limit`);
      }
      const start = off + FRAME_SIZE_BYTES;
      const frameEnd = start + recBytes + padBytes;
      if (frameEnd > buf.length) {
        if (isLast) return torn('partial frame at end of file');
        fail('CORRUPT', 'segment ends inside a frame');
      }
      const isTorn = () => isLast && hasZeroSector(buf, start, frameEnd);
      const rec = parseRecord(buf, start, start + recBytes);
      if (rec === null) {
        if (isTorn()) return torn('zeroed sector in frame');
        fail('CORRUPT', `malformed record (${recBytes} bytes)`);
      }
      const r = rec!;
      if (r.type !== CRC_TYPE) {
        const crc = r.data.length > 0 ? crc32c(r.data, this.crc) : this.crc;
        if (crc !== r.crc) {
          if (isTorn()) return torn('zeroed sector in frame');
          fail(
            'CRC_MISMATCH',
            `crc mismatch (${recordTypeName(r.type)} record: stored ${hex(r.crc)}, computed ${hex(crc)})`,
          );
        }
        this.crc = crc;
      }
      const recOffset = off;
      off = frameEnd;
      this.end = { file, offset: off };
      yield { type: r.type, crc: r.crc, data: r.data, file, offset: recOffset };
    }
  }
}
