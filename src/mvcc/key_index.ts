// The in-memory key index: for every user key, its generations of revisions.
//
// A generation is the life of a key from a put that (re)creates it to the delete that ends it. A delete
// appends the tombstone revision to the current generation and opens a new, empty one; a key whose last
// generation is empty does not exist at the latest revision. For example put(1) put(2) del(3) put(4)
// gives generations [{1,2,3t} {4}]. Each generation knows its creation revision and the version of its
// last revision, so any revision's version is derived by counting back.
//
// Keys are kept in an ordered B+ tree keyed by the latin1 decoding of the key bytes: latin1 maps each
// byte to one UTF-16 unit, so string order is byte order, and comparing strings is fast.

import BTreeModule from 'sorted-btree';

// sorted-btree is CommonJS with `exports.default`; under NodeNext the default import is module.exports.
type BTree<K, V> = import('sorted-btree').default<K, V>;
type BTreeCtor = typeof BTreeModule.default;
const BTree: BTreeCtor =
  (BTreeModule as unknown as { default?: BTreeCtor }).default ?? (BTreeModule as unknown as BTreeCtor);

import type { RevisionSet } from './revision.js';

/**
 * Revision lists are appended to one at a time. V8 grows an array by half plus 16 slots when a push
 * overflows it, so a key with a handful of revisions would carry ~15 empty slots per list; short lists
 * are therefore copied at their exact size instead, and only long ones are left to push's amortized
 * growth. (Index memory is mostly these lists: one per key, 100k+ keys.)
 */
const EXACT_UP_TO = 8;

function appended(list: number[], x: number): number[] {
  if (list.length >= EXACT_UP_TO) {
    list.push(x);
    return list;
  }
  const out = new Array<number>(list.length + 1);
  for (let i = 0; i < list.length; i++) out[i] = list[i];
  out[list.length] = x;
  return out;
}

const NO_REVS: number[] = [];

/**
 * One generation's revisions. `subs` is null while every sub-revision is 0 (plain puts and deletes
 * outside multi-operation txns), which spares most keys a second list.
 */
interface Revs {
  /** main revision of the put that created the key in this generation */
  created: number;
  /** version of the last revision in mains */
  ver: number;
  mains: number[];
  subs: number[] | null;
}

/** A generation that a delete has closed (kept until compaction removes it). */
export class Generation implements Revs {
  constructor(
    public created: number,
    public ver: number,
    public mains: number[],
    public subs: number[] | null,
  ) {}
}

function subAt(g: Revs, i: number): number {
  return g.subs === null ? 0 : g.subs[i];
}

function pushRev(g: Revs, main: number, sub: number): void {
  if (g.subs === null && sub !== 0) g.subs = new Array<number>(g.mains.length).fill(0);
  g.mains = appended(g.mains, main);
  if (g.subs !== null) g.subs = appended(g.subs, sub);
}

function popRev(g: Revs): void {
  g.mains = g.mains.slice(0, -1);
  if (g.subs !== null) g.subs = g.subs.slice(0, -1);
}

/** Drops the first n revisions (compaction). */
function dropRevs(g: Revs, n: number): void {
  g.mains = g.mains.slice(n);
  if (g.subs !== null) g.subs = g.subs.slice(n);
}

/** Index of the last revision with main <= atRev, or -1 (binary search: a key may have a long history). */
function lastAtOrBelow(m: number[], atRev: number): number {
  let hi = m.length - 1;
  if (hi < 0 || m[hi] <= atRev) return hi;
  let lo = 0;
  // invariant: m[hi] > atRev; answer in [lo - 1, hi - 1]
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (m[mid] <= atRev) lo = mid + 1;
    else hi = mid;
  }
  return lo - 1;
}

/** The revision of a key visible at some revision, with its creation revision and version. */
export interface IndexedRev {
  main: number;
  sub: number;
  created: number;
  version: number;
}

const NO_LEASE = 0n;

/**
 * A key's history. The current (last) generation lives in the KeyIndex's own fields, so the common
 * key, never deleted and re-created, costs one object plus its revision list; generations closed by
 * a delete move to `closed`, oldest first. Generation number gi counts closed ones first: gi ===
 * closed.length is the current one.
 */
export class KeyIndex implements Revs {
  /**
   * The key as the tree keys it (latin1: one UTF-16 unit per byte). The only copy the index keeps:
   * a Buffer per key would add a ~100-byte object to each of 100k+ keys, while readers ask for the
   * bytes a few times per request (see `key`).
   */
  readonly skey: string;
  /** lease of the latest put, or 0n (the lease store rebuilds its attachments from this) */
  lease: bigint = NO_LEASE;
  created = 0;
  ver = 0;
  mains: number[] = NO_REVS;
  subs: number[] | null = null;
  closed: Generation[] | null = null;

