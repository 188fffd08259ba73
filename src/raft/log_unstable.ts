// The unstable part of the log: entries (and possibly a snapshot) that raft has accepted but the
// application has not yet persisted. They are handed out in Ready.entries / Ready.snapshot and become
// stable when advance() reports them written.
import type { Entry, Snapshot } from '../gen/raftpb/raft.js';
import { RaftError } from './util.js';

export class Unstable {
  /** An incoming snapshot not yet persisted. */
  snapshot: Snapshot | undefined = undefined;
  /** entries[i] has index offset + i. */
  entries: Entry[] = [];
  offset: number;

  constructor(offset: number) {
    this.offset = offset;
  }

  /** Index of the first entry if the unstable part begins with a snapshot, else 0 (unknown). */
  maybeFirstIndex(): number {
    return this.snapshot ? this.snapshot.metadata!.index + 1 : 0;
  }

  /** Last index held here (entries, else the snapshot), or 0 if unknown. */
  maybeLastIndex(): number {
    if (this.entries.length > 0) return this.offset + this.entries.length - 1;
    return this.snapshot ? this.snapshot.metadata!.index : 0;
  }

  /** Term of entry i if held here, else -1. */
  maybeTerm(i: number): number {
    if (i < this.offset) {
      const s = this.snapshot;
      return s !== undefined && s.metadata!.index === i ? s.metadata!.term : -1;
    }
    const last = this.maybeLastIndex();
    if (last === 0 || i > last) return -1;
    return this.entries[i - this.offset].term;
  }

  /** Entries up to (i, t) were persisted: drop them, unless they were since overwritten. */
  stableTo(i: number, t: number): void {
    const gt = this.maybeTerm(i);
    // Only entries (not a snapshot) at or after offset with a matching term become stable; a mismatch
    // means the entry was replaced by a newer leader's after the write started.
    if (gt === t && i >= this.offset) {
      const n = i + 1 - this.offset;
      this.entries = n >= this.entries.length ? [] : this.entries.slice(n);
      this.offset = i + 1;
    }
  }

  stableSnapTo(i: number): void {
    if (this.snapshot !== undefined && this.snapshot.metadata!.index === i) this.snapshot = undefined;
  }

  restore(s: Snapshot): void {
    this.offset = s.metadata!.index + 1;
    this.entries = [];
    this.snapshot = s;
  }

  truncateAndAppend(ents: Entry[]): void {
    const after = ents[0].index;
    if (after === this.offset + this.entries.length) {
      // The common case: directly after what we hold.
      for (let k = 0; k < ents.length; k++) this.entries.push(ents[k]);
    } else if (after <= this.offset) {
      // Replace everything we hold (the log is truncated below our offset).
      this.offset = after;
      this.entries = ents.slice();
    } else {
      // Truncate to `after` and append.
      this.entries = this.entries.slice(0, after - this.offset);
      for (let k = 0; k < ents.length; k++) this.entries.push(ents[k]);
    }
  }

  slice(lo: number, hi: number): Entry[] {
    const upper = this.offset + this.entries.length;
    if (lo > hi || lo < this.offset || hi > upper) {
      throw new RaftError(`unstable.slice[${lo},${hi}) out of bound [${this.offset},${upper}]`);
    }
    return this.entries.slice(lo - this.offset, hi - this.offset);
  }
}
