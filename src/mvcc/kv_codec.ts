// A lean codec for mvccpb.KeyValue, the value stored under every revision key.
// The bytes are exactly what gogoproto (etcd) and ts-proto produce: fields in number order, zero values
// omitted, int64 as varints (negative as 10 bytes). Hash and HashKV run over these bytes, so a mixed
// etcd/etcd-ts cluster only agrees if they are identical. Decoding returns views into the given buffer
// (no copies): pass a buffer you own.

import type { KeyValue } from '../gen/mvccpb/kv.js';

const TWO32 = 0x100000000;
const EMPTY = Buffer.alloc(0);

function varintLen(v: number): number {
  let n = 1;
  while (v >= 128) {
    v = Math.floor(v / 128);
    n++;
  }
  return n;
}

function writeVarint(buf: Buffer, pos: number, v: number): number {
  while (v >= 128) {
    buf[pos++] = (v % 128) | 0x80;
    v = Math.floor(v / 128);
  }
  buf[pos++] = v;
  return pos;
}

/** int64 fields: a non-negative number below 2^53 takes the fast path. */
function int64Len(v: number): number {
  return v < 0 ? 10 : varintLen(v);
}

function writeInt64(buf: Buffer, pos: number, v: number): number {
  if (v >= 0) return writeVarint(buf, pos, v);
  return writeBigVarint(buf, pos, BigInt.asUintN(64, BigInt(v)));
}

function writeBigVarint(buf: Buffer, pos: number, v: bigint): number {
  while (v >= 128n) {
    buf[pos++] = Number(v & 127n) | 0x80;
    v >>= 7n;
  }
  buf[pos++] = Number(v);
  return pos;
}

function bigVarintLen(v: bigint): number {
  let n = 1;
  while (v >= 128n) {
    v >>= 7n;
    n++;
  }
  return n;
}

/** Encodes a KeyValue as protobuf bytes. */
export function encodeKeyValue(kv: KeyValue): Buffer {
  const { key, value, createRevision, modRevision, version, lease } = kv;
  let size = 0;
  if (key.length !== 0) size += 1 + varintLen(key.length) + key.length;
  if (createRevision !== 0) size += 1 + int64Len(createRevision);
  if (modRevision !== 0) size += 1 + int64Len(modRevision);
  if (version !== 0) size += 1 + int64Len(version);
  if (value.length !== 0) size += 1 + varintLen(value.length) + value.length;
  let leaseU = 0n;
  if (lease !== 0n) {
    leaseU = BigInt.asUintN(64, lease);
    size += 1 + bigVarintLen(leaseU);
  }
  const buf = Buffer.allocUnsafe(size);
  let pos = 0;
  if (key.length !== 0) {
    buf[pos++] = 0x0a;
    pos = writeVarint(buf, pos, key.length);
    pos += key.copy(buf, pos);
  }
  if (createRevision !== 0) {
    buf[pos++] = 0x10;
    pos = writeInt64(buf, pos, createRevision);
  }
  if (modRevision !== 0) {
    buf[pos++] = 0x18;
    pos = writeInt64(buf, pos, modRevision);
  }
  if (version !== 0) {
    buf[pos++] = 0x20;
    pos = writeInt64(buf, pos, version);
  }
  if (value.length !== 0) {
    buf[pos++] = 0x2a;
    pos = writeVarint(buf, pos, value.length);
    pos += value.copy(buf, pos);
  }
  if (lease !== 0n) {
    buf[pos++] = 0x30;
    pos = writeBigVarint(buf, pos, leaseU);
  }
  return buf;
}

/** Encodes the value of a tombstone: a KeyValue holding only the key, as etcd writes it. */
export function encodeTombstone(key: Buffer): Buffer {
  const buf = Buffer.allocUnsafe(1 + varintLen(key.length) + key.length);
  buf[0] = 0x0a;
  const pos = writeVarint(buf, 1, key.length);
  key.copy(buf, pos);
  return buf;
}

// Decoder state, module-level to avoid allocating per varint.
let lo = 0;
let hi = 0;

