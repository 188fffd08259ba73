// Which watchers care about a key: the matching structure of the watchable store's hot path.
//
// Watchers come in four shapes, each with its own index, so matching one event costs about
// O(distinct prefix lengths + log n + matches), not O(all watchers):
//   - single key: a map from key to watchers;
//   - prefix (end = prefixEnd(key), what `--prefix` sends): a map per prefix, probed with the event
//     key's prefixes of the lengths that some prefix watcher uses;
//   - from-key (end empty: every key >= key): an array sorted by key, binary searched;
//   - any other range [key, end): a plain list (rare in practice).

/** etcd's GetPrefixRangeEnd: the smallest key greater than every key with this prefix; [0] if none. */
export function prefixEnd(key: Buffer): Buffer {
  for (let i = key.length - 1; i >= 0; i--) {
    if (key[i] < 0xff) {
      const end = Buffer.from(key.subarray(0, i + 1));
      end[i]++;
      return end;
    }
  }
  return Buffer.from([0]);
}

/** The key range a watcher covers; `end` undefined: one key; empty: every key >= key. */
export interface KeyRange {
  readonly key: Buffer;
  readonly end: Buffer | undefined;
}

export function rangeContains(r: KeyRange, key: Buffer): boolean {
  if (r.end === undefined) return r.key.equals(key);
  if (Buffer.compare(key, r.key) < 0) return false;
  return r.end.length === 0 || Buffer.compare(key, r.end) < 0;
}

type Shape = 'key' | 'prefix' | 'fromKey' | 'range';

function shapeOf(r: KeyRange): Shape {
  if (r.end === undefined) return 'key';
  if (r.end.length === 0) return 'fromKey';
  const pe = prefixEnd(r.key);
  if (!(pe.length === 1 && pe[0] === 0) && pe.equals(r.end)) return 'prefix';
  return 'range';
}

export class WatcherIndex<W extends KeyRange> {
  private readonly exact = new Map<string, Set<W>>();
  private readonly prefixes = new Map<string, Set<W>>();
  /** prefix length -> number of prefix watchers with that length */
  private readonly prefixLens = new Map<number, number>();
  private sortedLens: number[] = [];
  /** from-key watchers, sorted by key */
  private readonly fromKey: W[] = [];
  private readonly ranges = new Set<W>();
  private readonly shapes = new Map<W, Shape>();

  get size(): number {
    return this.shapes.size;
  }

  has(w: W): boolean {
    return this.shapes.has(w);
  }

  add(w: W): void {
    if (this.shapes.has(w)) return;
    const shape = shapeOf(w);
    this.shapes.set(w, shape);
    switch (shape) {
      case 'key':
        addTo(this.exact, w.key.toString('latin1'), w);
        break;
      case 'prefix': {
        addTo(this.prefixes, w.key.toString('latin1'), w);
        const n = this.prefixLens.get(w.key.length) ?? 0;
        this.prefixLens.set(w.key.length, n + 1);
        if (n === 0) this.sortedLens = [...this.prefixLens.keys()].sort((a, b) => a - b);
        break;
      }
      case 'fromKey':
        this.fromKey.splice(this.upperBound(w.key), 0, w);
        break;
      case 'range':
        this.ranges.add(w);
        break;
    }
  }

  delete(w: W): boolean {
    const shape = this.shapes.get(w);
    if (shape === undefined) return false;
    this.shapes.delete(w);
    switch (shape) {
      case 'key':
        removeFrom(this.exact, w.key.toString('latin1'), w);
        break;
      case 'prefix': {
        removeFrom(this.prefixes, w.key.toString('latin1'), w);
        const n = (this.prefixLens.get(w.key.length) ?? 1) - 1;
        if (n === 0) {
          this.prefixLens.delete(w.key.length);
          this.sortedLens = [...this.prefixLens.keys()].sort((a, b) => a - b);
        } else this.prefixLens.set(w.key.length, n);
        break;
      }
      case 'fromKey': {
        const i = this.fromKey.indexOf(w);
        if (i >= 0) this.fromKey.splice(i, 1);
        break;
      }
      case 'range':
        this.ranges.delete(w);
        break;
    }
    return true;
  }

  /** Calls cb for every watcher whose range contains key (keyStr: key as latin1). */
  forEachMatch(key: Buffer, keyStr: string, cb: (w: W) => void): void {
    const ex = this.exact.get(keyStr);
    if (ex !== undefined) for (const w of ex) cb(w);
    if (this.sortedLens.length > 0) {
      for (const len of this.sortedLens) {
        if (len > keyStr.length) break;
        const set = this.prefixes.get(keyStr.slice(0, len));
        if (set !== undefined) for (const w of set) cb(w);
      }
    }
    if (this.fromKey.length > 0) {
      const ub = this.upperBound(key);
      for (let i = 0; i < ub; i++) cb(this.fromKey[i]);
    }
    if (this.ranges.size > 0) {
      for (const w of this.ranges) {
        if (Buffer.compare(key, w.key) >= 0 && Buffer.compare(key, w.end!) < 0) cb(w);
      }
    }
  }

  /** Index of the first from-key watcher whose key is > key. */
  private upperBound(key: Buffer): number {
    let lo = 0;
    let hi = this.fromKey.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (Buffer.compare(this.fromKey[mid].key, key) <= 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}

function addTo<W>(m: Map<string, Set<W>>, k: string, w: W): void {
  let s = m.get(k);
  if (s === undefined) {
    s = new Set();
    m.set(k, s);
  }
  s.add(w);
}

function removeFrom<W>(m: Map<string, Set<W>>, k: string, w: W): void {
  const s = m.get(k);
  if (s === undefined) return;
  s.delete(w);
  if (s.size === 0) m.delete(k);
}
