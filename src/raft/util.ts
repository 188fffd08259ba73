// Small shared helpers of the raft package: node-id constants, message classification, size limits,
// errors, and a seedable PRNG for callers that have none of their own.
import { type Entry, type Message, MessageType } from '../gen/raftpb/raft.js';

/** The "no node" id (no leader known, no vote cast). Node ids are 64-bit and never 0. */
export const None = 0n;

/** Used for "no limit" in size arguments (maxSizePerMsg, maxNextEntsSize). */
export const NoLimit = Number.MAX_SAFE_INTEGER;

/** A shared, never-mutated empty buffer (avoids one allocation per message). */
export const EMPTY = Buffer.alloc(0);

/** Context attached to MsgVote when the election was triggered by MsgTimeoutNow (etcd: campaignTransfer). */
export const CAMPAIGN_TRANSFER = Buffer.from('CampaignTransfer');

export class RaftError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RaftError';
  }
}

/** A proposal was dropped (no leader, leader transfer in progress, proposer removed, ...). */
export const ErrProposalDropped = new RaftError('raft proposal dropped');
/** A local-only message (hup, beat, ...) was given to step from the network. */
export const ErrStepLocalMsg = new RaftError('raft: cannot step raft local message');
/** A response message arrived from a peer that is not in the configuration. */
export const ErrStepPeerNotFound = new RaftError('raft: cannot step as peer not found');

/** Messages that never travel the network. */
export function isLocalMsg(t: MessageType): boolean {
  return (
    t === MessageType.MsgHup ||
    t === MessageType.MsgBeat ||
    t === MessageType.MsgUnreachable ||
    t === MessageType.MsgSnapStatus ||
    t === MessageType.MsgCheckQuorum
  );
}

/** Responses: dropped by RawNode.step when the sender has no progress (not a member). */
export function isResponseMsg(t: MessageType): boolean {
  return (
    t === MessageType.MsgAppResp ||
    t === MessageType.MsgVoteResp ||
    t === MessageType.MsgHeartbeatResp ||
    t === MessageType.MsgUnreachable ||
    t === MessageType.MsgPreVoteResp
  );
}

export function voteRespMsgType(t: MessageType): MessageType {
  if (t === MessageType.MsgVote) return MessageType.MsgVoteResp;
  if (t === MessageType.MsgPreVote) return MessageType.MsgPreVoteResp;
  throw new RaftError(`not a vote message: ${MessageType[t]}`);
}

/** Approximate encoded size of an entry (payload plus tag/varint overhead), as used for size limits. */
export function entrySize(e: Entry): number {
  return e.data.length + 12;
}

/**
 * Returns the longest prefix of `ents` whose total size does not exceed maxSize, but always at least
 * one entry (so progress is made even when a single entry is larger than the limit).
 */
export function limitSize(ents: Entry[], maxSize: number): Entry[] {
  if (ents.length === 0 || maxSize >= NoLimit) return ents;
  let size = entrySize(ents[0]);
  let limit = 1;
  for (; limit < ents.length; limit++) {
    size += entrySize(ents[limit]);
    if (size > maxSize) break;
  }
  return limit === ents.length ? ents : ents.slice(0, limit);
}

/** Builds a message with every field present (one hidden class for all messages). */
export function newMessage(type: MessageType, to: bigint, from: bigint, term: number): Message {
  return {
    type,
    to,
    from,
    term,
    logTerm: 0,
    index: 0,
    entries: [],
    commit: 0,
    snapshot: undefined,
    reject: false,
    rejectHint: 0,
    context: EMPTY,
  };
}

/** A seedable PRNG (mulberry32) returning floats in [0, 1): for tests and callers without their own. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
