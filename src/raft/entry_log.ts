// A packed sequence of raft entries, the storage behind MemoryStorage. The server keeps up to
// --snapshot-count entries in memory between snapshots; held as JS objects (an Entry plus a Buffer view
// each) they give V8's major GC hundreds of thousands of objects to mark, and each view can pin the much
// larger network or WAL read buffer it points into. Here terms, types and data positions live in typed
// arrays and the data bytes are copied into large slab buffers, so the heap holds a handful of objects
// whatever the log length. Entry objects are built only when read.
import type { Entry } from '../gen/raftpb/raft.js';
import { EMPTY } from './util.js';

/** Slabs start small (many storages in tests hold a few entries) and double up to MAX_SLAB. */
const MIN_SLAB = 4 * 1024;
const MAX_SLAB = 512 * 1024;
/** Data this large gets a buffer of its own: in a slab it would leave a large unusable tail. */
const LARGE = 64 * 1024;
/** Marks an entry with empty data (it references no slab). */
const NO_SLAB = 0xffffffff;
const MIN_CAPACITY = 32;

/** What an EntryLog holds outside the JS heap's objects, for tests and metrics. */
export interface EntryLogStats {
  /** Slabs and large entries' own buffers still referenced. */
  slabs: number;
  /** Their total size in bytes. */
  slabBytes: number;
}

/**
 * Entries at positions [0, length). Positions, not raft indexes: the caller (MemoryStorage) knows the
 * index of position 0 and passes indexes in when it materializes entries. Methods taking a position
 * do not check it; the caller does.
 */
export class EntryLog {
  // One slot per entry; live entries occupy [head, tail). Dropping from the front only advances head;
  // the arrays are repacked (and resized to the live count) when tail reaches their end. They start
  // empty: a storage that never holds an entry allocates nothing.
  private terms = new Float64Array(0);
  private types = new Int32Array(0);
  private slabOf = new Uint32Array(0);
  private offsets = new Uint32Array(0);
  private lengths = new Uint32Array(0);
  private head = 0;
  private tail = 0;

  /** slabs[s] is a slab or a large entry's own buffer; undefined once released (s is then free). */
  private slabs: (Uint8Array | undefined)[] = [];
  /** How many live entries have their data in slabs[s]: at 0 the slab is released. */
  private refs: number[] = [];
  private freeSlots: number[] = [];
  /** The slab small data is appended to (-1: none yet), the bytes of it in use, and its size. */
  private fill = -1;
  private fillUsed = 0;
  private fillSize = 0;
  private slabBytes = 0;

  get length(): number {
    return this.tail - this.head;
  }

  term(k: number): number {
    return this.terms[this.head + k];
  }

  /** A fresh Entry for position k; its data is a view into a slab (never written to again). */
  entry(k: number, index: number): Entry {
    const p = this.head + k;
    const len = this.lengths[p];
    let data: Buffer = EMPTY;
    if (len > 0) {
      // Buffer.from(arrayBuffer, ...) builds the view directly: faster than Buffer#subarray.
      data = Buffer.from(this.slabs[this.slabOf[p]]!.buffer, this.offsets[p], len);
    }
    return { term: this.terms[p], index, type: this.types[p], data };
  }

  /** Appends an entry, copying its data: the caller's buffer is neither kept nor pinned. */
  push(term: number, type: number, data: Uint8Array): void {
    if (this.tail === this.terms.length) this.repack(1);
    const p = this.tail;
    const len = data.length;
    let slab = NO_SLAB;
    let off = 0;
    if (len >= LARGE) {
      if (len > 0xffffffff) throw new RangeError(`entry of ${len} bytes is too large`);
      const own = new Uint8Array(len);
      own.set(data);
      slab = this.addSlab(own);
    } else if (len > 0) {
      if (this.fill < 0 || this.fillUsed + len > this.fillSize) this.newFill(len);
      slab = this.fill;
      off = this.fillUsed;
      this.slabs[slab]!.set(data, off);
      this.fillUsed += len;
    }
    if (slab !== NO_SLAB) this.refs[slab]++;
    this.terms[p] = term;
    this.types[p] = type;
    this.slabOf[p] = slab;
    this.offsets[p] = off;
    this.lengths[p] = len;
    this.tail = p + 1;
  }

