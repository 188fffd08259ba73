// Linearizable reads (raft thesis §6.4, etcd's ReadIndex): a read may be served from this member's
// state once it has applied everything committed when the read arrived. Every read that arrives while
// a round is being set up shares that round: one ReadIndex request to the leader, one heartbeat
// quorum, however many reads.
import type { ReadState } from '../raft/index.js';
import { Errors } from './errors.js';

export interface ReadIndexDeps {
  /** Asks raft for the commit index, tagged with `ctx` (answered through onReadStates). */
  readIndex(ctx: Buffer): void;
  leaderKnown(): boolean;
  /** Resolves once a leader is known; rejects ("no leader") after the request timeout. */
  waitForLeader(): Promise<void>;
  /** A request ID unique in the whole cluster. */
  newId(): bigint;
  /** Index of the last entry this member applied. */
  applied(): number;
  timeoutMs(): number;
}

interface PendingRead {
  resolve: () => void;
  reject: (err: unknown) => void;
}

export class LinearizableReads {
  /** reads waiting for the next round */
  private pending: PendingRead[] = [];
  /** rounds in flight, by their context (hex) */
  private readonly rounds = new Map<string, PendingRead[]>();
  private scheduled = false;
  /** rounds the leader answered, waiting until this member has applied up to their index */
  private waitingApply: Array<{ index: number; done: () => void }> = [];

  constructor(private readonly d: ReadIndexDeps) {}

  /** Resolves when a read may be served locally and see every write committed before it was asked. */
  notify(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.pending.push({ resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        // the rest of this event-loop turn's reads join the round
        setImmediate(() => this.startRound());
      }
    });
  }

  private startRound(): void {
    this.scheduled = false;
    const batch = this.pending;
    this.pending = [];
    if (batch.length === 0) return;
    if (!this.d.leaderKnown()) {
      this.d.waitForLeader().then(
        () => {
          this.pending.push(...batch);
          this.startRound();
        },
        (err) => {
          for (const r of batch) r.reject(err);
        },
      );
      return;
    }
    // the context must be unique cluster-wide: the leader tracks pending reads by it, and a second
    // request with the same context (another member's counter) would never be answered
    const ctx = Buffer.allocUnsafe(8);
    ctx.writeBigUInt64BE(this.d.newId());
    const key = ctx.toString('hex');
    this.rounds.set(key, batch);
    this.d.readIndex(ctx);
    setTimeout(() => {
      const timedOut = this.rounds.get(key);
      if (timedOut === undefined) return;
      this.rounds.delete(key);
      for (const r of timedOut) r.reject(Errors.timeout);
    }, this.d.timeoutMs()).unref();
  }

  /** The leader's answers: each round may be served once its index is applied here. */
  onReadStates(states: ReadState[]): void {
    for (const rs of states) {
      const key = rs.requestCtx.toString('hex');
      const batch = this.rounds.get(key);
      if (batch === undefined) continue;
      this.rounds.delete(key);
      const done = () => {
        for (const r of batch) r.resolve();
      };
      if (this.d.applied() >= rs.index) done();
      else this.waitingApply.push({ index: rs.index, done });
    }
  }

  /** Called after every applied batch. */
  onApplied(applied: number): void {
    if (this.waitingApply.length === 0) return;
    const ready = this.waitingApply.filter((w) => w.index <= applied);
    this.waitingApply = this.waitingApply.filter((w) => w.index > applied);
    for (const w of ready) w.done();
  }

  /** Fails every read not yet answered (the member is stopping). */
  failAll(err: Error): void {
    for (const r of this.pending.splice(0)) r.reject(err);
    for (const [, batch] of this.rounds) for (const r of batch) r.reject(err);
    this.rounds.clear();
  }
}
