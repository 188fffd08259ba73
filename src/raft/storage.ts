// The Storage interface raft reads its stable log through, and MemoryStorage, its in-memory
// implementation: the server fills it from the WAL at boot and appends what it persists; tests and
// simulations use it directly. Storage holds what the application has persisted: raft only reads it.
import { type ConfState, type Entry, HardState, type Snapshot } from '../gen/raftpb/raft.js';
import { EntryLog, type EntryLogStats } from './entry_log.js';
import { EMPTY, entrySize, NoLimit, RaftError } from './util.js';

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

/** How many of the newest entries keep the Entry objects built for them (see MemoryStorage.recent). */
const RECENT = 256;

/**
 * MemoryStorage keeps the log after the snapshot point packed in an EntryLog (no object per entry, data
 * copied into slabs), plus the index and term of the last compacted entry (the snapshot point), so
 * term(firstIndex-1) is always answerable.
 */
export class MemoryStorage implements Storage {
  hardState: HardState = HardState.create();
  snap: Snapshot = emptySnapshot();
  /** Index and term of the last compacted entry (the snapshot point). */
  private offset = 0;
  private offsetTerm = 0;
  /** The entries after the snapshot point: position k has index offset + 1 + k. */
  private readonly log = new EntryLog();
  /**
   * Entry objects built for reads near the end of the log, in slot index % RECENT (recentIndex: whose
   * they are, 0 for none). Raft reads each new entry several times (a MsgApp per follower, then to apply
   * it), so those are built once. Bounded, so the heap holds a fixed number of them whatever the log
   * length; a slot is cleared when its entry is compacted away or replaced. Like the objects this storage
   * used to keep, they are shared between callers, who must not modify them.
   */
  private readonly recent = new Array<Entry | undefined>(RECENT).fill(undefined);
  private readonly recentIndex = new Float64Array(RECENT);

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

  /** Entries in [lo, hi); their data are views of the storage's own copy. */
  entries(lo: number, hi: number, maxSize: number): Entry[] {
    if (lo <= this.offset) throw ErrCompacted;
    if (hi > this.lastIndex() + 1)
      throw new RaftError(`entries' hi(${hi}) is out of bound lastindex(${this.lastIndex()})`);
    // Only the snapshot point: nothing to return.
    if (this.log.length === 0) throw ErrUnavailable;
    // limitSize's rule, applied while building: at least one entry, then stop before the running sum
    // of entrySize exceeds maxSize.
    const out: Entry[] = [];
    let size = 0;
    for (let i = lo; i < hi; i++) {
      const e = this.entryAt(i);
      if (maxSize < NoLimit) {
        size += entrySize(e);
        if (out.length > 0 && size > maxSize) break;
      }
      out.push(e);
    }
    return out;
  }

  private entryAt(i: number): Entry {
    const slot = i % RECENT;
    if (this.recentIndex[slot] === i) return this.recent[slot]!;
    const e = this.log.entry(i - this.offset - 1, i);
    if (i > this.lastIndex() - RECENT) {
      this.recent[slot] = e;
      this.recentIndex[slot] = i;
    }
    return e;
  }

  /** Forgets the built entries whose index is outside [from, to]. */
  private forgetRecent(from: number, to: number): void {
    for (let slot = 0; slot < RECENT; slot++) {
      const i = this.recentIndex[slot];
      if (i !== 0 && (i < from || i > to)) {
        this.recent[slot] = undefined;
        this.recentIndex[slot] = 0;
      }
    }
  }

  /** Every entry after the snapshot point (none if the log is empty). */
  allEntries(): Entry[] {
    return this.log.length === 0 ? [] : this.entries(this.firstIndex(), this.lastIndex() + 1, NoLimit);
  }

  term(i: number): number {
    if (i < this.offset) throw ErrCompacted;
    const k = i - this.offset;
    if (k > this.log.length) throw ErrUnavailable;
    return k === 0 ? this.offsetTerm : this.log.term(k - 1);
  }

  lastIndex(): number {
    return this.offset + this.log.length;
  }

  firstIndex(): number {
    return this.offset + 1;
  }

  snapshot(): Snapshot {
    return this.snap;
  }

  /** Memory held for entry data (slab count and bytes), for tests and metrics. */
  memoryStats(): EntryLogStats {
    return this.log.stats();
  }

  /** Replaces the storage's contents with a snapshot (a follower installing one). */
  applySnapshot(snap: Snapshot): void {
    const idx = snap.metadata?.index ?? 0;
    if (this.snap.metadata!.index >= idx) throw ErrSnapOutOfDate;
    this.snap = snap;
    this.offset = idx;
    this.offsetTerm = snap.metadata!.term;
    this.log.clear();
    this.forgetRecent(1, 0);
  }

  /**
   * Records a snapshot of the state machine at index i (i <= applied), with the ConfState at that point,
   * so the log before it can be compacted and lagging followers can be sent it.
   */
  createSnapshot(i: number, cs: ConfState | undefined, data: Buffer): Snapshot {
    if (i <= this.snap.metadata!.index) throw ErrSnapOutOfDate;
    if (i > this.lastIndex())
      throw new RaftError(`snapshot ${i} is out of bound lastindex(${this.lastIndex()})`);
    this.snap = {
      data,
      metadata: {
        index: i,
        term: this.term(i),
        confState: cs ?? this.snap.metadata!.confState,
      },
    };
    return this.snap;
  }

  /** Discards all entries before compactIndex (which becomes the new snapshot point). */
  compact(compactIndex: number): void {
    if (compactIndex <= this.offset) throw ErrCompacted;
    if (compactIndex > this.lastIndex()) {
      throw new RaftError(`compact ${compactIndex} is out of bound lastindex(${this.lastIndex()})`);
    }
    const n = compactIndex - this.offset;
    this.offsetTerm = this.log.term(n - 1);
    this.log.dropFront(n);
    this.offset = compactIndex;
    this.forgetRecent(compactIndex + 1, Number.POSITIVE_INFINITY);
  }

  /**
   * Appends entries (copying their data), truncating any existing suffix they conflict with. Entries
   * must be contiguous and must not leave a gap after the current last index.
   */
  append(entries: Entry[]): void {
    if (entries.length === 0) return;
    const first = this.firstIndex();
    const last = entries[0].index + entries.length - 1;
    // Shortcut if there is no new entry.
    if (last < first) return;
    // Skip the part of entries that is already compacted.
    const skip = first > entries[0].index ? first - entries[0].index : 0;
    const at = entries[skip].index;
    // How many of our entries precede the new ones.
    const keep = at - first;
    if (keep > this.log.length) {
      throw new RaftError(`missing log entry [last: ${this.lastIndex()}, append at: ${at}]`);
    }
    if (keep < this.log.length) {
      this.log.truncate(keep);
      this.forgetRecent(first, at - 1);
    }
    for (let k = skip; k < entries.length; k++) {
      const e = entries[k];
      this.log.push(e.term, e.type, e.data);
    }
  }
}
