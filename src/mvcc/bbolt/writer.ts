// Bulk writer: turns sorted buckets of key/value pairs into a fresh, compact bbolt file.
//
// This is not a B+tree with inserts: input arrives already sorted (it comes from another ordered
// store), so the tree is built bottom-up in one pass. Leaf pages are cut when the next element
// would push them past fillPercent * pageSize; every finished page is written at once and its
// first key goes up into a pending branch node at the level above, which is cut the same way.
// Only one pending node per tree level (plus the inline-bucket buffer, < pageSize/4) is held in
// memory, so a store of any size can be streamed through. Nested buckets are written depth
// first when met (their pages simply come before the parent's page that references them).
//
// Page allocation is sequential and each page is written as soon as it is allocated, so output
// offsets only grow: pages 0 and 1 (the metas, which must name the root page and the high water
// mark) are the only thing written last, at offset 0. A stream consumer therefore goes through a
// temporary file (bboltStream) rather than holding the db in memory.
//
// The resulting file: pages 0-1 meta, 2..n-2 tree pages, n-1 an empty freelist page; no free
// pages, so bbolt's Tx.Check (run by `etcdctl snapshot status`) sees every page reachable.

import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, open, rename, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import {
  BboltError,
  BRANCH_ELEMENT_SIZE,
  BRANCH_PAGE,
  BUCKET_HEADER_SIZE,
  BUCKET_LEAF_FLAG,
  DEFAULT_PAGE_SIZE,
  encodeBucketHeader,
  FREELIST_PAGE,
  LEAF_ELEMENT_SIZE,
  LEAF_PAGE,
  MAX_KEY_SIZE,
  MAX_PAGE_ELEMENTS,
  MAX_VALUE_SIZE,
  PAGE_HEADER_SIZE,
  pagesFor,
  writeMetaPage,
  writePageHeader,
} from './format.js';
import { sha256File } from './trailer.js';

export type Bytes = Uint8Array | string;

/** A plain key/value pair inside a bucket. */
export type KeyValuePair = readonly [key: Bytes, value: Bytes];

/** A bucket: its name, and its entries in strictly ascending byte order of key. */
export interface BucketInput {
  readonly name: Bytes;
  /** Pairs, or nested buckets (whose `name` is their key in this bucket), sorted by key. */
  readonly entries: EntrySource;
  /** The bucket's NextSequence counter (default 0). */
  readonly sequence?: bigint;
}

export type BucketEntry = KeyValuePair | BucketInput;
export type EntrySource = Iterable<BucketEntry> | AsyncIterable<BucketEntry>;
/** Top-level buckets: an array is sorted by name for you; any other iterable must be sorted. */
export type BucketSource = readonly BucketInput[] | Iterable<BucketInput> | AsyncIterable<BucketInput>;

export interface WriterOptions {
  /** Page size in bytes (default 4096, what etcd on Linux/amd64 uses). */
  pageSize?: number;
  /** How full leaf and branch pages are packed, 0.1..1.0 (default 0.9, etcd's sequential-put fill). */
  fillPercent?: number;
  /** Store small buckets (< pageSize/4, no nested buckets) inline in the parent, as bbolt does (default true). */
  inlineBuckets?: boolean;
  /** Transaction id of the newer meta page (default 2); the other meta gets txid - 1. */
  txid?: bigint;
}

export interface WriteResult {
  /** Size of the db in bytes (pages * pageSize), without any trailer. */
  size: number;
  /** Number of pages (the meta's high water mark). */
  pages: number;
  pageSize: number;
  rootPgid: number;
  txid: bigint;
  /** Key/value pairs written (nested bucket entries not counted). */
  pairs: number;
}

/** Positioned output for the writer; writes arrive in increasing offset order except the final metas at 0. */
export interface PageSink {
  write(offset: number, data: Buffer): Promise<void> | void;
}

interface LeafItem {
  key: Buffer;
  value: Buffer;
  flags: number;
}

interface BranchItem {
  key: Buffer;
  pgid: number;
}

const COALESCE_BYTES = 4 << 20;

