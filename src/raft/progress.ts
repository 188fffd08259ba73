// The leader's view of one follower (thesis §3.5 nextIndex/matchIndex, plus etcd's flow control):
// a follower is probed one message at a time until its match is found, then replicated to optimistically
// with a bounded window of in-flight messages, or sent a snapshot when its next entries are compacted.

export enum ProgressState {
  /** Unknown match: send one MsgApp per heartbeat interval and back off on rejection. */
  Probe = 0,
  /** Known match: stream MsgApps, up to maxInflight unacknowledged at a time. */
  Replicate = 1,
  /** A snapshot is on its way; send nothing until it is reported (MsgSnapStatus) or acknowledged. */
  Snapshot = 2,
}

/** A ring buffer of the last indexes of in-flight MsgApps (flow control window). */
export class Inflights {
  private start = 0;
  count = 0;
  readonly size: number;
  private buffer: number[];

  constructor(size: number) {
    this.size = size;
    this.buffer = new Array<number>(size).fill(0);
  }

  clone(): Inflights {
    const c = new Inflights(this.size);
    c.start = this.start;
    c.count = this.count;
    c.buffer = this.buffer.slice();
    return c;
  }

  /** Records a MsgApp whose last entry is `inflight` (indexes must be added in increasing order). */
  add(inflight: number): void {
    if (this.full()) throw new Error('cannot add into a full inflights');
    let next = this.start + this.count;
    if (next >= this.size) next -= this.size;
    this.buffer[next] = inflight;
    this.count++;
  }

  /** Frees every in-flight message whose last index is <= to (they were acknowledged). */
  freeLE(to: number): void {
    if (this.count === 0 || to < this.buffer[this.start]) return;
    let idx = this.start;
    let i = 0;
    for (; i < this.count; i++) {
      if (to < this.buffer[idx]) break;
      if (++idx >= this.size) idx -= this.size;
    }
    this.count -= i;
    this.start = idx;
    if (this.count === 0) this.start = 0;
  }

  freeFirstOne(): void {
    if (this.count > 0) this.freeLE(this.buffer[this.start]);
  }

  full(): boolean {
    return this.count === this.size;
  }

  reset(): void {
    this.count = 0;
    this.start = 0;
  }
}

export class Progress {
  /** Highest index known to be replicated on the follower. */
  match: number;
  /** Index of the next entry to send. */
  next: number;
  state: ProgressState = ProgressState.Probe;
  /** In Snapshot state: the index of the snapshot being sent. */
  pendingSnapshot = 0;
  /** Heard from recently (any response); reset every election timeout by CheckQuorum. */
  recentActive = false;
  /** In Probe state: a probe is outstanding, so wait (until a heartbeat response) before the next one. */
  probeSent = false;
  inflights: Inflights;
  isLearner: boolean;

  constructor(match: number, next: number, maxInflight: number, isLearner: boolean) {
    this.match = match;
    this.next = next;
    this.inflights = new Inflights(maxInflight);
    this.isLearner = isLearner;
  }

  /** Shallow copy for configuration changes (the in-flight window is shared, as state carries over). */
  copy(): Progress {
    const p = new Progress(this.match, this.next, this.inflights.size, this.isLearner);
    p.state = this.state;
    p.pendingSnapshot = this.pendingSnapshot;
    p.recentActive = this.recentActive;
    p.probeSent = this.probeSent;
    p.inflights = this.inflights;
    return p;
  }

  private resetState(state: ProgressState): void {
    this.probeSent = false;
    this.pendingSnapshot = 0;
    this.state = state;
    this.inflights.reset();
  }

  becomeProbe(): void {
    // Leaving Snapshot state: the follower has at least the snapshot, so probe from just after it.
    if (this.state === ProgressState.Snapshot) {
      const pending = this.pendingSnapshot;
      this.resetState(ProgressState.Probe);
      this.next = Math.max(this.match + 1, pending + 1);
    } else {
      this.resetState(ProgressState.Probe);
      this.next = this.match + 1;
    }
  }

  becomeReplicate(): void {
    this.resetState(ProgressState.Replicate);
    this.next = this.match + 1;
  }

  becomeSnapshot(snapshoti: number): void {
    this.resetState(ProgressState.Snapshot);
    this.pendingSnapshot = snapshoti;
  }

  /** A (non-rejecting) MsgAppResp acknowledged n. Returns false if it was stale (n <= match). */
  maybeUpdate(n: number): boolean {
    let updated = false;
    if (this.match < n) {
      this.match = n;
      updated = true;
      this.probeSent = false;
    }
    if (this.next < n + 1) this.next = n + 1;
    return updated;
  }

  /** In Replicate state entries are sent optimistically: next moves past them before any ack. */
  optimisticUpdate(n: number): void {
    this.next = n + 1;
  }

  /**
   * A MsgApp at index `rejected` was refused; matchHint is the follower's hint (the largest index that may
   * still match). Returns false if the rejection is stale (out of order), in which case nothing changes.
   */
  maybeDecrTo(rejected: number, matchHint: number): boolean {
    if (this.state === ProgressState.Replicate) {
      // Replicating: a rejection at or below match is stale. Otherwise fall back to just after match.
      if (rejected <= this.match) return false;
      this.next = this.match + 1;
      return true;
    }
    // Probing: only the rejection of our last probe (at next-1) counts.
    if (this.next - 1 !== rejected) return false;
    this.next = Math.max(Math.min(rejected, matchHint + 1), this.match + 1, 1);
    this.probeSent = false;
    return true;
  }

  /** Whether sending to this follower is throttled right now. */
  isPaused(): boolean {
    switch (this.state) {
      case ProgressState.Probe:
        return this.probeSent;
      case ProgressState.Replicate:
        return this.inflights.full();
      default:
        return true;
    }
  }

  toString(): string {
    const st = ProgressState[this.state];
    let s = `${st} match=${this.match} next=${this.next}`;
    if (this.isLearner) s += ' learner';
    if (this.state === ProgressState.Snapshot) s += ` pendingSnap=${this.pendingSnapshot}`;
    if (!this.recentActive) s += ' inactive';
    if (this.inflights.count > 0)
      s += ` inflight=${this.inflights.count}${this.inflights.full() ? '[full]' : ''}`;
    return s;
  }
}
