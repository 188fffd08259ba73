// ProgressTracker: the active configuration (voters, possibly joint; learners) together with the
// leader's Progress for every member and the votes of the current election.
import type { ConfState } from '../gen/raftpb/raft.js';
import type { Progress } from './progress.js';
import { type AckedIndexer, JointConfig, sortIds, VoteResult } from './quorum.js';

export class TrackerConfig {
  voters: JointConfig;
  /** Leave the joint configuration automatically once it is committed (ConfChangeV2 transitions). */
  autoLeave: boolean;
  /** Non-voting members. Never intersects voters (either half). */
  learners: Set<bigint>;
  /**
   * Voters of the outgoing config being demoted to learners: they become learners only when the joint
   * config is left (a node cannot be both voter and learner at once).
   */
  learnersNext: Set<bigint>;

  constructor(
    voters = new JointConfig(),
    autoLeave = false,
    learners = new Set<bigint>(),
    learnersNext = new Set<bigint>(),
  ) {
    this.voters = voters;
    this.autoLeave = autoLeave;
    this.learners = learners;
    this.learnersNext = learnersNext;
  }

  clone(): TrackerConfig {
    return new TrackerConfig(
      this.voters.clone(),
      this.autoLeave,
      new Set(this.learners),
      new Set(this.learnersNext),
    );
  }

  toString(): string {
    let s = `voters=${this.voters}`;
    if (this.learners.size > 0) s += ` learners=(${sortIds(this.learners).join(' ')})`;
    if (this.learnersNext.size > 0) s += ` learners_next=(${sortIds(this.learnersNext).join(' ')})`;
    if (this.autoLeave) s += ' autoleave';
    return s;
  }
}

export type ProgressMap = Map<bigint, Progress>;

export class ProgressTracker implements AckedIndexer {
  config = new TrackerConfig();
  progress: ProgressMap = new Map();
  votes = new Map<bigint, boolean>();
  readonly maxInflight: number;

  constructor(maxInflight: number) {
    this.maxInflight = maxInflight;
  }

  confState(): ConfState {
    return {
      voters: sortIds(this.config.voters.incoming),
      votersOutgoing: sortIds(this.config.voters.outgoing),
      learners: sortIds(this.config.learners),
      learnersNext: sortIds(this.config.learnersNext),
      autoLeave: this.config.autoLeave,
    };
  }

  /** A single voter and no joint state: the node commits and reads alone. */
  isSingleton(): boolean {
    return this.config.voters.incoming.size === 1 && this.config.voters.outgoing.size === 0;
  }

  ackedIndex(id: bigint): number | undefined {
    return this.progress.get(id)?.match;
  }

  /** The largest index replicated on a quorum of voters (joint: on both quorums). */
  committed(): number {
    return this.config.voters.committedIndex(this);
  }

  /** CheckQuorum (thesis §6.2): were a quorum of voters (by the active config) heard from recently? */
  quorumActive(): boolean {
    const votes = new Map<bigint, boolean>();
    for (const [id, pr] of this.progress) {
      if (!pr.isLearner) votes.set(id, pr.recentActive);
    }
    return this.config.voters.voteResult(votes) === VoteResult.VoteWon;
  }

  voterNodes(): bigint[] {
    return this.config.voters.ids();
  }

  learnerNodes(): bigint[] {
    return sortIds(this.config.learners);
  }

  resetVotes(): void {
    this.votes.clear();
  }

  /** Records a vote; only the first vote of each voter in an election counts. */
  recordVote(id: bigint, granted: boolean): void {
    if (!this.votes.has(id)) this.votes.set(id, granted);
  }

  tallyVotes(): { granted: number; rejected: number; result: VoteResult } {
    let granted = 0;
    let rejected = 0;
    for (const [id, pr] of this.progress) {
      if (pr.isLearner) continue;
      const v = this.votes.get(id);
      if (v === undefined) continue;
      if (v) granted++;
      else rejected++;
    }
    return { granted, rejected, result: this.config.voters.voteResult(this.votes) };
  }
}
