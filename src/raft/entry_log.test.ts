// Tests for MemoryStorage's packed log (entry_log.ts): a property test against a plain array model
// (the per-entry-object storage it replaced) over random appends, conflicting and overlapping appends,
// compactions, snapshots and reads; plus the two reasons it exists: appended data is copied (the
// caller's buffer is not kept) and compaction releases the slabs of the dropped entries.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { Entry, Snapshot } from '../gen/raftpb/raft.js';
import { ErrCompacted, ErrSnapOutOfDate, ErrUnavailable, emptyConfState, MemoryStorage } from './storage.js';
import { EMPTY, entrySize, limitSize, NoLimit, RaftError } from './util.js';

/** The reference: every entry an object in an array, element 0 a dummy at the snapshot point. */
class ArrayModel {
  snapIndex = 0;
  ents: Entry[] = [{ term: 0, index: 0, type: 0, data: EMPTY }];

  firstIndex(): number {
    return this.ents[0].index + 1;
  }

  lastIndex(): number {
    return this.ents[0].index + this.ents.length - 1;
  }

  entries(lo: number, hi: number, maxSize: number): Entry[] {
    const offset = this.ents[0].index;
    if (lo <= offset) throw ErrCompacted;
    if (hi > this.lastIndex() + 1)
      throw new RaftError(`entries' hi(${hi}) is out of bound lastindex(${this.lastIndex()})`);
    if (this.ents.length === 1) throw ErrUnavailable;
    return limitSize(this.ents.slice(lo - offset, hi - offset), maxSize);
  }

  term(i: number): number {
    const offset = this.ents[0].index;
    if (i < offset) throw ErrCompacted;
    if (i - offset >= this.ents.length) throw ErrUnavailable;
    return this.ents[i - offset].term;
  }

  applySnapshot(snap: Snapshot): void {
    const idx = snap.metadata!.index;
    if (this.snapIndex >= idx) throw ErrSnapOutOfDate;
    this.snapIndex = idx;
    this.ents = [{ term: snap.metadata!.term, index: idx, type: 0, data: EMPTY }];
  }

  createSnapshot(i: number): number {
    if (i <= this.snapIndex) throw ErrSnapOutOfDate;
    if (i > this.lastIndex())
      throw new RaftError(`snapshot ${i} is out of bound lastindex(${this.lastIndex()})`);
    const term = this.term(i);
    this.snapIndex = i;
    return term;
  }

  compact(ci: number): void {
    const offset = this.ents[0].index;
    if (ci <= offset) throw ErrCompacted;
    if (ci > this.lastIndex())
      throw new RaftError(`compact ${ci} is out of bound lastindex(${this.lastIndex()})`);
    const i = ci - offset;
    this.ents = [{ term: this.ents[i].term, index: ci, type: 0, data: EMPTY }, ...this.ents.slice(i + 1)];
  }

  append(entries: Entry[]): void {
    if (entries.length === 0) return;
    const first = this.firstIndex();
    if (entries[0].index + entries.length - 1 < first) return;
    if (first > entries[0].index) entries = entries.slice(first - entries[0].index);
    const offset = entries[0].index - this.ents[0].index;
    if (offset > this.ents.length) {
      throw new RaftError(`missing log entry [last: ${this.lastIndex()}, append at: ${entries[0].index}]`);
    }
    this.ents.length = Math.min(this.ents.length, offset);
    for (const e of entries) this.ents.push({ ...e, data: Buffer.from(e.data) });
  }
}

/** A comparable result: the value, or which error (the shared error constants by identity). */
function outcome<T>(f: () => T): { ok: T } | { err: string } {
  try {
    return { ok: f() };
  } catch (e) {
    if (e === ErrCompacted) return { err: 'ErrCompacted' };
    if (e === ErrUnavailable) return { err: 'ErrUnavailable' };
    if (e === ErrSnapOutOfDate) return { err: 'ErrSnapOutOfDate' };
    if (e instanceof RaftError) return { err: `RaftError: ${e.message}` };
    throw e;
  }
}

/** The storage and the model give the same value, or fail the same way. */
function same<T>(storage: () => T, model: () => T): void {
  assert.deepEqual(outcome(storage), outcome(model));
}

const plain = (es: Entry[]) =>
  es.map((e) => ({ term: e.term, index: e.index, type: e.type, data: e.data.toString('hex') }));

/** Deterministic bytes, so large payloads cost no generator time. */
function payload(size: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(size);
  for (let j = 0; j < size; j++) b[j] = (seed + j * 31) & 0xff;
  return b;
}