  constructor(skey: string) {
    this.skey = skey;
  }

  /** The key's bytes, in a new Buffer each call: callers keep it (results, events), never mutate it. */
  get key(): Buffer {
    return Buffer.from(this.skey, 'latin1');
  }

  /** Number of generations, the current one included. */
  get generations(): number {
    return this.closed === null ? 1 : this.closed.length + 1;
  }

  private gen(gi: number): Revs {
    return this.closed === null || gi === this.closed.length ? this : this.closed[gi];
  }

  /** True when the key has no live generation and no history left. */
  get isEmpty(): boolean {
    return this.closed === null && this.mains.length === 0;
  }

  /** Ends the current generation with a tombstone already pushed onto it, opening an empty one. */
  closeGeneration(): void {
    const g = new Generation(this.created, this.ver, this.mains, this.subs);
    if (this.closed === null) this.closed = [g];
    else this.closed.push(g);
    this.created = 0;
    this.ver = 0;
    this.mains = NO_REVS;
    this.subs = null;
  }

  /** Undoes closeGeneration (the current generation must be empty). */
  reopenGeneration(): void {
    const g = this.closed!.pop()!;
    if (this.closed!.length === 0) this.closed = null;
    this.created = g.created;
    this.ver = g.ver;
    this.mains = g.mains;
    this.subs = g.subs;
  }

  pushRev(main: number, sub: number): void {
    pushRev(this, main, sub);
  }

  popRev(): void {
    popRev(this);
  }

  setLease(lease: bigint): void {
    // the literal 0n is one shared constant; a decoded zero would be a heap object per key
    this.lease = lease === NO_LEASE ? NO_LEASE : lease;
  }

  /** The latest revision, if the key currently exists. */
  latest(): IndexedRev | undefined {
    const n = this.mains.length;
    if (n === 0) return undefined;
    return { main: this.mains[n - 1], sub: subAt(this, n - 1), created: this.created, version: this.ver };
  }

  /** The revision of this key visible at atRev, or undefined when the key does not exist then. */
  get(atRev: number): IndexedRev | undefined {
    const last = this.generations - 1;
    for (let gi = last; gi >= 0; gi--) {
      const g = this.gen(gi);
      const n = g.mains.length;
      if (n === 0) continue;
      // a closed generation whose tombstone is at or below atRev: the key was deleted then
      if (gi !== last && g.mains[n - 1] <= atRev) return undefined;
      if (g.mains[0] <= atRev) {
        const i = lastAtOrBelow(g.mains, atRev);
        return { main: g.mains[i], sub: subAt(g, i), created: g.created, version: g.ver - (n - 1 - i) };
      }
    }
    return undefined;
  }

  /** The latest revision with main <= atRev: generation index, revision index, and whether it is a tombstone. */
  private latestAtOrBelow(atRev: number): { gi: number; ri: number; tombstone: boolean } | undefined {
    const last = this.generations - 1;
    for (let gi = last; gi >= 0; gi--) {
      const g = this.gen(gi);
      if (g.mains.length === 0 || g.mains[0] > atRev) continue;
      const ri = lastAtOrBelow(g.mains, atRev);
      return { gi, ri, tombstone: gi !== last && ri === g.mains.length - 1 };
    }
    return undefined;
  }

  /** Adds to keep the revision that compaction at atRev keeps (the latest at or below it, unless a tombstone). */
  keep(atRev: number, keep: RevisionSet): void {
    const at = this.latestAtOrBelow(atRev);
    if (!at || at.tombstone) return;
    const g = this.gen(at.gi);
    keep.add(g.mains[at.ri], subAt(g, at.ri));
  }

  /**
   * Removes the revisions at or below atRev except the latest one, which is kept (and added to keep) unless
   * it is a tombstone. Generations left empty are dropped. Returns true if the key has nothing left.
   */
  compact(atRev: number, keep: RevisionSet): boolean {
    const at = this.latestAtOrBelow(atRev);
    if (!at) return this.isEmpty;
    // generations before at.gi go; at.gi itself goes too when its kept revision is a tombstone
    let dropGens = at.gi;
    if (at.tombstone) dropGens++;
    else {
      const g = this.gen(at.gi);
      keep.add(g.mains[at.ri], subAt(g, at.ri));
      if (at.ri > 0) dropRevs(g, at.ri);
    }
    if (dropGens > 0) {
      // only closed generations can be dropped: the current one is never a tombstone's
      this.closed!.splice(0, dropGens);
      if (this.closed!.length === 0) this.closed = null;
    }
    return this.isEmpty;
  }
}

const cmpStr = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** Undo records of index mutations, so a failed write batch leaves the index as it was. */
export type IndexUndo =
  | { kind: 'put'; ki: KeyIndex; created: boolean; newGen: boolean; prevLease: bigint; prevCreated: number }
  | { kind: 'tombstone'; ki: KeyIndex; prevLease: bigint };

