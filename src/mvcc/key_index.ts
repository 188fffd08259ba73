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

export class Generation {
  /** main revision of the put that created the key in this generation */
  created: number;
  /** version of the last revision in revs */
  ver: number;
  mains: number[];
  subs: number[];

  constructor(created = 0, ver = 0, mains: number[] = [], subs: number[] = []) {
    this.created = created;
    this.ver = ver;
    this.mains = mains;
    this.subs = subs;
  }

  get empty(): boolean {
    return this.mains.length === 0;
  }

  /** Index of the last revision with main <= atRev, or -1 (binary search: a key may have a long history). */
  lastAtOrBelow(atRev: number): number {
    const m = this.mains;
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
}

/** The revision of a key visible at some revision, with its creation revision and version. */
export interface IndexedRev {
  main: number;
  sub: number;
  created: number;
  version: number;
}

export class KeyIndex {
  readonly key: Buffer;
  readonly gens: Generation[];
  /** lease of the latest put, or 0n (the lease store rebuilds its attachments from this) */
  lease: bigint;

  constructor(key: Buffer) {
    this.key = key;
    this.gens = [new Generation()];
    this.lease = 0n;
  }

  /** True when the key has no live generation and no history left. */
  get isEmpty(): boolean {
    return this.gens.length === 1 && this.gens[0].empty;
  }

  /** The latest revision, if the key currently exists. */
  latest(): IndexedRev | undefined {
    const g = this.gens[this.gens.length - 1];
    const n = g.mains.length;
    if (n === 0) return undefined;
    return { main: g.mains[n - 1], sub: g.subs[n - 1], created: g.created, version: g.ver };
  }

  /** The revision of this key visible at atRev, or undefined when the key does not exist then. */
  get(atRev: number): IndexedRev | undefined {
    const gens = this.gens;
    const last = gens.length - 1;
    for (let gi = last; gi >= 0; gi--) {
      const g = gens[gi];
      const n = g.mains.length;
      if (n === 0) continue;
      // a closed generation whose tombstone is at or below atRev: the key was deleted then
      if (gi !== last && g.mains[n - 1] <= atRev) return undefined;
      if (g.mains[0] <= atRev) {
        const i = g.lastAtOrBelow(atRev);
        return { main: g.mains[i], sub: g.subs[i], created: g.created, version: g.ver - (n - 1 - i) };
      }
    }
    return undefined;
  }

  /** The latest revision with main <= atRev: generation index, revision index, and whether it is a tombstone. */
  private latestAtOrBelow(atRev: number): { gi: number; ri: number; tombstone: boolean } | undefined {
    const gens = this.gens;
    const last = gens.length - 1;
    for (let gi = last; gi >= 0; gi--) {
      const g = gens[gi];
      if (g.empty || g.mains[0] > atRev) continue;
      const ri = g.lastAtOrBelow(atRev);
      return { gi, ri, tombstone: gi !== last && ri === g.mains.length - 1 };
    }
    return undefined;
  }

  /** Adds to keep the revision that compaction at atRev keeps (the latest at or below it, unless a tombstone). */
  keep(atRev: number, keep: RevisionSet): void {
    const at = this.latestAtOrBelow(atRev);
    if (!at || at.tombstone) return;
    const g = this.gens[at.gi];
    keep.add(g.mains[at.ri], g.subs[at.ri]);
  }

