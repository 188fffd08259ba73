// Revisions and their on-disk keys, exactly as etcd lays them out in the `key` bucket:
// 8-byte big-endian main revision, '_', 8-byte big-endian sub revision, and a trailing 't' for a tombstone.
// Byte order of these keys is revision order, so a cursor over the bucket walks history in order.

/** Length of a revision key without the tombstone mark. */
export const REV_BYTES_LEN = 17;
/** Length of a revision key with the tombstone mark. */
export const MARKED_REV_BYTES_LEN = 18;
const TOMBSTONE_MARK = 0x74; // 't'
const SEP = 0x5f; // '_'
const TWO32 = 0x100000000;

export interface Revision {
  main: number;
  sub: number;
}

function writeU64(buf: Buffer, off: number, v: number): void {
  const hi = Math.floor(v / TWO32);
  buf.writeUInt32BE(hi >>> 0, off);
  buf.writeUInt32BE(v >>> 0, off + 4);
}

function readU64(buf: Buffer, off: number): number {
  return buf.readUInt32BE(off) * TWO32 + buf.readUInt32BE(off + 4);
}

/** The backend key of revision (main, sub); with `tombstone` the 18-byte marked form. */
export function revToBytes(main: number, sub: number, tombstone = false): Buffer {
  const b = Buffer.allocUnsafe(tombstone ? MARKED_REV_BYTES_LEN : REV_BYTES_LEN);
  writeU64(b, 0, main);
  b[8] = SEP;
  writeU64(b, 9, sub);
  if (tombstone) b[17] = TOMBSTONE_MARK;
  return b;
}

const scratch = Buffer.alloc(MARKED_REV_BYTES_LEN);
const scratchPlain = scratch.subarray(0, REV_BYTES_LEN);

/**
 * Like revToBytes, into a shared buffer: valid until the next call. For keys handed straight to LMDB,
 * which copies them.
 */
export function revToScratch(main: number, sub: number, tombstone = false): Buffer {
  writeU64(scratch, 0, main);
  scratch[8] = SEP;
  writeU64(scratch, 9, sub);
  if (!tombstone) return scratchPlain;
  scratch[17] = TOMBSTONE_MARK;
  return scratch;
}

/** Parses a backend revision key (17 or 18 bytes). */
export function bytesToRev(b: Buffer): Revision {
  return { main: readU64(b, 0), sub: readU64(b, 9) };
}

export function isTombstoneKey(b: Buffer): boolean {
  return b.length === MARKED_REV_BYTES_LEN && b[17] === TOMBSTONE_MARK;
}

/** Orders revisions: negative when a < b. */
export function compareRev(aMain: number, aSub: number, bMain: number, bSub: number): number {
  return aMain !== bMain ? aMain - bMain : aSub - bSub;
}

/**
 * A set of revisions. Most revisions have sub 0 (one change per revision), so those are kept as plain
 * numbers; the rest as "main_sub" strings.
 */
export class RevisionSet {
  private readonly mains = new Set<number>();
  private readonly others = new Set<string>();

  add(main: number, sub: number): void {
    if (sub === 0) this.mains.add(main);
    else this.others.add(`${main}_${sub}`);
  }

  has(main: number, sub: number): boolean {
    return sub === 0 ? this.mains.has(main) : this.others.has(`${main}_${sub}`);
  }

  get size(): number {
    return this.mains.size + this.others.size;
  }
}