export class TreeIndex {
  private readonly tree: BTree<string, KeyIndex> = new BTree<string, KeyIndex>(undefined, cmpStr);

  get size(): number {
    return this.tree.size;
  }

  getKeyIndex(key: Buffer): KeyIndex | undefined {
    return this.tree.get(key.toString('latin1'));
  }

  /** Records a put of key at (main, sub); `known`: the key's KeyIndex if the caller already looked it up. */
  put(key: Buffer, main: number, sub: number, lease: bigint, undo?: IndexUndo[], known?: KeyIndex): KeyIndex {
    let ki = known;
    let created = false;
    if (ki === undefined) {
      const s = key.toString('latin1');
      ki = this.tree.get(s);
      if (ki === undefined) {
        ki = new KeyIndex(s);
        this.tree.set(s, ki);
        created = true;
      }
    }
    const newGen = ki.mains.length === 0;
    const prevCreated = ki.created;
    if (newGen) {
      ki.created = main;
      ki.ver = 0;
    }
    ki.pushRev(main, sub);
    ki.ver++;
    const prevLease = ki.lease;
    ki.setLease(lease);
    undo?.push({ kind: 'put', ki, created, newGen, prevLease, prevCreated });
    return ki;
  }

  /** Records a delete of an existing key at (main, sub). Returns false if the key does not exist. */
  tombstone(key: Buffer, main: number, sub: number, undo?: IndexUndo[]): boolean {
    const ki = this.tree.get(key.toString('latin1'));
    if (ki === undefined) return false;
    if (ki.mains.length === 0) return false;
    ki.pushRev(main, sub);
    ki.ver++;
    ki.closeGeneration();
    const prevLease = ki.lease;
    ki.setLease(0n);
    undo?.push({ kind: 'tombstone', ki, prevLease });
    return true;
  }

  /** Reverts one mutation; records must be reverted newest first. */
  revert(u: IndexUndo): void {
    const ki = u.ki;
    if (u.kind === 'tombstone') ki.reopenGeneration();
    ki.popRev();
    ki.ver--;
    ki.setLease(u.prevLease);
    if (u.kind === 'put') {
      if (u.newGen) {
        ki.created = u.prevCreated;
        ki.ver = 0;
      }
      if (u.created) this.tree.delete(ki.skey);
    }
  }

  /** Restores one revision read from the backend in revision order (rebuilding the index at start). */
  restore(
    key: Buffer,
    main: number,
    sub: number,
    tombstone: boolean,
    created: number,
    ver: number,
    lease: bigint,
  ) {
    const s = key.toString('latin1');
    let ki = this.tree.get(s);
    if (tombstone) {
      if (ki === undefined) return;
      if (ki.mains.length === 0) return;
      ki.pushRev(main, sub);
      ki.ver++;
      ki.closeGeneration();
      ki.setLease(0n);
      return;
    }
    if (ki === undefined) {
      ki = new KeyIndex(s);
      this.tree.set(s, ki);
    }
    if (ki.mains.length === 0) ki.created = created;
    ki.pushRev(main, sub);
    ki.ver = ver;
    ki.setLease(lease);
  }

  /**
   * Visits, in key order, the keys in [key, end) (end undefined: the single key; end empty: no upper
   * bound) that exist at atRev, with the revision visible then.
   */
  visit(key: Buffer, end: Buffer | undefined, atRev: number, f: (ki: KeyIndex, rev: IndexedRev) => void) {
    if (end === undefined) {
      const ki = this.tree.get(key.toString('latin1'));
      if (ki === undefined) return;
      const r = ki.get(atRev);
      if (r !== undefined) f(ki, r);
      return;
    }
    const lo = key.toString('latin1');
    let hi: string | undefined;
    let includeHi = false;
    if (end.length === 0) {
      hi = this.tree.maxKey();
      includeHi = true;
      if (hi === undefined) return;
    } else {
      hi = end.toString('latin1');
    }
    if (hi < lo) return;
    this.tree.forRange(lo, hi, includeHi, (_k, ki) => {
      const r = ki.get(atRev);
      if (r !== undefined) f(ki, r);
    });
  }

  /** All key indexes in key order starting at `from` (inclusive), for chunked walks. */
  entriesFrom(from: string | undefined): IterableIterator<[string, KeyIndex]> {
    return this.tree.entries(from);
  }

  deleteKey(s: string): void {
    this.tree.delete(s);
  }

  /** The set of revisions a compaction at atRev would keep. */
  keep(atRev: number, keep: RevisionSet): void {
    for (const [, ki] of this.tree.entries()) ki.keep(atRev, keep);
  }
}