  /**
   * Keeps the first n entries (raft replacing a conflicting suffix). The slab space of the dropped
   * entries is not reused: views of them handed out earlier (in messages still being sent, say) must
   * keep their bytes. A slab left holding no live entry is released.
   */
  truncate(n: number): void {
    const end = this.head + n;
    for (let p = end; p < this.tail; p++) this.unref(this.slabOf[p]);
    this.tail = end;
  }

  /** Drops the first n entries (compaction), releasing the slabs that held only them. */
  dropFront(n: number): void {
    const start = this.head + n;
    for (let p = this.head; p < start; p++) this.unref(this.slabOf[p]);
    this.head = start;
    if (this.head === this.tail) this.head = this.tail = 0;
  }

  /** Drops everything, slabs included. */
  clear(): void {
    this.terms = new Float64Array(0);
    this.types = new Int32Array(0);
    this.slabOf = new Uint32Array(0);
    this.offsets = new Uint32Array(0);
    this.lengths = new Uint32Array(0);
    this.head = this.tail = 0;
    this.slabs = [];
    this.refs = [];
    this.freeSlots = [];
    this.fill = -1;
    this.fillUsed = this.fillSize = this.slabBytes = 0;
  }

  stats(): EntryLogStats {
    return { slabs: this.slabs.length - this.freeSlots.length, slabBytes: this.slabBytes };
  }

  /**
   * Moves the live entries to the front of arrays sized 1.5x (live + room): the current ones when that
   * fits and they are not oversized (a log compacted often, at a steady size), else new ones (growing, or
   * shrinking after a large compaction). Repacking happens only when tail reaches the end and leaves at
   * least half the live count free, so pushes cost amortized O(1).
   */
  private repack(room: number): void {
    const { head, tail } = this;
    const need = tail - head + room;
    const cap = Math.max(MIN_CAPACITY, need + (need >> 1));
    if (cap <= this.terms.length && this.terms.length <= 4 * cap) {
      this.terms.copyWithin(0, head, tail);
      this.types.copyWithin(0, head, tail);
      this.slabOf.copyWithin(0, head, tail);
      this.offsets.copyWithin(0, head, tail);
      this.lengths.copyWithin(0, head, tail);
    } else {
      this.terms = moved(this.terms, new Float64Array(cap), head, tail);
      this.types = moved(this.types, new Int32Array(cap), head, tail);
      this.slabOf = moved(this.slabOf, new Uint32Array(cap), head, tail);
      this.offsets = moved(this.offsets, new Uint32Array(cap), head, tail);
      this.lengths = moved(this.lengths, new Uint32Array(cap), head, tail);
    }
    this.head = 0;
    this.tail = tail - head;
  }

  /** Starts a new fill slab with room for len bytes, releasing the old one if no live entry is left in it. */
  private newFill(len: number): void {
    const old = this.fill;
    if (old >= 0 && this.refs[old] === 0) this.release(old);
    this.fillSize = Math.max(len, Math.min(MAX_SLAB, Math.max(MIN_SLAB, this.fillSize * 2)));
    // A Uint8Array of its own, never a slice of Node's shared Buffer pool (which it would pin).
    this.fill = this.addSlab(new Uint8Array(this.fillSize));
    this.fillUsed = 0;
  }

  private addSlab(buf: Uint8Array): number {
    const s = this.freeSlots.pop() ?? this.slabs.length;
    this.slabs[s] = buf;
    this.refs[s] = 0;
    this.slabBytes += buf.length;
    return s;
  }

  private unref(s: number): void {
    // The fill slab stays while it is being filled, even with no live entry left in it.
    if (s !== NO_SLAB && --this.refs[s] === 0 && s !== this.fill) this.release(s);
  }

  private release(s: number): void {
    this.slabBytes -= this.slabs[s]!.length;
    this.slabs[s] = undefined;
    this.freeSlots.push(s);
  }
}

/** Copies from[head, tail) to the front of to, and returns to. */
function moved<T extends Float64Array | Int32Array | Uint32Array>(
  from: T,
  to: T,
  head: number,
  tail: number,
): T {
  to.set(from.subarray(head, tail));
  return to;
}