/** Reads a varint into (lo, hi) 32-bit halves; returns the new position. */
function readVarint(buf: Buffer, pos: number): number {
  lo = 0;
  hi = 0;
  let shift = 0;
  let b: number;
  // low 28 bits
  for (; shift < 28; shift += 7) {
    b = buf[pos++];
    if (b === undefined) throw new Error('mvcc: truncated KeyValue');
    lo |= (b & 0x7f) << shift;
    if (b < 0x80) {
      lo >>>= 0;
      return pos;
    }
  }
  // bits 28..34 straddle the halves
  b = buf[pos++];
  if (b === undefined) throw new Error('mvcc: truncated KeyValue');
  lo = (lo | ((b & 0x0f) << 28)) >>> 0;
  hi = (b & 0x7f) >> 4;
  if (b < 0x80) return pos;
  for (shift = 3; shift < 32; shift += 7) {
    b = buf[pos++];
    if (b === undefined) throw new Error('mvcc: truncated KeyValue');
    hi |= (b & 0x7f) << shift;
    if (b < 0x80) {
      hi >>>= 0;
      return pos;
    }
  }
  throw new Error('mvcc: malformed varint in KeyValue');
}

function int64Number(): number {
  if (hi & 0x80000000) return Number(BigInt.asIntN(64, (BigInt(hi) << 32n) | BigInt(lo)));
  return hi * TWO32 + lo;
}

function int64Bigint(): bigint {
  if (hi === 0) return BigInt(lo);
  return BigInt.asIntN(64, (BigInt(hi) << 32n) | BigInt(lo));
}

/** Decodes KeyValue bytes. `key` and `value` are views into `buf`. */
export function decodeKeyValue(buf: Buffer): KeyValue {
  const kv: KeyValue = {
    key: EMPTY,
    createRevision: 0,
    modRevision: 0,
    version: 0,
    value: EMPTY,
    lease: 0n,
  };
  let pos = 0;
  const end = buf.length;
  while (pos < end) {
    pos = readVarint(buf, pos);
    const tag = lo;
    switch (tag) {
      case 0x0a:
      case 0x2a: {
        pos = readVarint(buf, pos);
        const len = lo;
        if (pos + len > end) throw new Error('mvcc: truncated KeyValue');
        const bytes = buf.subarray(pos, pos + len);
        pos += len;
        if (tag === 0x0a) kv.key = bytes;
        else kv.value = bytes;
        break;
      }
      case 0x10:
        pos = readVarint(buf, pos);
        kv.createRevision = int64Number();
        break;
      case 0x18:
        pos = readVarint(buf, pos);
        kv.modRevision = int64Number();
        break;
      case 0x20:
        pos = readVarint(buf, pos);
        kv.version = int64Number();
        break;
      case 0x30:
        pos = readVarint(buf, pos);
        kv.lease = int64Bigint();
        break;
      default:
        pos = skipField(buf, pos, tag);
    }
  }
  return kv;
}

/**
 * Decodes KeyValue bytes held in a buffer that will be reused (LMDB's getBinaryFast): the value is copied
 * out, and the key is the caller's (the index already holds it) instead of a copy.
 */
export function decodeKeyValueReusing(buf: Buffer, key: Buffer): KeyValue {
  const kv: KeyValue = { key, createRevision: 0, modRevision: 0, version: 0, value: EMPTY, lease: 0n };
  let pos = 0;
  const end = buf.length;
  while (pos < end) {
    pos = readVarint(buf, pos);
    const tag = lo;
    switch (tag) {
      case 0x0a:
      case 0x2a: {
        pos = readVarint(buf, pos);
        const len = lo;
        if (pos + len > end) throw new Error('mvcc: truncated KeyValue');
        if (tag === 0x2a && len > 0) {
          const v = Buffer.allocUnsafe(len);
          buf.copy(v, 0, pos, pos + len);
          kv.value = v;
        }
        pos += len;
        break;
      }
      case 0x10:
        pos = readVarint(buf, pos);
        kv.createRevision = int64Number();
        break;
      case 0x18:
        pos = readVarint(buf, pos);
        kv.modRevision = int64Number();
        break;
      case 0x20:
        pos = readVarint(buf, pos);
        kv.version = int64Number();
        break;
      case 0x30:
        pos = readVarint(buf, pos);
        kv.lease = int64Bigint();
        break;
      default:
        pos = skipField(buf, pos, tag);
    }
  }
  return kv;
}

function skipField(buf: Buffer, pos: number, tag: number): number {
  switch (tag & 7) {
    case 0:
      return readVarint(buf, pos);
    case 1:
      return pos + 8;
    case 2:
      pos = readVarint(buf, pos);
      return pos + lo;
    case 5:
      return pos + 4;
    default:
      throw new Error(`mvcc: unsupported wire type ${tag & 7} in KeyValue`);
  }
}
