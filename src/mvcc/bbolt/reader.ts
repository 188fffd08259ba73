// Read-only access to a bbolt database file (or an etcd snapshot: the db followed by its SHA-256).
//
// Synchronous by design: it is used at startup (import of member/snap/db) and for restore, where
// a simple generator over the B+tree is worth more than not blocking the event loop. A Buffer
// source is zero-copy (returned keys/values are views into it); a path source reads pages with
// positioned reads, so files larger than memory can be walked.
// Keys and values handed out are views, never copies: into the caller's Buffer, or into the page
// buffer read for them (which a kept view pins), so copy what is kept for long.

import { createHash } from 'node:crypto';
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import {
  BboltError,
  BRANCH_ELEMENT_SIZE,
  BRANCH_PAGE,
  BUCKET_HEADER_SIZE,
  BUCKET_LEAF_FLAG,
  type BucketHeader,
  decodeBucketHeader,
  FREELIST_COUNT_OVERFLOW,
  FREELIST_PAGE,
  LEAF_ELEMENT_SIZE,
  LEAF_PAGE,
  type Meta,
  PAGE_HEADER_SIZE,
  PGID_NO_FREELIST,
  pageTypeName,
  readPageHeader,
  validateMeta,
} from './format.js';
import { SHA256_TRAILER_SIZE } from './trailer.js';

/** A bucket, named by its path from the root: one name, or several for nested buckets. */
export type BucketPath = string | Uint8Array | ReadonlyArray<string | Uint8Array>;

export interface ReaderOptions {
  /**
   * What to do with a trailing 32-byte SHA-256 (present when the size is pageSize * n + 32, as in
   * etcd snapshots): 'verify' (default) hashes the db bytes and throws ETRAILER on mismatch,
   * 'ignore' strips it unchecked.
   */
  trailer?: 'verify' | 'ignore';
}

export interface BboltItem {
  key: Buffer;
  /** The value; for a nested bucket, the raw bucket value (header + inline page). */
  value: Buffer;
  /** True when this entry is a nested bucket (leaf flag 0x01). */
  isBucket: boolean;
}

export interface KeyRange {
  /** Inclusive lower bound. */
  gte?: Uint8Array;
  /** Exclusive upper bound. */
  lt?: Uint8Array;
}

/** Random access to the bytes of the db (without any trailer). */
interface ByteSource {
  readonly size: number;
  read(offset: number, length: number): Buffer;
  close(): void;
}

class BufferSource implements ByteSource {
  constructor(private readonly buf: Buffer) {}
  get size(): number {
    return this.buf.length;
  }
  read(offset: number, length: number): Buffer {
    if (offset + length > this.buf.length) {
      throw new BboltError('ETRUNCATED', `read past end of data (${offset}+${length} > ${this.buf.length})`);
    }
    return this.buf.subarray(offset, offset + length);
  }
  close(): void {}
}

class FileSource implements ByteSource {
  readonly size: number;
  private fd: number | undefined;
  constructor(path: string) {
    this.fd = openSync(path, 'r');
    this.size = fstatSync(this.fd).size;
  }
  read(offset: number, length: number): Buffer {
    if (this.fd === undefined) throw new BboltError('EINPUT', 'reader is closed');
    if (offset + length > this.size) {
      throw new BboltError('ETRUNCATED', `read past end of file (${offset}+${length} > ${this.size})`);
    }
    const out = Buffer.allocUnsafe(length);
    let done = 0;
    while (done < length) {
      const n = readSync(this.fd, out, done, length - done, offset + done);
      if (n === 0) throw new BboltError('ETRUNCATED', 'unexpected end of file');
      done += n;
    }
    return out;
  }
  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}

/** A page (with its overflow pages) or an inline bucket's page image. */
interface Page {
  id: bigint;
  flags: number;
  count: number;
  buf: Buffer;
}

/** Where a bucket's B+tree starts: a real page, or an inline page image inside the parent's value. */
interface BucketRef {
  header: BucketHeader;
  inline?: Page;
}

const MAX_DEPTH = 64;
const PAGE_SIZE_CANDIDATES = [512, 1024, 2048, 4096, 8192, 16384, 32768, 65536];