function bytes(b: Bytes): Buffer {
  if (typeof b === 'string') return Buffer.from(b);
  return Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

function isPair(e: BucketEntry): e is KeyValuePair {
  return Array.isArray(e);
}

/** Lays out a leaf page image; `total` bytes (>= content), element `pos` relative to the element. */
function encodeLeaf(items: readonly LeafItem[], id: number, total: number, pageSize: number): Buffer {
  const buf = Buffer.alloc(total);
  const pages = pageSize ? total / pageSize : 1;
  writePageHeader(buf, { id: BigInt(id), flags: LEAF_PAGE, count: items.length, overflow: pages - 1 });
  let data = PAGE_HEADER_SIZE + items.length * LEAF_ELEMENT_SIZE;
  for (let i = 0; i < items.length; i++) {
    const it = items[i]!;
    const e = PAGE_HEADER_SIZE + i * LEAF_ELEMENT_SIZE;
    buf.writeUInt32LE(it.flags, e);
    buf.writeUInt32LE(data - e, e + 4);
    buf.writeUInt32LE(it.key.length, e + 8);
    buf.writeUInt32LE(it.value.length, e + 12);
    data += it.key.copy(buf, data);
    data += it.value.copy(buf, data);
  }
  return buf;
}

function encodeBranch(items: readonly BranchItem[], id: number, total: number, pageSize: number): Buffer {
  const buf = Buffer.alloc(total);
  writePageHeader(buf, {
    id: BigInt(id),
    flags: BRANCH_PAGE,
    count: items.length,
    overflow: total / pageSize - 1,
  });
  let data = PAGE_HEADER_SIZE + items.length * BRANCH_ELEMENT_SIZE;
  for (let i = 0; i < items.length; i++) {
    const it = items[i]!;
    const e = PAGE_HEADER_SIZE + i * BRANCH_ELEMENT_SIZE;
    buf.writeUInt32LE(data - e, e);
    buf.writeUInt32LE(it.key.length, e + 4);
    buf.writeBigUInt64LE(BigInt(it.pgid), e + 8);
    data += it.key.copy(buf, data);
  }
  return buf;
}

/** Allocates page ids in order and writes pages, coalescing adjacent writes. */
class PageOut {
  next = 2; // pages 0 and 1 are the metas
  private chunks: Buffer[] = [];
  private chunkStart = 0;
  private chunkLen = 0;
  readonly threshold: number;

  constructor(
    private readonly sink: PageSink,
    readonly pageSize: number,
    fillPercent: number,
  ) {
    this.threshold = Math.floor(pageSize * Math.min(1, Math.max(0.1, fillPercent)));
  }

  async writeLeaf(items: readonly LeafItem[]): Promise<number> {
    let size = PAGE_HEADER_SIZE;
    for (const it of items) size += LEAF_ELEMENT_SIZE + it.key.length + it.value.length;
    const n = pagesFor(size, this.pageSize);
    const id = this.next;
    this.next += n;
    await this.emit(id, encodeLeaf(items, id, n * this.pageSize, this.pageSize));
    return id;
  }

  async writeBranch(items: readonly BranchItem[]): Promise<number> {
    let size = PAGE_HEADER_SIZE;
    for (const it of items) size += BRANCH_ELEMENT_SIZE + it.key.length;
    const n = pagesFor(size, this.pageSize);
    const id = this.next;
    this.next += n;
    await this.emit(id, encodeBranch(items, id, n * this.pageSize, this.pageSize));
    return id;
  }

  /** An empty freelist page: the file has no free pages. */
  async writeFreelist(): Promise<number> {
    const id = this.next++;
    const buf = Buffer.alloc(this.pageSize);
    writePageHeader(buf, { id: BigInt(id), flags: FREELIST_PAGE, count: 0, overflow: 0 });
    await this.emit(id, buf);
    return id;
  }

  private async emit(id: number, buf: Buffer): Promise<void> {
    const off = id * this.pageSize;
    if (this.chunkLen > 0 && this.chunkStart + this.chunkLen !== off) await this.flush();
    if (this.chunkLen === 0) this.chunkStart = off;
    this.chunks.push(buf);
    this.chunkLen += buf.length;
    if (this.chunkLen >= COALESCE_BYTES) await this.flush();
  }

  async flush(): Promise<void> {
    if (this.chunkLen === 0) return;
    const data = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.chunkLen);
    this.chunks = [];
    this.chunkLen = 0;
    await this.sink.write(this.chunkStart, data);
  }
}

