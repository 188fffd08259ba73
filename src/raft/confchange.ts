// Membership changes (thesis chapter 4). A change is applied to a copy of the tracker's configuration
// and progress map, validated, and returned; raft then switches to it (switchToConfig).
// - simple: one voter added or removed at a time (§4.1, single-server changes: any two majorities of
//   adjacent configurations intersect). Learner changes are free: learners do not vote.
// - enterJoint / leaveJoint: joint consensus (§4.3). In the joint config C_old,new decisions need a
//   majority of both halves; leaving it moves to C_new.
import {
  type ConfChange,
  type ConfChangeSingle,
  ConfChangeTransition,
  ConfChangeType,
  type ConfChangeV2,
  type ConfState,
} from '../gen/raftpb/raft.js';
import { Progress } from './progress.js';
import type { ProgressMap, ProgressTracker, TrackerConfig } from './tracker.js';
import { EMPTY, RaftError } from './util.js';

export class Changer {
  readonly config: TrackerConfig;
  readonly progress: ProgressMap;
  readonly maxInflight: number;
  /** The leader's last index, used to initialise new progress (probe from there). */
  readonly lastIndex: number;

  constructor(config: TrackerConfig, progress: ProgressMap, maxInflight: number, lastIndex: number) {
    this.config = config;
    this.progress = progress;
    this.maxInflight = maxInflight;
    this.lastIndex = lastIndex;
  }

  static of(tracker: ProgressTracker, lastIndex: number): Changer {
    return new Changer(tracker.config, tracker.progress, tracker.maxInflight, lastIndex);
  }

  /**
   * Enters the joint configuration (old voters become the outgoing half, the changes are applied to the
   * incoming half). With autoLeave, the leader proposes leaving it as soon as it is committed.
   */
  enterJoint(autoLeave: boolean, ccs: ConfChangeSingle[]): [TrackerConfig, ProgressMap] {
    const [cfg, prs] = this.checkAndCopy();
    if (cfg.voters.isJoint()) throw new RaftError('config is already joint');
    if (cfg.voters.incoming.size === 0) {
      // Adding nodes to an empty config is what bootstrapping does with simple changes.
      throw new RaftError("can't make a zero-voter config joint");
    }
    cfg.voters.outgoing = new Set(cfg.voters.incoming);
    this.apply(cfg, prs, ccs);
    cfg.autoLeave = autoLeave;
    return checkAndReturn(cfg, prs);
  }

  /**
   * Leaves the joint configuration: the outgoing half is dropped, learnersNext become learners, and
   * members that are in neither the incoming voters nor the learners lose their progress.
   */
  leaveJoint(): [TrackerConfig, ProgressMap] {
    const [cfg, prs] = this.checkAndCopy();
    if (!cfg.voters.isJoint()) throw new RaftError("can't leave a non-joint config");
    for (const id of cfg.learnersNext) {
      cfg.learners.add(id);
      prs.get(id)!.isLearner = true;
    }
    cfg.learnersNext.clear();
    for (const id of cfg.voters.outgoing) {
      if (!cfg.voters.incoming.has(id) && !cfg.learners.has(id)) prs.delete(id);
    }
    cfg.voters.outgoing = new Set();
    cfg.autoLeave = false;
    return checkAndReturn(cfg, prs);
  }

  /** Applies changes that alter the voter set by at most one member (no joint state needed). */
  simple(ccs: ConfChangeSingle[]): [TrackerConfig, ProgressMap] {
    const [cfg, prs] = this.checkAndCopy();
    if (cfg.voters.isJoint()) throw new RaftError("can't apply simple config change in joint config");
    const before = cfg.voters.incoming;
    cfg.voters.incoming = new Set(before);
    this.apply(cfg, prs, ccs);
    let diff = 0;
    for (const id of before) if (!cfg.voters.incoming.has(id)) diff++;
    for (const id of cfg.voters.incoming) if (!before.has(id)) diff++;
    if (diff > 1) throw new RaftError('more than one voter changed without entering joint config');
    return checkAndReturn(cfg, prs);
  }

