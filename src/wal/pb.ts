// Byte-exact encoders for the few messages the WAL and .snap files hold, in the layout etcd 3.4's
// gogo-protobuf (proto2, nullable=false) marshalers produce: scalar fields are always written, even
// when zero; bytes fields whenever present; repeated uint64 unpacked. The generated ts-proto
// codecs (proto3) decode these fine but would encode differently (zeros omitted, packed repeats).
import type { ConfState, Entry, HardState, Snapshot } from '../gen/raftpb/raft.js';

type U64 = number | bigint;

export function varintSize(v: U64): number {
  if (typeof v === 'bigint') {
    let n = 1;
    for (let x = BigInt.asUintN(64, v); x >= 0x80n; x >>= 7n) n++;
    return n;
  }
  if (v < 0x80) return 1;
  let n = 1;
  for (let x = v; x >= 0x80; x = Math.floor(x / 128)) n++;
  return n;
}

/** Writes `v` as a protobuf varint at `off`; returns the offset after it. */
export function putVarint(buf: Uint8Array, off: number, v: U64): number {
  if (typeof v === 'bigint') {
    let x = BigInt.asUintN(64, v);
    while (x >= 0x80n) {
      buf[off++] = Number(x & 0x7fn) | 0x80;
      x >>= 7n;
    }
    buf[off++] = Number(x);
    return off;
  }
  if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`wal: not a uint64: ${v}`);
  while (v >= 0x80) {
    buf[off++] = (v % 128) | 0x80;
    v = Math.floor(v / 128);
  }
  buf[off++] = v;
  return off;
}

/** A field list: [tag byte, value] pairs for varints, or [tag byte, bytes] for length-delimited ones. */
type Field = [tag: number, value: U64 | Uint8Array];

function encodeFields(fields: readonly Field[]): Buffer {
  let size = 0;
  for (const [, v] of fields) {
    size += 1 + (v instanceof Uint8Array ? varintSize(v.length) + v.length : varintSize(v));
  }
  const out = Buffer.allocUnsafe(size);
  let off = 0;
  for (const [tag, v] of fields) {
    out[off++] = tag;
    if (v instanceof Uint8Array) {
      off = putVarint(out, off, v.length);
      out.set(v, off);
      off += v.length;
    } else {
      off = putVarint(out, off, v);
    }
  }
  return out;
}

// Entries and hard states are encoded once per raft Ready on the write path: sized and written
// directly, without the generic field list.

export function encodeEntry(e: Entry): Buffer {
  // Type(1), Term(2), Index(3), Data(4) when present. Go's nil Data (empty entries) is not written.
  const data = e.data;
  const dataLen = data ? data.length : 0;
  const size =
    3 +
    varintSize(e.type) +
    varintSize(e.term) +
    varintSize(e.index) +
    (dataLen > 0 ? 1 + varintSize(dataLen) + dataLen : 0);
  const out = Buffer.allocUnsafe(size);
  out[0] = 0x08;
  let off = putVarint(out, 1, e.type);
  out[off++] = 0x10;
  off = putVarint(out, off, e.term);
  out[off++] = 0x18;
  off = putVarint(out, off, e.index);
  if (dataLen > 0) {
    out[off++] = 0x22;
    off = putVarint(out, off, dataLen);
    out.set(data, off);
  }
  return out;
}

export function encodeHardState(s: HardState): Buffer {
  const out = Buffer.allocUnsafe(3 + varintSize(s.term) + varintSize(s.vote) + varintSize(s.commit));
  out[0] = 0x08;
  let off = putVarint(out, 1, s.term);
  out[off++] = 0x10;
  off = putVarint(out, off, s.vote);
  out[off++] = 0x18;
  putVarint(out, off, s.commit);
  return out;
}

/** walpb.Snapshot: the marker a WAL records when a raft snapshot is taken. */
export function encodeWalSnapshot(s: { index: number; term: number }): Buffer {
  return encodeFields([
    [0x08, s.index],
    [0x10, s.term],
  ]);
}

export function encodeConfState(c: ConfState | undefined): Buffer {
  const f: Field[] = [];
  for (const v of c?.voters ?? []) f.push([0x08, v]);
  for (const v of c?.learners ?? []) f.push([0x10, v]);
  for (const v of c?.votersOutgoing ?? []) f.push([0x18, v]);
  for (const v of c?.learnersNext ?? []) f.push([0x20, v]);
  f.push([0x28, c?.autoLeave ? 1 : 0]);
  return encodeFields(f);
}

export function encodeRaftSnapshot(s: Snapshot): Buffer {
  const md = s.metadata;
  const meta = encodeFields([
    [0x0a, encodeConfState(md?.confState)],
    [0x10, md?.index ?? 0],
    [0x18, md?.term ?? 0],
  ]);
  const f: Field[] = [];
  if (s.data && s.data.length > 0) f.push([0x0a, s.data]);
  f.push([0x12, meta]);
  return encodeFields(f);
}

/** snappb.snapshot: crc(1) always, data(2). */
export function encodeSnapFile(crc: number, data: Uint8Array): Buffer {
  return encodeFields([
    [0x08, crc >>> 0],
    [0x12, data],
  ]);
}

/** etcdserverpb.Metadata, the payload of a WAL's metadata records: NodeID(1), ClusterID(2), both always written. */
export function encodeMetadata(m: { NodeID: bigint; ClusterID: bigint }): Buffer {
  return encodeFields([
    [0x08, m.NodeID],
    [0x10, m.ClusterID],
  ]);
}

export function isEmptyHardState(s: HardState): boolean {
  return !s.term && !s.vote && !s.commit;
}