// Payload sizes: tiny, a few KiB (larger than the first slabs), and around the own-buffer threshold.
const dataSize = fc.oneof(
  { weight: 3, arbitrary: fc.integer({ min: 0, max: 40 }) },
  { weight: 3, arbitrary: fc.integer({ min: 1000, max: 9000 }) },
  { weight: 1, arbitrary: fc.constantFrom(0, 64 * 1024 - 1, 64 * 1024, 100 * 1024) },
);

// Operations whose positions are resolved against the log when run: `pos` picks an index in (or just
// outside) [firstIndex, lastIndex], so most operations hit the log and some hit each boundary.
const pos = fc.nat();
const op = fc.oneof(
  {
    // Starting before lastIndex+1 replaces a (possibly conflicting) suffix; before firstIndex, the
    // compacted part is skipped; after lastIndex+1 leaves a gap (an error).
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant('append' as const),
      at: pos,
      ents: fc.array(
        fc.record({
          term: fc.integer({ min: 0, max: 6 }),
          type: fc.integer({ min: 0, max: 2 }),
          size: dataSize,
          seed: fc.nat(255),
        }),
        { maxLength: 12 },
      ),
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('compact' as const), at: pos }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('snapshot' as const),
      at: fc.integer({ min: -2, max: 6 }),
      term: fc.integer({ min: 0, max: 9 }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('createSnapshot' as const), at: pos }) },
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant('entries' as const),
      lo: pos,
      hi: pos,
      // A fixed limit, or one at (or one byte either side of) the size of the first `cut` entries.
      maxSize: fc.oneof(
        fc.constantFrom(0, 1, 12, 60, 2000, 20000, 200 * 1024, NoLimit),
        fc.record({ cut: fc.integer({ min: 1, max: 6 }), delta: fc.integer({ min: -1, max: 1 }) }),
      ),
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('term' as const), at: pos }) },
);