  private apply(cfg: TrackerConfig, prs: ProgressMap, ccs: ConfChangeSingle[]): void {
    for (const cc of ccs) {
      // etcd's server zeroes the node id of changes it decided not to apply: skip them.
      if (cc.nodeId === 0n) continue;
      switch (cc.type) {
        case ConfChangeType.ConfChangeAddNode:
          this.makeVoter(cfg, prs, cc.nodeId);
          break;
        case ConfChangeType.ConfChangeAddLearnerNode:
          this.makeLearner(cfg, prs, cc.nodeId);
          break;
        case ConfChangeType.ConfChangeRemoveNode:
          this.remove(cfg, prs, cc.nodeId);
          break;
        case ConfChangeType.ConfChangeUpdateNode:
          break;
        default:
          throw new RaftError(`unexpected conf type ${cc.type}`);
      }
    }
    if (cfg.voters.incoming.size === 0) throw new RaftError('removed all voters');
  }

  private makeVoter(cfg: TrackerConfig, prs: ProgressMap, id: bigint): void {
    const pr = prs.get(id);
    if (pr === undefined) {
      this.initProgress(cfg, prs, id, false);
      return;
    }
    pr.isLearner = false;
    cfg.learners.delete(id);
    cfg.learnersNext.delete(id);
    cfg.voters.incoming.add(id);
  }

  /**
   * Makes id a learner. A voter of the outgoing half cannot be a learner while the joint config lasts,
   * so it is staged in learnersNext and becomes a learner when the joint config is left.
   */
  private makeLearner(cfg: TrackerConfig, prs: ProgressMap, id: bigint): void {
    const pr = prs.get(id);
    if (pr === undefined) {
      this.initProgress(cfg, prs, id, true);
      return;
    }
    if (pr.isLearner) return;
    this.remove(cfg, prs, id);
    prs.set(id, pr); // remove() may have dropped it; keep its progress
    if (cfg.voters.outgoing.has(id)) {
      cfg.learnersNext.add(id);
    } else {
      pr.isLearner = true;
      cfg.learners.add(id);
    }
  }

  private remove(cfg: TrackerConfig, prs: ProgressMap, id: bigint): void {
    if (!prs.has(id)) return;
    cfg.voters.incoming.delete(id);
    cfg.learners.delete(id);
    cfg.learnersNext.delete(id);
    // A voter of the outgoing half keeps its progress until the joint config is left.
    if (!cfg.voters.outgoing.has(id)) prs.delete(id);
  }

  private initProgress(cfg: TrackerConfig, prs: ProgressMap, id: bigint, isLearner: boolean): void {
    if (isLearner) cfg.learners.add(id);
    else cfg.voters.incoming.add(id);
    // Probe the new member from our last index; it is considered active so that CheckQuorum does not
    // immediately count it against us.
    const pr = new Progress(0, Math.max(this.lastIndex, 1), this.maxInflight, isLearner);
    pr.recentActive = true;
    prs.set(id, pr);
  }

  private checkAndCopy(): [TrackerConfig, ProgressMap] {
    const cfg = this.config.clone();
    const prs: ProgressMap = new Map();
    for (const [id, pr] of this.progress) prs.set(id, pr.copy());
    checkInvariants(cfg, prs);
    return [cfg, prs];
  }
}

function checkAndReturn(cfg: TrackerConfig, prs: ProgressMap): [TrackerConfig, ProgressMap] {
  checkInvariants(cfg, prs);
  return [cfg, prs];
}

