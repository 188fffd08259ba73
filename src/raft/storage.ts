// The Storage interface raft reads its stable log through, and MemoryStorage, an in-memory
// implementation for tests and simulations. The server's durable storage (WAL-backed) implements the
// same interface. Storage holds what the application has persisted: raft only reads it.
import { type ConfState, type Entry, HardState, type Snapshot } from '../gen/raftpb/raft.js';
import { EMPTY, limitSize, RaftError } from './util.js';

/** The requested index is older than the storage's first index (compacted away). */
export const ErrCompacted = new RaftError('requested index is unavailable due to compaction');
/** A snapshot older than the storage's current one was given to applySnapshot/createSnapshot. */
export const ErrSnapOutOfDate = new RaftError('requested index is older than the existing snapshot');
/** The requested index is beyond the storage's last index. */
export const ErrUnavailable = new RaftError('requested entry at index is unavailable');
/** The snapshot is being prepared; raft will retry later (the follower stays in probe). */
export const ErrSnapshotTemporarilyUnavailable = new RaftError('snapshot is temporarily unavailable');

export interface InitialState {
  hardState: HardState;
  confState: ConfState;
}

export interface Storage {
  /** The persisted HardState and the ConfState of the latest snapshot/applied config. */
  initialState(): InitialState;
  /** Entries in [lo, hi), limited to maxSize bytes (at least one entry). Throws ErrCompacted/ErrUnavailable. */
  entries(lo: number, hi: number, maxSize: number): Entry[];
  /** Term of entry i, for i in [firstIndex-1, lastIndex]. Throws ErrCompacted/ErrUnavailable otherwise. */
  term(i: number): number;
  lastIndex(): number;
  /** Index of the first entry still available (the entry before it may only be known by its term). */
  firstIndex(): number;
  /** The most recent snapshot. May throw ErrSnapshotTemporarilyUnavailable. */
  snapshot(): Snapshot;
}

export function emptyConfState(): ConfState {
  return { voters: [], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false };
}

export function emptySnapshot(): Snapshot {
  return { data: EMPTY, metadata: { confState: emptyConfState(), index: 0, term: 0 } };
}

export function isEmptySnap(s: Snapshot | undefined): boolean {
  return s === undefined || (s.metadata?.index ?? 0) === 0;
}

export function isEmptyHardState(hs: HardState): boolean {
  return hs.term === 0 && hs.vote === 0n && hs.commit === 0;
}

/**
 * MemoryStorage keeps the log in an array whose element 0 is a dummy entry carrying the index and term of
 * the last compacted entry (the snapshot point), so term(firstIndex-1) is always answerable.
 */
export class MemoryStorage implements Storage {
  hardState: HardState = HardState.create();
  snap: Snapshot = emptySnapshot();
  /** ents[i] has index ents[0].index + i. */
  ents: Entry[] = [{ term: 0, index: 0, type: 0, data: EMPTY }];

  /** Builds a storage holding a bootstrap ConfState (as if from a snapshot at index 0). */
  static withVoters(voters: bigint[], learners: bigint[] = []): MemoryStorage {
    const ms = new MemoryStorage();
    ms.snap.metadata!.confState = { ...emptyConfState(), voters: voters.slice(), learners: learners.slice() };
    return ms;
  }

  initialState(): InitialState {
    return { hardState: { ...this.hardState }, confState: this.snap.metadata!.confState ?? emptyConfState() };
  }

  setHardState(hs: HardState): void {
    this.hardState = { ...hs };
  }

  entries(lo: number, hi: number, maxSize: number): Entry[] {
    const offset = this.ents[0].index;
    if (lo <= offset) throw ErrCompacted;
    if (hi > this.lastIndex() + 1)
      throw new RaftError(`entries' hi(${hi}) is out of bound lastindex(${this.lastIndex()})`);
    // Only the dummy entry: nothing to return.
    if (this.ents.length === 1) throw ErrUnavailable;
    return limitSize(this.ents.slice(lo - offset, hi - offset), maxSize);
  }

  term(i: number): number {
    const offset = this.ents[0].index;
    if (i < offset) throw ErrCompacted;
    if (i - offset >= this.ents.length) throw ErrUnavailable;
    return this.ents[i - offset].term;
  }

  lastIndex(): number {
    return this.ents[0].index + this.ents.length - 1;
  }

  firstIndex(): number {
    return this.ents[0].index + 1;
  }

  snapshot(): Snapshot {
    return this.snap;
  }

  /** Replaces the storage's contents with a snapshot (a follower installing one). */
  applySnapshot(snap: Snapshot): void {
    const idx = snap.metadata?.index ?? 0;
    if (this.snap.metadata!.index >= idx) throw ErrSnapOutOfDate;
    this.snap = snap;
    this.ents = [{ term: snap.metadata!.term, index: idx, type: 0, data: EMPTY }];
  }

  /**
   * Records a snapshot of the state machine at index i (i <= applied), with the ConfState at that point,
   * so the log before it can be compacted and lagging followers can be sent it.
   */
  createSnapshot(i: number, cs: ConfState | undefined, data: Buffer): Snapshot {
    if (i <= this.snap.metadata!.index) throw ErrSnapOutOfDate;
    const offset = this.ents[0].index;
    if (i > this.lastIndex())
      throw new RaftError(`snapshot ${i} is out of bound lastindex(${this.lastIndex()})`);
    this.snap = {
      data,
      metadata: {
        index: i,
        term: this.ents[i - offset].term,
        confState: cs ?? this.snap.metadata!.confState,
      },
    };
    return this.snap;
  }

  /** Discards all entries before compactIndex (which becomes the new dummy entry). */
  compact(compactIndex: number): void {
    const offset = this.ents[0].index;
    if (compactIndex <= offset) throw ErrCompacted;
    if (compactIndex > this.lastIndex()) {
      throw new RaftError(`compact ${compactIndex} is out of bound lastindex(${this.lastIndex()})`);
    }
    const i = compactIndex - offset;
    const dummy: Entry = { term: this.ents[i].term, index: this.ents[i].index, type: 0, data: EMPTY };
    this.ents = [dummy, ...this.ents.slice(i + 1)];
  }

  /**
   * Appends entries, truncating any existing suffix they conflict with. Entries must be contiguous and
   * must not leave a gap after the current last index.
   */
  append(entries: Entry[]): void {
    if (entries.length === 0) return;
    const first = this.firstIndex();
    const last = entries[0].index + entries.length - 1;
    // Shortcut if there is no new entry.
    if (last < first) return;
    // Truncate the part of entries that is already compacted.
    if (first > entries[0].index) entries = entries.slice(first - entries[0].index);
    const offset = entries[0].index - this.ents[0].index;
    if (offset > this.ents.length) {
      throw new RaftError(`missing log entry [last: ${this.lastIndex()}, append at: ${entries[0].index}]`);
    }
    if (offset < this.ents.length) this.ents.length = offset;
    for (let k = 0; k < entries.length; k++) this.ents.push(entries[k]);
  }
}