/** Builds one bucket's B+tree bottom-up from items that arrive in key order. */
class TreeBuilder {
  private leaf: LeafItem[] = [];
  private leafSize = PAGE_HEADER_SIZE;
  private leavesWritten = 0;
  /** levels[0] holds the pending parent node of the leaves, levels[1] its parent, and so on. */
  private levels: { items: BranchItem[]; size: number; written: number }[] = [];

  constructor(private readonly out: PageOut) {}

  async add(item: LeafItem): Promise<void> {
    const el = LEAF_ELEMENT_SIZE + item.key.length + item.value.length;
    // Cut the page before an element that would overflow the fill threshold. An element larger
    // than a page on its own ends up alone in a node spanning several pages (overflow).
    if (
      this.leaf.length > 0 &&
      (this.leafSize + el > this.out.threshold || this.leaf.length >= MAX_PAGE_ELEMENTS)
    ) {
      await this.flushLeaf();
    }
    this.leaf.push(item);
    this.leafSize += el;
  }

  private async flushLeaf(): Promise<void> {
    const first = this.leaf[0]!.key;
    const id = await this.out.writeLeaf(this.leaf);
    this.leaf = [];
    this.leafSize = PAGE_HEADER_SIZE;
    this.leavesWritten++;
    await this.addChild(0, first, id);
  }

  /** Branch elements carry the first key of the child page. */
  private async addChild(level: number, key: Buffer, pgid: number): Promise<void> {
    let node = this.levels[level];
    if (!node) {
      node = { items: [], size: PAGE_HEADER_SIZE, written: 0 };
      this.levels[level] = node;
    }
    const el = BRANCH_ELEMENT_SIZE + key.length;
    if (
      node.items.length > 0 &&
      (node.size + el > this.out.threshold || node.items.length >= MAX_PAGE_ELEMENTS)
    ) {
      await this.flushBranch(level);
    }
    node.items.push({ key, pgid });
    node.size += el;
  }

  private async flushBranch(level: number): Promise<void> {
    const node = this.levels[level]!;
    const first = node.items[0]!.key;
    const id = await this.out.writeBranch(node.items);
    node.items = [];
    node.size = PAGE_HEADER_SIZE;
    node.written++;
    await this.addChild(level + 1, first, id);
  }

  /** Writes what is pending and returns the root page id. */
  async finish(): Promise<number> {
    // Everything fits one leaf (possibly empty: an empty bucket is a leaf page with count 0).
    if (this.leavesWritten === 0) return this.out.writeLeaf(this.leaf);
    if (this.leaf.length > 0) await this.flushLeaf();
    for (let level = 0; ; level++) {
      const node = this.levels[level]!;
      const top = level === this.levels.length - 1;
      // The highest level, never cut, with a single child: that child is the root.
      if (top && node.written === 0 && node.items.length === 1) return node.items[0]!.pgid;
      await this.flushBranch(level);
    }
  }
}

/** Validates keys: non-empty, bounded, strictly ascending (bytes.Compare order). */
class KeyOrder {
  private prev: Buffer | undefined;
  constructor(private readonly where: string) {}
  check(key: Buffer, valueLen: number): void {
    if (key.length === 0) throw new BboltError('EINPUT', `${this.where}: empty key`);
    if (key.length > MAX_KEY_SIZE)
      throw new BboltError('EINPUT', `${this.where}: key too large (${key.length})`);
    if (valueLen > MAX_VALUE_SIZE)
      throw new BboltError('EINPUT', `${this.where}: value too large (${valueLen})`);
    if (this.prev && Buffer.compare(this.prev, key) >= 0) {
      throw new BboltError('EINPUT', `${this.where}: keys not strictly ascending at ${key.toString('hex')}`);
    }
    this.prev = key;
  }
}

class Writer {
  private readonly out: PageOut;
  private readonly inlineMax: number;
  pairs = 0;

  constructor(
    sink: PageSink,
    private readonly opts: Required<Pick<WriterOptions, 'pageSize' | 'fillPercent' | 'inlineBuckets'>>,
  ) {
    this.out = new PageOut(sink, opts.pageSize, opts.fillPercent);
    this.inlineMax = opts.inlineBuckets ? opts.pageSize / 4 : -1;
  }

  get pagesUsed(): number {
    return this.out.next;
  }