/** Every member has progress; learners and voters are disjoint; learnersNext are outgoing voters. */
function checkInvariants(cfg: TrackerConfig, prs: ProgressMap): void {
  for (const s of [cfg.voters.incoming, cfg.voters.outgoing, cfg.learners, cfg.learnersNext]) {
    for (const id of s) if (!prs.has(id)) throw new RaftError(`no progress for ${id}`);
  }
  for (const id of cfg.learnersNext) {
    if (!cfg.voters.outgoing.has(id)) throw new RaftError(`${id} is in learnersNext, but not voters[1]`);
    if (prs.get(id)!.isLearner)
      throw new RaftError(`${id} is in learnersNext, but is already marked as learner`);
  }
  for (const id of cfg.learners) {
    if (cfg.voters.outgoing.has(id)) throw new RaftError(`${id} is in learners and voters[1]`);
    if (cfg.voters.incoming.has(id)) throw new RaftError(`${id} is in learners and voters[0]`);
    if (!prs.get(id)!.isLearner) throw new RaftError(`${id} is in learners, but is not marked as learner`);
  }
  if (!cfg.voters.isJoint()) {
    if (cfg.learnersNext.size > 0) throw new RaftError('cfg.learnersNext must be empty when not joint');
    if (cfg.autoLeave) throw new RaftError('autoLeave must be false when not joint');
  }
}

/**
 * Rebuilds the configuration described by a ConfState (from a snapshot or at startup) by replaying it as
 * changes: the outgoing voters one at a time, then (if joint) entering the joint state with the incoming
 * voters and the learners.
 */
export function restoreConfState(chg: Changer, cs: ConfState): [TrackerConfig, ProgressMap] {
  const add = (type: ConfChangeType, nodeId: bigint): ConfChangeSingle => ({ type, nodeId });
  const outgoing = cs.votersOutgoing.map((id) => add(ConfChangeType.ConfChangeAddNode, id));
  const incoming: ConfChangeSingle[] = [
    // The incoming config starts as a copy of the outgoing one: clear it first.
    ...cs.votersOutgoing.map((id) => add(ConfChangeType.ConfChangeRemoveNode, id)),
    ...cs.voters.map((id) => add(ConfChangeType.ConfChangeAddNode, id)),
    ...cs.learners.map((id) => add(ConfChangeType.ConfChangeAddLearnerNode, id)),
    // learnersNext are outgoing voters: adding them as learners stages them in learnersNext.
    ...cs.learnersNext.map((id) => add(ConfChangeType.ConfChangeAddLearnerNode, id)),
  ];
  let cur = chg;
  const step = (f: (c: Changer) => [TrackerConfig, ProgressMap]): void => {
    const [cfg, prs] = f(cur);
    cur = new Changer(cfg, prs, chg.maxInflight, chg.lastIndex);
  };
  if (outgoing.length === 0) {
    for (const cc of incoming) step((c) => c.simple([cc]));
  } else {
    for (const cc of outgoing) step((c) => c.simple([cc]));
    step((c) => c.enterJoint(cs.autoLeave, incoming));
  }
  return [cur.config, cur.progress];
}

/** Converts a (v1) ConfChange to the equivalent ConfChangeV2 (a single change, auto transition). */
export function confChangeToV2(cc: ConfChange): ConfChangeV2 {
  return {
    transition: ConfChangeTransition.ConfChangeTransitionAuto,
    changes: [{ type: cc.type, nodeId: cc.nodeId }],
    context: cc.context,
  };
}

/** An empty ConfChangeV2 (auto transition, no changes) means: leave the joint configuration. */
export function isLeaveJoint(cc: ConfChangeV2): boolean {
  return cc.transition === ConfChangeTransition.ConfChangeTransitionAuto && cc.changes.length === 0;
}

/**
 * Whether the change must use joint consensus, and if so whether to leave the joint state automatically.
 * Auto transition uses joint consensus only when more than one change is requested.
 */
export function enterJointOf(cc: ConfChangeV2): { enter: boolean; autoLeave: boolean } {
  if (cc.transition !== ConfChangeTransition.ConfChangeTransitionAuto || cc.changes.length > 1) {
    const autoLeave =
      cc.transition === ConfChangeTransition.ConfChangeTransitionAuto ||
      cc.transition === ConfChangeTransition.ConfChangeTransitionJointImplicit;
    return { enter: true, autoLeave };
  }
  return { enter: false, autoLeave: false };
}

export function emptyConfChangeV2(): ConfChangeV2 {
  return { transition: ConfChangeTransition.ConfChangeTransitionAuto, changes: [], context: EMPTY };
}