function toBuf(b: string | Uint8Array): Buffer {
  if (typeof b === 'string') return Buffer.from(b);
  return Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

function pathParts(path: BucketPath): Buffer[] {
  if (typeof path === 'string' || path instanceof Uint8Array) return [toBuf(path)];
  return path.map(toBuf);
}

function showKey(k: Buffer): string {
  return /^[\x20-\x7e]*$/.test(k.toString('latin1'))
    ? JSON.stringify(k.toString('latin1'))
    : k.toString('hex');
}

export class BboltReader {
  readonly pageSize: number;
  /** The meta in use (the valid one with the higher txid). */
  readonly meta: Meta;
  /** Whether a SHA-256 trailer followed the db, and whether it was checked. */
  readonly trailer: 'absent' | 'verified' | 'ignored';
  /** Length of the db proper (without trailer). */
  readonly dataSize: number;
  private readonly src: ByteSource;
  private readonly hwm: number;

  private constructor(src: ByteSource, opts: ReaderOptions) {
    let total = src.size;
    this.src = src;
    if (total < PAGE_HEADER_SIZE + 64) throw new BboltError('ENOTBBOLT', `file too small (${total} bytes)`);

    // Page size: bbolt trusts meta 0 if it validates. When meta 0 is damaged we look for a valid
    // meta 1 at each plausible page size (bbolt itself would fall back to the OS page size).
    const head = src.read(0, Math.min(total, PAGE_HEADER_SIZE + 64));
    const m0 = validateMeta(head);
    let pageSize = m0.error ? 0 : m0.meta.pageSize;
    if (!pageSize) {
      for (const ps of PAGE_SIZE_CANDIDATES) {
        if (total < ps + PAGE_HEADER_SIZE + 64) break;
        const r = validateMeta(src.read(ps, PAGE_HEADER_SIZE + 64));
        if (!r.error && r.meta.pageSize === ps) {
          pageSize = ps;
          break;
        }
      }
    }
    if (!pageSize) throw m0.error ?? new BboltError('ENOTBBOLT', 'no valid meta page');
    if (pageSize < 512 || (pageSize & (pageSize - 1)) !== 0) {
      throw new BboltError('ECORRUPT', `implausible page size ${pageSize}`);
    }
    if (total < 2 * pageSize) throw new BboltError('ETRUNCATED', `file size too small (${total} bytes)`);

    // etcd snapshots are the db (a whole number of pages) followed by sha256(db).
    let trailer: BboltReader['trailer'] = 'absent';
    if (total % pageSize === SHA256_TRAILER_SIZE) {
      total -= SHA256_TRAILER_SIZE;
      if ((opts.trailer ?? 'verify') === 'verify') {
        const want = src.read(total, SHA256_TRAILER_SIZE);
        const h = createHash('sha256');
        const chunk = 1 << 22;
        for (let off = 0; off < total; off += chunk) h.update(src.read(off, Math.min(chunk, total - off)));
        if (!h.digest().equals(want))
          throw new BboltError('ETRAILER', 'sha256 trailer does not match the db');
        trailer = 'verified';
      } else trailer = 'ignored';
    }
    this.dataSize = total;
    this.trailer = trailer;
    this.pageSize = pageSize;

    // Pick the valid meta with the higher txid; also reject one whose high water mark runs past
    // the end of the data (a torn write), falling back to the other.
    const metas = [0, 1].map((i) => validateMeta(src.read(i * pageSize, PAGE_HEADER_SIZE + 64)));
    const order = metas[1]!.meta.txid > metas[0]!.meta.txid ? [metas[1]!, metas[0]!] : [metas[0]!, metas[1]!];
    let chosen: Meta | undefined;
    let firstErr: BboltError | undefined;
    for (const r of order) {
      if (r.error) {
        firstErr ??= r.error;
        continue;
      }
      if (r.meta.pageSize !== pageSize) {
        firstErr ??= new BboltError('ECORRUPT', `meta page size ${r.meta.pageSize} != ${pageSize}`);
        continue;
      }
      if (r.meta.pgid < 2n || r.meta.pgid * BigInt(pageSize) > BigInt(total)) {
        firstErr ??= new BboltError(
          'ETRUNCATED',
          `meta txid ${r.meta.txid}: high water mark ${r.meta.pgid} pages exceeds file (${total} bytes)`,
        );
        continue;
      }
      if (r.meta.root.root < 2n || r.meta.root.root >= r.meta.pgid) {
        firstErr ??= new BboltError(
          'ECORRUPT',
          `meta txid ${r.meta.txid}: root page ${r.meta.root.root} out of range`,
        );
        continue;
      }
      chosen = r.meta;
      break;
    }
    if (!chosen) throw firstErr ?? new BboltError('ENOTBBOLT', 'no valid meta page');
    this.meta = chosen;
    this.hwm = Number(chosen.pgid);
  }

  /** Opens a bbolt file from a path (read lazily) or from bytes already in memory. */
  static open(source: string | Uint8Array, opts: ReaderOptions = {}): BboltReader {
    const src = typeof source === 'string' ? new FileSource(source) : new BufferSource(toBuf(source));
    try {
      return new BboltReader(src, opts);
    } catch (e) {
      src.close();
      throw e;
    }
  }

  close(): void {
    this.src.close();
  }

  // ---- page access -------------------------------------------------------------------------

  private page(id: bigint, expect: number): Page {
    const n = Number(id);
    if (n < 2 || n >= this.hwm)
      throw new BboltError('ECORRUPT', `page ${id} out of range (pgid ${this.hwm})`);
    const off = n * this.pageSize;
    const h = readPageHeader(this.src.read(off, PAGE_HEADER_SIZE));
    if (h.id !== id) throw new BboltError('ECORRUPT', `page ${id}: header says page ${h.id}`);
    if ((h.flags & expect) === 0) {
      throw new BboltError('ECORRUPT', `page ${id}: unexpected ${pageTypeName(h.flags)} page`);
    }
    if (n + 1 + h.overflow > this.hwm)
      throw new BboltError('ECORRUPT', `page ${id}: overflow runs past high water mark`);
    const buf = this.src.read(off, (1 + h.overflow) * this.pageSize);
    return { id, flags: h.flags, count: h.count, buf };
  }

  private checkElements(p: Page, elemSize: number): void {
    if (PAGE_HEADER_SIZE + p.count * elemSize > p.buf.length) {
      throw new BboltError('ECORRUPT', `page ${p.id}: ${p.count} elements do not fit`);
    }
  }

  private leafItem(p: Page, i: number): BboltItem & { flags: number } {
    const e = PAGE_HEADER_SIZE + i * LEAF_ELEMENT_SIZE;
    const flags = p.buf.readUInt32LE(e);
    const pos = p.buf.readUInt32LE(e + 4);
    const ksize = p.buf.readUInt32LE(e + 8);
    const vsize = p.buf.readUInt32LE(e + 12);
    const k = e + pos;
    if (k + ksize + vsize > p.buf.length)
      throw new BboltError('ECORRUPT', `page ${p.id}: element ${i} out of bounds`);
    return {
      key: p.buf.subarray(k, k + ksize),
      value: p.buf.subarray(k + ksize, k + ksize + vsize),
      isBucket: (flags & BUCKET_LEAF_FLAG) !== 0,
      flags,
    };
  }

  private branchItem(p: Page, i: number): { key: Buffer; child: bigint } {
    const e = PAGE_HEADER_SIZE + i * BRANCH_ELEMENT_SIZE;
    const pos = p.buf.readUInt32LE(e);
    const ksize = p.buf.readUInt32LE(e + 4);
    const child = p.buf.readBigUInt64LE(e + 8);
    const k = e + pos;
    if (k + ksize > p.buf.length)
      throw new BboltError('ECORRUPT', `page ${p.id}: branch element ${i} out of bounds`);
    return { key: p.buf.subarray(k, k + ksize), child };
  }

  private rootPage(ref: BucketRef): Page {
    return ref.inline ?? this.page(ref.header.root, BRANCH_PAGE | LEAF_PAGE);
  }

  /** Decodes a nested bucket value into where its tree starts. */
  private openBucketValue(v: Buffer, name: Buffer): BucketRef {
    if (v.length < BUCKET_HEADER_SIZE)
      throw new BboltError('ECORRUPT', `bucket ${showKey(name)}: short value`);
    const header = decodeBucketHeader(v);
    if (header.root !== 0n) return { header };
    // Inline bucket: a leaf page image follows the header inside the value.
    const img = v.subarray(BUCKET_HEADER_SIZE);
    if (img.length < PAGE_HEADER_SIZE)
      throw new BboltError('ECORRUPT', `inline bucket ${showKey(name)}: short page`);
    const h = readPageHeader(img);
    if ((h.flags & LEAF_PAGE) === 0) {
      throw new BboltError('ECORRUPT', `inline bucket ${showKey(name)}: ${pageTypeName(h.flags)} page`);
    }
    const inline: Page = { id: 0n, flags: h.flags, count: h.count, buf: img };
    this.checkElements(inline, LEAF_ELEMENT_SIZE);
    return { header, inline };
  }

  /** Finds the leaf item for `key` in a bucket tree (bbolt's Cursor.seek, exact match only). */
  private seekExact(ref: BucketRef, key: Buffer): (BboltItem & { flags: number }) | undefined {
    let p = this.rootPage(ref);
    for (let depth = 0; ; depth++) {
      if (depth > MAX_DEPTH) throw new BboltError('ECORRUPT', 'tree too deep (cycle?)');
      if (p.flags & LEAF_PAGE) {
        this.checkElements(p, LEAF_ELEMENT_SIZE);
        let lo = 0;
        let hi = p.count;
        while (lo < hi) {
          const mid = (lo + hi) >>> 1;
          const c = Buffer.compare(this.leafItem(p, mid).key, key);
          if (c === 0) return this.leafItem(p, mid);
          if (c < 0) lo = mid + 1;
          else hi = mid;
        }
        return undefined;
      }
      this.checkElements(p, BRANCH_ELEMENT_SIZE);
      if (p.count === 0) throw new BboltError('ECORRUPT', `page ${p.id}: empty branch page`);
      p = this.page(this.branchItem(p, this.branchIndex(p, key)).child, BRANCH_PAGE | LEAF_PAGE);
    }
  }

  /** Index of the last branch element whose key is <= key (or 0): the child that may hold key. */
  private branchIndex(p: Page, key: Buffer): number {
    let lo = 0;
    let hi = p.count;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (Buffer.compare(this.branchItem(p, mid).key, key) <= 0) lo = mid + 1;
      else hi = mid;
    }
    return Math.max(0, lo - 1);
  }

  private resolve(path: BucketPath): BucketRef {
    const parts = pathParts(path);
    if (parts.length === 0) return { header: this.meta.root };
    let ref: BucketRef = { header: this.meta.root };
    for (const name of parts) {
      const it = this.seekExact(ref, name);
      if (!it?.isBucket) {
        throw new BboltError('ENOBUCKET', `bucket ${parts.map(showKey).join('/')} not found`);
      }
      ref = this.openBucketValue(it.value, name);
    }
    return ref;
  }

  // ---- public API ---------------------------------------------------------------------------

  /** Names of the buckets at the root, or nested directly under `path`, in key order. */
  bucketNames(path: BucketPath = []): Buffer[] {
    const out: Buffer[] = [];
    for (const it of this.walk(this.resolve(path), {})) if (it.isBucket) out.push(it.key);
    return out;
  }

  hasBucket(path: BucketPath): boolean {
    try {
      this.resolve(path);
      return true;
    } catch (e) {
      if (e instanceof BboltError && e.code === 'ENOBUCKET') return false;
      throw e;
    }
  }

  /** The bucket's sequence number (NextSequence counter). */
  sequence(path: BucketPath): bigint {
    return this.resolve(path).header.sequence;
  }

  /** Value stored under `key` in a bucket; undefined when absent or when `key` names a nested bucket. */
  get(path: BucketPath, key: string | Uint8Array): Buffer | undefined {
    const it = this.seekExact(this.resolve(path), toBuf(key));
    return it && !it.isBucket ? it.value : undefined;
  }

  /** All entries of a bucket in key order, nested buckets included (flagged isBucket). */
  *items(path: BucketPath, range: KeyRange = {}): Generator<BboltItem> {
    yield* this.walk(this.resolve(path), range);
  }

  /** Key/value pairs of a bucket in key order, skipping nested buckets. */
  *entries(path: BucketPath, range: KeyRange = {}): Generator<[Buffer, Buffer]> {
    for (const it of this.walk(this.resolve(path), range)) if (!it.isBucket) yield [it.key, it.value];
  }

  /** Number of entries (including nested bucket entries) in a bucket. */
  count(path: BucketPath): number {
    let n = 0;
    for (const _ of this.walk(this.resolve(path), {})) n++;
    return n;
  }

  private *walk(ref: BucketRef, range: KeyRange): Generator<BboltItem> {
    const gte = range.gte ? toBuf(range.gte) : undefined;
    const lt = range.lt ? toBuf(range.lt) : undefined;
    yield* this.walkPage(this.rootPage(ref), gte, lt, 0);
  }

  /** Depth-first walk; returns true once the upper bound is reached so callers stop early. */
  private *walkPage(
    p: Page,
    gte: Buffer | undefined,
    lt: Buffer | undefined,
    depth: number,
  ): Generator<BboltItem, boolean> {
    if (depth > MAX_DEPTH) throw new BboltError('ECORRUPT', 'tree too deep (cycle?)');
    if (p.flags & LEAF_PAGE) {
      this.checkElements(p, LEAF_ELEMENT_SIZE);
      for (let i = 0; i < p.count; i++) {
        const { key, value, isBucket } = this.leafItem(p, i);
        if (gte && Buffer.compare(key, gte) < 0) continue;
        if (lt && Buffer.compare(key, lt) >= 0) return true;
        yield { key, value, isBucket };
      }
      return false;
    }
    if ((p.flags & BRANCH_PAGE) === 0)
      throw new BboltError('ECORRUPT', `page ${p.id}: ${pageTypeName(p.flags)} in tree`);
    this.checkElements(p, BRANCH_ELEMENT_SIZE);
    for (let i = gte ? this.branchIndex(p, gte) : 0; i < p.count; i++) {
      const { key, child } = this.branchItem(p, i);
      if (lt && Buffer.compare(key, lt) >= 0) return true;
      if (yield* this.walkPage(this.page(child, BRANCH_PAGE | LEAF_PAGE), gte, lt, depth + 1)) return true;
    }
    return false;
  }

  /**
   * Structural check in the spirit of bbolt's Tx.Check: every page below the high water mark is
   * either reachable exactly once or free, page types are right, keys are strictly ascending
   * within each bucket and branch keys match their children. Returns a list of problems.
   */
  check(): string[] {
    const errs: string[] = [];
    const reachable = new Set<number>([0, 1]);
    const free = new Set<number>();
    const mark = (id: number, span: number, what: string) => {
      for (let i = id; i < id + span; i++) {
        if (reachable.has(i)) errs.push(`page ${i}: multiple references (${what})`);
        reachable.add(i);
      }
    };
    const m = this.meta;
    if (m.freelist !== PGID_NO_FREELIST) {
      try {
        const fp = this.page(m.freelist, FREELIST_PAGE);
        mark(Number(m.freelist), fp.buf.length / this.pageSize, 'freelist');
        for (const id of this.freelistIds(fp)) {
          if (free.has(Number(id))) errs.push(`page ${id}: already freed`);
          free.add(Number(id));
        }
      } catch (e) {
        errs.push(`freelist: ${(e as Error).message}`);
      }
    }
    const checkTree = (ref: BucketRef, name: string) => {
      if (!ref.inline) {
        const visit = (id: bigint, depth: number, lower: Buffer | undefined) => {
          const p = this.page(id, BRANCH_PAGE | LEAF_PAGE);
          mark(Number(id), p.buf.length / this.pageSize, name);
          if (free.has(Number(id))) errs.push(`page ${id}: reachable freed`);
          if (p.flags & BRANCH_PAGE) {
            this.checkElements(p, BRANCH_ELEMENT_SIZE);
            if (p.count === 0) errs.push(`page ${id}: empty branch page`);
            for (let i = 0; i < p.count; i++) {
              const b = this.branchItem(p, i);
              if (i === 0 && lower && !b.key.equals(lower))
                errs.push(`page ${id}: first key differs from parent key`);
              visit(b.child, depth + 1, b.key);
            }
          } else if (lower && p.count > 0 && !this.leafItem(p, 0).key.equals(lower)) {
            errs.push(`page ${id}: first key differs from parent key`);
          }
        };
        visit(ref.header.root, 0, undefined);
      }
      let prev: Buffer | undefined;
      for (const it of this.walk(ref, {})) {
        if (it.key.length === 0) errs.push(`bucket ${name}: zero-length key`);
        if (prev && Buffer.compare(prev, it.key) >= 0)
          errs.push(`bucket ${name}: keys out of order at ${showKey(it.key)}`);
        prev = it.key;
        if (it.isBucket) checkTree(this.openBucketValue(it.value, it.key), `${name}/${showKey(it.key)}`);
      }
    };
    try {
      checkTree({ header: m.root }, '');
    } catch (e) {
      errs.push((e as Error).message);
      return errs;
    }
    if (m.freelist !== PGID_NO_FREELIST) {
      for (let i = 0; i < this.hwm; i++) {
        if (!reachable.has(i) && !free.has(i)) errs.push(`page ${i}: unreachable unfreed`);
      }
    }
    return errs;
  }

  /** Free page ids recorded in the freelist page (empty when the freelist is not persisted). */
  freePages(): bigint[] {
    if (this.meta.freelist === PGID_NO_FREELIST) return [];
    return this.freelistIds(this.page(this.meta.freelist, FREELIST_PAGE));
  }

  private freelistIds(p: Page): bigint[] {
    let idx = 0;
    let count = p.count;
    if (count === FREELIST_COUNT_OVERFLOW) {
      // The real count does not fit the u16: it is the first u64 element.
      count = Number(p.buf.readBigUInt64LE(PAGE_HEADER_SIZE));
      idx = 1;
    }
    if (PAGE_HEADER_SIZE + (idx + count) * 8 > p.buf.length) {
      throw new BboltError('ECORRUPT', `freelist page ${p.id}: ${count} ids do not fit`);
    }
    const ids: bigint[] = [];
    for (let i = 0; i < count; i++) ids.push(p.buf.readBigUInt64LE(PAGE_HEADER_SIZE + (idx + i) * 8));
    return ids.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  }
}
