// RaftLog: the node's view of the replicated log, stable part (Storage) followed by unstable part
// (Unstable), plus the commit and apply cursors. Raft paper §5.3 (log replication) and §5.4.
import type { Entry, Snapshot } from '../gen/raftpb/raft.js';
import { Unstable } from './log_unstable.js';
import { ErrCompacted, ErrUnavailable, type Storage } from './storage.js';
import { limitSize, NoLimit, RaftError } from './util.js';

export class RaftLog {
  readonly storage: Storage;
  readonly unstable: Unstable;
  /** Highest index known to be committed (stored on a quorum). */
  committed: number;
  /** Highest index the application has applied. applied <= committed. */
  applied: number;
  /** Byte limit of the committed entries returned by one nextEnts(). */
  maxNextEntsSize: number;

  constructor(storage: Storage, maxNextEntsSize = NoLimit) {
    this.storage = storage;
    this.maxNextEntsSize = maxNextEntsSize;
    const first = storage.firstIndex();
    const last = storage.lastIndex();
    this.unstable = new Unstable(last + 1);
    // Everything up to the snapshot point is committed and applied.
    this.committed = first - 1;
    this.applied = first - 1;
  }

  firstIndex(): number {
    const i = this.unstable.maybeFirstIndex();
    return i !== 0 ? i : this.storage.firstIndex();
  }

  lastIndex(): number {
    const i = this.unstable.maybeLastIndex();
    return i !== 0 ? i : this.storage.lastIndex();
  }

  lastTerm(): number {
    return this.zeroTermOnErr(this.lastIndex());
  }

  /**
   * Term of entry i. The valid range is [firstIndex-1, lastIndex] (the entry before the first is known by
   * its term only). Throws ErrCompacted below it; returns 0 above lastIndex.
   */
  term(i: number): number {
    const t = this.unstable.maybeTerm(i);
    if (t >= 0) return t;
    if (i + 1 < this.firstIndex()) throw ErrCompacted;
    if (i > this.lastIndex()) return 0;
    return this.storage.term(i);
  }

  zeroTermOnErr(i: number): number {
    try {
      return this.term(i);
    } catch (e) {
      if (e === ErrCompacted || e === ErrUnavailable) return 0;
      throw e;
    }
  }

  matchTerm(i: number, term: number): boolean {
    return this.zeroTermOnErr(i) === term;
  }

  /**
   * §5.4.1 election restriction: a candidate's log (lastTerm, lasti) is at least as up to date as ours if
   * its last term is higher, or equal with an index at least as long.
   */
  isUpToDate(lasti: number, term: number): boolean {
    const lt = this.lastTerm();
    return term > lt || (term === lt && lasti >= this.lastIndex());
  }

  /**
   * The follower side of AppendEntries (§5.3): if our entry at `index` has term `logTerm` (the log
   * matching check), append `ents` (truncating at the first conflict), advance commit to
   * min(committed, index of the last new entry) and return that last new index; else return -1.
   */
  maybeAppend(index: number, logTerm: number, committed: number, ents: Entry[]): number {
    if (!this.matchTerm(index, logTerm)) return -1;
    const lastnewi = index + ents.length;
    const ci = this.findConflict(ents);
    if (ci !== 0) {
      if (ci <= this.committed)
        throw new RaftError(`entry ${ci} conflicts with committed entry [committed(${this.committed})]`);
      this.append(ci - (index + 1) === 0 ? ents : ents.slice(ci - (index + 1)));
    }
    this.commitTo(Math.min(committed, lastnewi));
    return lastnewi;
  }

  append(ents: Entry[]): number {
    if (ents.length === 0) return this.lastIndex();
    const after = ents[0].index - 1;
    if (after < this.committed)
      throw new RaftError(`after(${after}) is out of range [committed(${this.committed})]`);
    this.unstable.truncateAndAppend(ents);
    return this.lastIndex();
  }

  /**
   * Index of the first entry of `ents` that is new or conflicts with ours (same index, different term),
   * or 0 if all of them are already present.
   */
  findConflict(ents: Entry[]): number {
    for (let k = 0; k < ents.length; k++) {
      const e = ents[k];
      if (!this.matchTerm(e.index, e.term)) return e.index;
    }
    return 0;
  }

