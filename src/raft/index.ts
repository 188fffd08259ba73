// Public API of the raft package (see rawnode.ts for how a driver uses it).
export {
  Changer,
  confChangeToV2,
  emptyConfChangeV2,
  enterJointOf,
  isLeaveJoint,
  restoreConfState,
} from './confchange.js';
export { RaftLog } from './log.js';
export { Inflights, Progress, ProgressState } from './progress.js';
export { JointConfig, type MajorityConfig, VoteResult } from './quorum.js';
export { type Config, Raft, type SoftState, StateType } from './raft.js';
export {
  confChangeEntry,
  decodeConfChange,
  type Peer,
  RawNode,
  type Ready,
  SnapshotStatus,
} from './rawnode.js';
export { ReadOnlyOption, type ReadState } from './read_only.js';
export { getStatus, type ProgressStatus, type Status } from './status.js';
export {
  ErrCompacted,
  ErrSnapOutOfDate,
  ErrSnapshotTemporarilyUnavailable,
  ErrUnavailable,
  emptyConfState,
  emptySnapshot,
  type InitialState,
  isEmptyHardState,
  isEmptySnap,
  MemoryStorage,
  type Storage,
} from './storage.js';
export { ProgressTracker, TrackerConfig } from './tracker.js';
export {
  ErrProposalDropped,
  ErrStepLocalMsg,
  ErrStepPeerNotFound,
  isLocalMsg,
  isResponseMsg,
  limitSize,
  NoLimit,
  None,
  RaftError,
  seededRandom,
} from './util.js';