  /**
   * Removes the revisions at or below atRev except the latest one, which is kept (and added to keep) unless
   * it is a tombstone. Generations left empty are dropped. Returns true if the key has nothing left.
   */
  compact(atRev: number, keep: RevisionSet): boolean {
    const at = this.latestAtOrBelow(atRev);
    if (!at) return this.isEmpty;
    const gens = this.gens;
    if (at.tombstone) {
      gens.splice(0, at.gi + 1);
    } else {
      const g = gens[at.gi];
      keep.add(g.mains[at.ri], g.subs[at.ri]);
      if (at.ri > 0) {
        g.mains.splice(0, at.ri);
        g.subs.splice(0, at.ri);
      }
      if (at.gi > 0) gens.splice(0, at.gi);
    }
    return this.isEmpty;
  }
}

const cmpStr = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** Undo records of index mutations, so a failed write batch leaves the index as it was. */
export type IndexUndo =
  | { kind: 'put'; ki: KeyIndex; created: boolean; newGen: boolean; prevLease: bigint; prevCreated: number }
  | { kind: 'tombstone'; ki: KeyIndex; prevLease: bigint };

/**
 * Long-lived copies of keys, packed into slabs of their own. A key kept by the index must not be a
 * view of a request buffer, nor a slice of Node's shared 8 KiB pool: either would pin kilobytes of
 * unrelated bytes per key for as long as the key lives (measured: ~70 MB for 60k 8-byte keys).
 */
class KeyArena {
  private static readonly SLAB_BYTES = 64 * 1024;
  private slab = Buffer.allocUnsafeSlow(KeyArena.SLAB_BYTES);
  private used = 0;

  copy(key: Buffer): Buffer {
    const n = key.length;
    if (n > KeyArena.SLAB_BYTES / 16) {
      const own = Buffer.allocUnsafeSlow(n);
      key.copy(own);
      return own;
    }
    if (this.used + n > KeyArena.SLAB_BYTES) {
      this.slab = Buffer.allocUnsafeSlow(KeyArena.SLAB_BYTES);
      this.used = 0;
    }
    const out = this.slab.subarray(this.used, this.used + n);
    key.copy(out);
    this.used += n;
    return out;
  }
}

export class TreeIndex {
  private readonly tree: BTree<string, KeyIndex> = new BTree<string, KeyIndex>(undefined, cmpStr);
  private readonly keys = new KeyArena();

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
        ki = new KeyIndex(this.keys.copy(key));
        this.tree.set(s, ki);
        created = true;
      }
    }
    const g = ki.gens[ki.gens.length - 1];
    const newGen = g.empty;
    const prevCreated = g.created;
    if (newGen) {
      g.created = main;
      g.ver = 0;
    }
    g.mains.push(main);
    g.subs.push(sub);
    g.ver++;
    const prevLease = ki.lease;
    ki.lease = lease;
    undo?.push({ kind: 'put', ki, created, newGen, prevLease, prevCreated });
    return ki;
  }

  /** Records a delete of an existing key at (main, sub). Returns false if the key does not exist. */
  tombstone(key: Buffer, main: number, sub: number, undo?: IndexUndo[]): boolean {
    const ki = this.tree.get(key.toString('latin1'));
    if (ki === undefined) return false;
    const g = ki.gens[ki.gens.length - 1];
    if (g.empty) return false;
    g.mains.push(main);
    g.subs.push(sub);
    g.ver++;
    ki.gens.push(new Generation());
    const prevLease = ki.lease;
    ki.lease = 0n;
    undo?.push({ kind: 'tombstone', ki, prevLease });
    return true;
  }

  /** Reverts one mutation; records must be reverted newest first. */
  revert(u: IndexUndo): void {
    const ki = u.ki;
    if (u.kind === 'tombstone') {
      ki.gens.pop();
    }
    const g = ki.gens[ki.gens.length - 1];
    g.mains.pop();
    g.subs.pop();
    g.ver--;
    ki.lease = u.prevLease;
    if (u.kind === 'put') {
      if (u.newGen) {
        g.created = u.prevCreated;
        g.ver = 0;
      }
      if (u.created) this.tree.delete(ki.key.toString('latin1'));
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
      const g = ki.gens[ki.gens.length - 1];
      if (g.empty) return;
      g.mains.push(main);
      g.subs.push(sub);
      g.ver++;
      ki.gens.push(new Generation());
      ki.lease = 0n;
      return;
    }
    if (ki === undefined) {
      ki = new KeyIndex(this.keys.copy(key));
      this.tree.set(s, ki);
    }
    const g = ki.gens[ki.gens.length - 1];
    if (g.empty) g.created = created;
    g.mains.push(main);
    g.subs.push(sub);
    g.ver = ver;
    ki.lease = lease;
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
