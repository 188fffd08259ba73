// bbolt on-disk format: constants, page header, page elements, bucket headers and meta pages.
//
// Facts settled against go.etcd.io/bbolt (page.go, db.go, bucket.go, node.go, freelist.go, tx.go).
// bbolt writes its structs in native byte order; every platform etcd ships for that matters
// (amd64, arm64, ppc64le, s390x aside) is little-endian, and a file is only portable between
// machines of the same endianness, so this module reads and writes little-endian throughout.
//
// File layout: an array of pages, page N at byte offset N * pageSize. Pages 0 and 1 are the two
// meta pages; everything else is reached from the meta's root bucket and freelist pointers.
//
// Page header (16 bytes):       id u64 @0, flags u16 @8, count u16 @10, overflow u32 @12
//   A page whose content needs more than pageSize bytes occupies 1 + overflow consecutive pages;
//   only the first carries a header.
// Leaf element (16 bytes):      flags u32, pos u32, ksize u32, vsize u32
// Branch element (16 bytes):    pos u32, ksize u32, pgid u64
//   Elements form an array right after the header. `pos` is the distance from the element's
//   own first byte to its key (not from the page start); the value follows the key directly.
//   Branch element keys are the first key of the child page they point to.
// Bucket value (leaf element with flags & 0x01): header {root pgid u64, sequence u64}; when
//   root == 0 the bucket is "inline" and a complete leaf page image (header + elements + data,
//   page id 0) follows the header inside the value itself.
// Meta (64 bytes, after a page header on pages 0 and 1):
//   magic u32 @0, version u32 @4, pageSize u32 @8, flags u32 @12, root bucket {root u64 @16,
//   sequence u64 @24}, freelist pgid u64 @32, pgid (high water mark) u64 @40, txid u64 @48,
//   checksum u64 @56 = FNV-1a 64 over bytes [0, 56) of the meta.
//   Readers use the meta with the higher txid that validates, else the other one.
// Freelist page: count u16 holds the number of free pgids (u64 each, after the header); when the
//   count is >= 0xFFFF the header says 0xFFFF and the real count is the first u64.
//   meta.freelist == 0xFFFF_FFFF_FFFF_FFFF means "no freelist page" (NoFreelistSync, which
//   etcd enables on Linux); readers then treat every unreachable page below pgid as free.

export const MAGIC = 0xed0cdaed;
export const VERSION = 2;
export const DEFAULT_PAGE_SIZE = 4096;

export const PAGE_HEADER_SIZE = 16;
export const LEAF_ELEMENT_SIZE = 16;
export const BRANCH_ELEMENT_SIZE = 16;
export const BUCKET_HEADER_SIZE = 16;
export const META_SIZE = 64;
/** Bytes of the meta covered by the checksum (everything before the checksum field). */
export const META_CHECKSUM_OFFSET = 56;

export const BRANCH_PAGE = 0x01;
export const LEAF_PAGE = 0x02;
export const META_PAGE = 0x04;
export const FREELIST_PAGE = 0x10;

/** Leaf element flag: the value is a bucket header (+ inline page), not user data. */
export const BUCKET_LEAF_FLAG = 0x01;

/** meta.freelist value meaning the freelist is not persisted. */
export const PGID_NO_FREELIST = 0xffff_ffff_ffff_ffffn;

/** bbolt's limits (bucket.go). Keys must also be non-empty. */
export const MAX_KEY_SIZE = 32768;
export const MAX_VALUE_SIZE = 2 ** 31 - 2;

/** A page's element count is a u16; bbolt panics at 0xFFFF inodes, so a page holds fewer. */
export const MAX_PAGE_ELEMENTS = 0xfffe;
/** Freelist count sentinel: real count is in the first u64 after the header. */
export const FREELIST_COUNT_OVERFLOW = 0xffff;

/** Error raised for anything that is not a well-formed bbolt file. */
export class BboltError extends Error {
  constructor(
    readonly code:
      | 'ENOTBBOLT'
      | 'EVERSION'
      | 'ECHECKSUM'
      | 'ECORRUPT'
      | 'ETRUNCATED'
      | 'ETRAILER'
      | 'ENOBUCKET'
      | 'EINPUT',
    message: string,
  ) {
    super(`bbolt: ${message}`);
    this.name = 'BboltError';
  }
}

export interface PageHeader {
  id: bigint;
  flags: number;
  count: number;
  overflow: number;
}

export function readPageHeader(buf: Buffer, off = 0): PageHeader {
  return {
    id: buf.readBigUInt64LE(off),
    flags: buf.readUInt16LE(off + 8),
    count: buf.readUInt16LE(off + 10),
    overflow: buf.readUInt32LE(off + 12),
  };
}

export function writePageHeader(buf: Buffer, h: PageHeader, off = 0): void {
  buf.writeBigUInt64LE(h.id, off);
  buf.writeUInt16LE(h.flags, off + 8);
  buf.writeUInt16LE(h.count, off + 10);
  buf.writeUInt32LE(h.overflow, off + 12);
}