  /** Writes a bucket's tree; returns the value its parent stores for it (header, + inline page). */
  async writeBucket(
    entries: EntrySource,
    sequence: bigint,
    where: string,
    allowInline: boolean,
  ): Promise<Buffer> {
    const order = new KeyOrder(where);
    // While the bucket could still be inline (bbolt: one leaf, no sub-buckets, page image <=
    // pageSize/4) items wait here; past that they go to a tree builder.
    let pending: LeafItem[] | undefined = allowInline && this.inlineMax > 0 ? [] : undefined;
    let pendingSize = PAGE_HEADER_SIZE;
    let tree = pending ? undefined : new TreeBuilder(this.out);
    const toTree = async () => {
      tree = new TreeBuilder(this.out);
      for (const it of pending!) await tree.add(it);
      pending = undefined;
    };
    const pairItem = (e: KeyValuePair): LeafItem => {
      const key = bytes(e[0]);
      const value = bytes(e[1]);
      order.check(key, value.length);
      this.pairs++;
      return { key, value, flags: 0 };
    };
    const step = async (e: BucketEntry): Promise<void> => {
      let item: LeafItem;
      if (isPair(e)) item = pairItem(e);
      else {
        const key = bytes(e.name);
        order.check(key, 0);
        if (pending) await toTree(); // a bucket holding buckets is never inline
        const value = await this.writeBucket(
          e.entries,
          e.sequence ?? 0n,
          `${where}/${key.toString('hex')}`,
          true,
        );
        item = { key, value, flags: BUCKET_LEAF_FLAG };
      }
      if (pending) {
        pending.push(item);
        pendingSize += LEAF_ELEMENT_SIZE + item.key.length + item.value.length;
        if (pendingSize > this.inlineMax) await toTree();
      } else await tree!.add(item);
    };
    // Plain pairs from a synchronous source take a synchronous path; only nested buckets,
    // page writes and async sources cost an await.
    if (Symbol.iterator in entries) {
      for (const e of entries as Iterable<BucketEntry>) {
        if (pending === undefined && isPair(e)) {
          const p = tree!.add(pairItem(e));
          if (p) await p;
        } else await step(e);
      }
    } else for await (const e of entries) await step(e);
    if (pending) {
      // Inline bucket: header with root 0, then a leaf page image (id 0) inside the value.
      const value = Buffer.alloc(BUCKET_HEADER_SIZE + pendingSize);
      encodeBucketHeader({ root: 0n, sequence }, value);
      encodeLeaf(pending, 0, pendingSize, 0).copy(value, BUCKET_HEADER_SIZE);
      return value;
    }
    const root = await tree!.finish();
    return encodeBucketHeader({ root: BigInt(root), sequence });
  }

  async finish(rootValue: Buffer, sink: PageSink, txid: bigint): Promise<WriteResult> {
    const root = rootValue.readBigUInt64LE(0);
    const freelist = await this.out.writeFreelist();
    await this.out.flush();
    const pages = this.out.next;
    const ps = this.opts.pageSize;
    // Two metas naming the same tree, as bbolt's Tx.WriteTo does: the newer txid on page
    // txid % 2 (where bbolt itself would have put it), txid - 1 on the other page.
    const metas = Buffer.alloc(2 * ps);
    for (const t of [txid, txid - 1n]) {
      const page = Number(t % 2n);
      writeMetaPage(metas.subarray(page * ps, (page + 1) * ps), BigInt(page), {
        pageSize: ps,
        flags: 0,
        root: { root, sequence: 0n },
        freelist: BigInt(freelist),
        pgid: BigInt(pages),
        txid: t,
      });
    }
    await sink.write(0, metas);
    return { size: pages * ps, pages, pageSize: ps, rootPgid: Number(root), txid, pairs: this.pairs };
  }
}

function normalize(opts: WriterOptions) {
  const pageSize = opts.pageSize ?? DEFAULT_PAGE_SIZE;
  if (pageSize < 1024 || pageSize > 65536 || (pageSize & (pageSize - 1)) !== 0) {
    throw new BboltError('EINPUT', `page size must be a power of two in [1024, 65536], got ${pageSize}`);
  }
  const txid = opts.txid ?? 2n;
  if (txid < 1n) throw new BboltError('EINPUT', 'txid must be >= 1');
  return { pageSize, fillPercent: opts.fillPercent ?? 0.9, inlineBuckets: opts.inlineBuckets ?? true, txid };
}