describe('entry log (MemoryStorage)', () => {
  it('behaves like a plain array of entries: same results and same errors for every operation', () => {
    fc.assert(
      fc.property(fc.array(op, { minLength: 5, maxLength: 80 }), (ops) => {
        const st = new MemoryStorage();
        const model = new ArrayModel();
        for (const o of ops) {
          const first = model.firstIndex();
          const last = model.lastIndex();
          /** An index in [first - below, last + above], picked by p. */
          const pick = (p: number, below: number, above: number) =>
            first - below + (p % (last - first + 1 + below + above));
          switch (o.kind) {
            case 'append': {
              const at = pick(o.at, 3, 2);
              // Data given as views into a larger buffer (as from a network read), then scribbled over.
              const backing = Buffer.alloc(o.ents.reduce((n, e) => n + e.size, 0) + 16);
              let cursor = 8;
              const ents = o.ents.map((e, k): Entry => {
                payload(e.size, e.seed).copy(backing, cursor);
                const data = backing.subarray(cursor, (cursor += e.size));
                return { term: e.term, index: at + k, type: e.type, data };
              });
              same(
                () => st.append(ents),
                () => model.append(ents.map((e) => ({ ...e, data: Buffer.from(e.data) }))),
              );
              backing.fill(0xee);
              break;
            }
            case 'compact':
              same(
                () => st.compact(pick(o.at, 1, 1)),
                () => model.compact(pick(o.at, 1, 1)),
              );
              break;
            case 'snapshot': {
              const snap = () => ({
                data: EMPTY,
                metadata: { index: last + o.at, term: o.term, confState: emptyConfState() },
              });
              same(
                () => st.applySnapshot(snap()),
                () => model.applySnapshot(snap()),
              );
              break;
            }
            case 'createSnapshot': {
              // Not before the snapshot point: the old storage threw a TypeError there (now ErrCompacted).
              const i = pick(o.at, 1, 1);
              same(
                () => st.createSnapshot(i, undefined, EMPTY).metadata!.term,
                () => model.createSnapshot(i),
              );
              break;
            }
            case 'entries': {
              const lo = pick(o.lo, 1, 2);
              const hi = lo - 1 + (o.hi % (last + 4 - lo));
              let maxSize = 0;
              if (typeof o.maxSize === 'number') maxSize = o.maxSize;
              else {
                const from = Math.max(lo - first + 1, 1);
                for (const e of model.ents.slice(from, from + o.maxSize.cut)) maxSize += entrySize(e);
                maxSize += o.maxSize.delta;
              }
              same(
                () => plain(st.entries(lo, hi, maxSize)),
                () => plain(model.entries(lo, hi, maxSize)),
              );
              break;
            }
            case 'term':
              same(
                () => st.term(pick(o.at, 2, 2)),
                () => model.term(pick(o.at, 2, 2)),
              );
              break;
          }
          assert.equal(st.firstIndex(), model.firstIndex());
          assert.equal(st.lastIndex(), model.lastIndex());
          assert.deepEqual(plain(st.allEntries()), plain(model.ents.slice(1)));
          // Nothing stored: at most the slab being filled is left.
          if (model.ents.length === 1)
            assert.ok(st.memoryStats().slabs <= 1, 'slabs of dropped entries released');
        }
      }),
      { numRuns: 400 },
    );
  });

  it('copies appended data: changing the caller buffer afterwards changes nothing stored', () => {
    const st = new MemoryStorage();
    const chunk = Buffer.from('....hello....world....');
    const big = Buffer.alloc(100 * 1024, 7);
    st.append([
      { term: 1, index: 1, type: 0, data: chunk.subarray(4, 9) },
      { term: 1, index: 2, type: 0, data: chunk.subarray(13, 18) },
      { term: 1, index: 3, type: 0, data: big },
    ]);
    chunk.fill(0);
    big.fill(0);
    const got = st.entries(1, 4, NoLimit);
    assert.equal(got[0].data.toString(), 'hello');
    assert.equal(got[1].data.toString(), 'world');
    assert.ok(got[2].data.every((b) => b === 7));
    assert.notEqual(got[0].data.buffer, chunk.buffer, 'no view of the caller buffer is kept');
  });

  it('keeps the bytes of entries handed out when a conflicting suffix is replaced', () => {
    const st = new MemoryStorage();
    st.append([1, 2, 3].map((i) => ({ term: 1, index: i, type: 0, data: Buffer.from(`old-${i}`) })));
    const handedOut = st.entries(2, 4, NoLimit);
    st.append([2, 3].map((i) => ({ term: 2, index: i, type: 0, data: Buffer.from(`new-${i}`) })));
    assert.deepEqual(
      handedOut.map((e) => e.data.toString()),
      ['old-2', 'old-3'],
    );
    assert.deepEqual(
      st.allEntries().map((e) => e.data.toString()),
      ['old-1', 'new-2', 'new-3'],
    );
  });

  it('compaction, truncation and snapshots release the slabs that held only dropped entries', () => {
    const st = new MemoryStorage();
    const n = 4000;
    for (let i = 1; i <= n; i++) st.append([{ term: 1, index: i, type: 0, data: payload(1000, i) }]);
    // A few large entries, each in a buffer of its own.
    for (let i = n + 1; i <= n + 4; i++)
      st.append([{ term: 1, index: i, type: 0, data: payload(200 * 1024, i) }]);
    const all = st.entries(1, n + 5, NoLimit);
    assert.ok(all.every((e) => e.data.equals(payload(e.index <= n ? 1000 : 200 * 1024, e.index))));
    const full = st.memoryStats();
    assert.ok(full.slabBytes >= n * 1000 + 4 * 200 * 1024, `all data held: ${full.slabBytes}`);
    assert.ok(full.slabBytes < 1.3 * (n * 1000 + 4 * 200 * 1024), `little slack: ${full.slabBytes}`);

    // Drop two of the large entries by replacing them.
    st.append([{ term: 2, index: n + 3, type: 0, data: payload(10, 1) }]);
    assert.equal(st.memoryStats().slabBytes, full.slabBytes - 2 * 200 * 1024);

    st.compact(n - 10);
    const after = st.memoryStats();
    assert.ok(after.slabBytes <= 2 * 512 * 1024 + 2 * 200 * 1024 + 16 * 1024, `released: ${after.slabBytes}`);
    assert.deepEqual(
      st.entries(n - 9, n + 1, NoLimit).map((e) => e.data.equals(payload(1000, e.index))),
      new Array(10).fill(true),
    );

    st.compact(st.lastIndex());
    assert.ok(st.memoryStats().slabs <= 1, 'at most the slab being filled is left');

    st.applySnapshot({ data: EMPTY, metadata: { index: n + 100, term: 3, confState: emptyConfState() } });
    assert.deepEqual(st.memoryStats(), { slabs: 0, slabBytes: 0 });
    assert.equal(st.term(n + 100), 3);
  });
});