export function pageTypeName(flags: number): string {
  if (flags & BRANCH_PAGE) return 'branch';
  if (flags & LEAF_PAGE) return 'leaf';
  if (flags & META_PAGE) return 'meta';
  if (flags & FREELIST_PAGE) return 'freelist';
  return `unknown<${flags.toString(16).padStart(2, '0')}>`;
}

export interface BucketHeader {
  /** Page id of the bucket's root page; 0 for an inline bucket. */
  root: bigint;
  sequence: bigint;
}

export function encodeBucketHeader(
  h: BucketHeader,
  buf: Buffer = Buffer.alloc(BUCKET_HEADER_SIZE),
  off = 0,
): Buffer {
  buf.writeBigUInt64LE(h.root, off);
  buf.writeBigUInt64LE(h.sequence, off + 8);
  return buf;
}

export function decodeBucketHeader(buf: Buffer, off = 0): BucketHeader {
  return { root: buf.readBigUInt64LE(off), sequence: buf.readBigUInt64LE(off + 8) };
}

export interface Meta {
  magic: number;
  version: number;
  pageSize: number;
  flags: number;
  root: BucketHeader;
  freelist: bigint;
  /** High water mark: number of pages in use; the file holds at least pgid * pageSize bytes. */
  pgid: bigint;
  txid: bigint;
  checksum: bigint;
}

/** Decodes the meta stored after the page header of a meta page starting at `off`. */
export function decodeMeta(buf: Buffer, off = 0): Meta {
  const m = off + PAGE_HEADER_SIZE;
  return {
    magic: buf.readUInt32LE(m),
    version: buf.readUInt32LE(m + 4),
    pageSize: buf.readUInt32LE(m + 8),
    flags: buf.readUInt32LE(m + 12),
    root: decodeBucketHeader(buf, m + 16),
    freelist: buf.readBigUInt64LE(m + 32),
    pgid: buf.readBigUInt64LE(m + 40),
    txid: buf.readBigUInt64LE(m + 48),
    checksum: buf.readBigUInt64LE(m + 56),
  };
}

/** Checks magic, version and checksum like bbolt's meta.validate (a zero checksum is accepted). */
export function validateMeta(buf: Buffer, off = 0): { meta: Meta; error?: BboltError } {
  const meta = decodeMeta(buf, off);
  if (meta.magic !== MAGIC)
    return { meta, error: new BboltError('ENOTBBOLT', 'invalid database (bad magic)') };
  if (meta.version !== VERSION) {
    return { meta, error: new BboltError('EVERSION', `version mismatch: ${meta.version}, want ${VERSION}`) };
  }
  const start = off + PAGE_HEADER_SIZE;
  const sum = fnv1a64(buf.subarray(start, start + META_CHECKSUM_OFFSET));
  if (meta.checksum !== 0n && meta.checksum !== sum) {
    return { meta, error: new BboltError('ECHECKSUM', 'meta checksum error') };
  }
  return { meta };
}

/**
 * Writes a complete meta page (header + meta with a freshly computed checksum) into `page`,
 * which must be at least PAGE_HEADER_SIZE + META_SIZE bytes. bbolt puts txid T on page T % 2.
 */
export function writeMetaPage(
  page: Buffer,
  pageId: bigint,
  meta: Omit<Meta, 'checksum' | 'magic' | 'version'>,
): void {
  page.fill(0, 0, PAGE_HEADER_SIZE + META_SIZE);
  writePageHeader(page, { id: pageId, flags: META_PAGE, count: 0, overflow: 0 });
  const m = PAGE_HEADER_SIZE;
  page.writeUInt32LE(MAGIC, m);
  page.writeUInt32LE(VERSION, m + 4);
  page.writeUInt32LE(meta.pageSize, m + 8);
  page.writeUInt32LE(meta.flags, m + 12);
  encodeBucketHeader(meta.root, page, m + 16);
  page.writeBigUInt64LE(meta.freelist, m + 32);
  page.writeBigUInt64LE(meta.pgid, m + 40);
  page.writeBigUInt64LE(meta.txid, m + 48);
  page.writeBigUInt64LE(fnv1a64(page.subarray(m, m + META_CHECKSUM_OFFSET)), m + 56);
}

const FNV64_OFFSET = 0xcbf29ce484222325n;
const FNV64_PRIME = 0x100000001b3n;
const MASK64 = 0xffff_ffff_ffff_ffffn;

/** FNV-1a 64-bit hash (Go's hash/fnv New64a), used for the meta checksum. */
export function fnv1a64(data: Uint8Array): bigint {
  let h = FNV64_OFFSET;
  for (let i = 0; i < data.length; i++) {
    h ^= BigInt(data[i]!);
    h = (h * FNV64_PRIME) & MASK64;
  }
  return h;
}

/** Number of pages a page image of `size` bytes needs. */
export function pagesFor(size: number, pageSize: number): number {
  return Math.max(1, Math.ceil(size / pageSize));
}
