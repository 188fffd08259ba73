// A snapshot of a node's state for monitoring and tests (etcd's raft.Status).
import type { HardState } from '../gen/raftpb/raft.js';
import type { Progress } from './progress.js';
import { type Raft, type SoftState, StateType } from './raft.js';

export interface ProgressStatus {
  match: number;
  next: number;
  state: string;
  isLearner: boolean;
  recentActive: boolean;
  pendingSnapshot: number;
  inflight: number;
}

export interface Status {
  id: bigint;
  hardState: HardState;
  softState: SoftState;
  applied: number;
  /** Per-member progress; present only on the leader. */
  progress: Map<bigint, ProgressStatus> | undefined;
  leadTransferee: bigint;
  /** Human-readable active configuration, e.g. "voters=(1 2 3) learners=(4)". */
  config: string;
}

function progressStatus(pr: Progress): ProgressStatus {
  return {
    match: pr.match,
    next: pr.next,
    state: ['StateProbe', 'StateReplicate', 'StateSnapshot'][pr.state],
    isLearner: pr.isLearner,
    recentActive: pr.recentActive,
    pendingSnapshot: pr.pendingSnapshot,
    inflight: pr.inflights.count,
  };
}

export function getStatus(r: Raft): Status {
  let progress: Map<bigint, ProgressStatus> | undefined;
  if (r.state === StateType.Leader) {
    progress = new Map();
    for (const [id, pr] of r.prs.progress) progress.set(id, progressStatus(pr));
  }
  return {
    id: r.id,
    hardState: r.hardState(),
    softState: r.softState(),
    applied: r.raftLog.applied,
    progress,
    leadTransferee: r.leadTransferee,
    config: r.prs.config.toString(),
  };
}