function orderedBuckets(buckets: BucketSource): EntrySource {
  if (Array.isArray(buckets)) {
    return [...(buckets as readonly BucketInput[])].sort((a, b) =>
      Buffer.compare(bytes(a.name), bytes(b.name)),
    );
  }
  return buckets as EntrySource;
}

/** Writes a bbolt db to a sink. Top-level entries must all be buckets (etcd's layout). */
export async function writeBbolt(
  sink: PageSink,
  buckets: BucketSource,
  options: WriterOptions = {},
): Promise<WriteResult> {
  const o = normalize(options);
  const w = new Writer(sink, o);
  async function* onlyBuckets(): AsyncGenerator<BucketEntry> {
    for await (const b of orderedBuckets(buckets)) {
      if (isPair(b)) throw new BboltError('EINPUT', 'top-level entries must be buckets');
      yield b;
    }
  }
  // The root bucket is never inline: the meta points at a real page.
  const rootValue = await w.writeBucket(onlyBuckets(), 0n, '<root>', false);
  return w.finish(rootValue, sink, o.txid);
}

export interface FileWriteOptions extends WriterOptions {
  /** Append sha256(db) after the db, making an etcd snapshot file (default false). */
  sha256Trailer?: boolean;
  /** fsync the file (and its directory) before returning (default true). */
  fsync?: boolean;
}

/**
 * Writes a bbolt db file. The file appears atomically: it is built as `<path>.part`, synced and
 * renamed over `path`, so a crash never leaves a half-written db under the final name.
 */
export async function writeBboltFile(
  path: string,
  buckets: BucketSource,
  options: FileWriteOptions = {},
): Promise<WriteResult & { sha256?: Buffer }> {
  const part = `${path}.part`;
  const sync = options.fsync ?? true;
  let res: WriteResult;
  let sha256: Buffer | undefined;
  try {
    const fh = await open(part, 'w');
    try {
      res = await writeBbolt(
        {
          async write(offset, data) {
            let done = 0;
            while (done < data.length) {
              const { bytesWritten } = await fh.write(data, done, data.length - done, offset + done);
              done += bytesWritten;
            }
          },
        },
        buckets,
        options,
      );
      if (options.sha256Trailer) {
        sha256 = await sha256File(part, res.size);
        await fh.write(sha256, 0, sha256.length, res.size);
      }
      if (sync) await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(part, path);
  } catch (e) {
    await rm(part, { force: true });
    throw e;
  }
  if (sync) {
    const d = await open(dirname(path), 'r');
    try {
      await d.sync();
    } finally {
      await d.close();
    }
  }
  return sha256 ? { ...res, sha256 } : res;
}

/** Writes a bbolt db into memory (for small dbs and tests). */
export async function writeBboltBuffer(buckets: BucketSource, options: WriterOptions = {}): Promise<Buffer> {
  const parts: { off: number; data: Buffer }[] = [];
  const res = await writeBbolt({ write: (off, data) => void parts.push({ off, data }) }, buckets, options);
  const out = Buffer.alloc(res.size);
  for (const p of parts) p.data.copy(out, p.off);
  return out;
}

export interface StreamOptions extends WriterOptions {
  /** Follow the db with sha256(db), as etcd's snapshot stream does (default true). */
  sha256Trailer?: boolean;
  /** Directory for the temporary file (default os.tmpdir()). */
  tmpDir?: string;
  /** Size of the yielded chunks (default 1 MiB). */
  chunkSize?: number;
}

/**
 * The db as a stream of Buffers (etcd's Maintenance.Snapshot payload when sha256Trailer is on).
 * The metas are only known at the end, so the db is built in a temporary file first and removed
 * when the stream ends or is abandoned.
 */
export async function* bboltStream(
  buckets: BucketSource,
  options: StreamOptions = {},
): AsyncGenerator<Buffer> {
  const dir = await mkdtemp(join(options.tmpDir ?? tmpdir(), 'bbolt-'));
  try {
    const path = join(dir, 'db');
    await writeBboltFile(path, buckets, { ...options, sha256Trailer: false, fsync: false });
    const h = createHash('sha256');
    for await (const chunk of createReadStream(path, { highWaterMark: options.chunkSize ?? 1 << 20 })) {
      h.update(chunk as Buffer);
      yield chunk as Buffer;
    }
    if (options.sha256Trailer ?? true) yield h.digest();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