  /**
   * Fast backtracking: the largest index <= `index` whose term is <= `term`, with that term (0 if unknown).
   * A follower sends this as the reject hint; a leader uses it to skip a whole term of mismatches.
   */
  findConflictByTerm(index: number, term: number): [number, number] {
    for (; index > 0; index--) {
      let ourTerm: number;
      try {
        ourTerm = this.term(index);
      } catch {
        return [index, 0];
      }
      if (ourTerm <= term) return [index, ourTerm];
    }
    return [0, 0];
  }

  unstableEntries(): Entry[] {
    return this.unstable.entries;
  }

  /** Committed entries not yet applied (limited to maxNextEntsSize bytes). */
  nextEnts(): Entry[] {
    const off = Math.max(this.applied + 1, this.firstIndex());
    if (this.committed + 1 > off) return this.slice(off, this.committed + 1, this.maxNextEntsSize);
    return [];
  }

  hasNextEnts(): boolean {
    const off = Math.max(this.applied + 1, this.firstIndex());
    return this.committed + 1 > off;
  }

  hasPendingSnapshot(): boolean {
    return this.unstable.snapshot !== undefined && this.unstable.snapshot.metadata!.index !== 0;
  }

  snapshot(): Snapshot {
    return this.unstable.snapshot ?? this.storage.snapshot();
  }

  commitTo(tocommit: number): void {
    // Never decrease the commit index.
    if (this.committed < tocommit) {
      if (this.lastIndex() < tocommit) {
        throw new RaftError(
          `tocommit(${tocommit}) is out of range [lastIndex(${this.lastIndex()})]. Was the raft log corrupted, truncated, or lost?`,
        );
      }
      this.committed = tocommit;
    }
  }

  appliedTo(i: number): void {
    if (i === 0) return;
    if (this.committed < i || i < this.applied) {
      throw new RaftError(
        `applied(${i}) is out of range [prevApplied(${this.applied}), committed(${this.committed})]`,
      );
    }
    this.applied = i;
  }

  stableTo(i: number, t: number): void {
    this.unstable.stableTo(i, t);
  }

  stableSnapTo(i: number): void {
    this.unstable.stableSnapTo(i);
  }

  /** Entries from i to the end, limited to maxSize bytes. Throws ErrCompacted if i is compacted. */
  entries(i: number, maxSize: number): Entry[] {
    if (i > this.lastIndex()) return [];
    return this.slice(i, this.lastIndex() + 1, maxSize);
  }

  allEntries(): Entry[] {
    return this.entries(this.firstIndex(), NoLimit);
  }

  /**
   * §5.4.2: a leader commits by counting replicas only entries of its own term; earlier entries are then
   * committed indirectly by the Log Matching property.
   */
  maybeCommit(maxIndex: number, term: number): boolean {
    if (maxIndex > this.committed && this.zeroTermOnErr(maxIndex) === term) {
      this.commitTo(maxIndex);
      return true;
    }
    return false;
  }

  restore(s: Snapshot): void {
    this.committed = s.metadata!.index;
    this.unstable.restore(s);
  }

  /** Entries in [lo, hi), limited to maxSize bytes, from storage and/or the unstable part. */
  slice(lo: number, hi: number, maxSize: number): Entry[] {
    this.checkOutOfBounds(lo, hi);
    if (lo === hi) return [];
    let ents: Entry[] = [];
    const uoff = this.unstable.offset;
    if (lo < uoff) {
      const stored = this.storage.entries(lo, Math.min(hi, uoff), maxSize);
      // A short answer from storage means the size limit was hit: stop there.
      if (stored.length < Math.min(hi, uoff) - lo) return stored;
      ents = stored;
    }
    if (hi > uoff) {
      const unstable = this.unstable.slice(Math.max(lo, uoff), hi);
      if (ents.length > 0) {
        const combined = new Array<Entry>(ents.length + unstable.length);
        for (let k = 0; k < ents.length; k++) combined[k] = ents[k];
        for (let k = 0; k < unstable.length; k++) combined[ents.length + k] = unstable[k];
        ents = combined;
      } else {
        ents = unstable;
      }
    }
    return limitSize(ents, maxSize);
  }

  private checkOutOfBounds(lo: number, hi: number): void {
    if (lo > hi) throw new RaftError(`invalid slice ${lo} > ${hi}`);
    const fi = this.firstIndex();
    if (lo < fi) throw ErrCompacted;
    const length = this.lastIndex() + 1 - fi;
    if (hi > fi + length) throw new RaftError(`slice[${lo},${hi}) out of bound [${fi},${this.lastIndex()}]`);
  }
}
