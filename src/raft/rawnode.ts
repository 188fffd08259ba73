// RawNode: the application's handle on a Raft state machine. The driver loop (in src/server) does:
//   tick() on a timer; step(m) for each message from a peer; propose()/readIndex() for clients;
//   if hasReady(): rd = ready(); persist rd.hardState, rd.entries, rd.snapshot (fsync if rd.mustSync);
//   send rd.messages; apply rd.committedEntries (calling applyConfChange for conf change entries);
//   serve rd.readStates once applied >= their index; advance(rd).
import {
  ConfChange,
  ConfChangeType,
  ConfChangeV2,
  type ConfState,
  type Entry,
  EntryType,
  type HardState,
  type Message,
  MessageType,
  type Snapshot,
} from '../gen/raftpb/raft.js';
import { confChangeToV2 } from './confchange.js';
import { type Config, Raft, type SoftState } from './raft.js';
import type { ReadState } from './read_only.js';
import { getStatus, type Status } from './status.js';
import {
  EMPTY,
  ErrStepLocalMsg,
  ErrStepPeerNotFound,
  isLocalMsg,
  isResponseMsg,
  None,
  newMessage,
  RaftError,
} from './util.js';

export interface Ready {
  /** Present when leader or role changed since the last Ready. Need not be persisted. */
  softState: SoftState | undefined;
  /** Present when term, vote or commit changed: persist it (before sending messages). */
  hardState: HardState | undefined;
  /** Reads confirmed at a read index: serve each once applied >= its index. */
  readStates: ReadState[];
  /** Entries to persist (append, replacing any conflicting suffix) before sending messages. */
  entries: Entry[];
  /** A snapshot to persist (install) before applying anything else. */
  snapshot: Snapshot | undefined;
  /** Committed entries to apply, in order (they were persisted earlier or are in `entries`). */
  committedEntries: Entry[];
  /** Messages to send AFTER entries and hardState are durable. */
  messages: Message[];
  /** Whether entries/hardState must be synced to disk before messages are sent. */
  mustSync: boolean;
}

export enum SnapshotStatus {
  Finish = 1,
  Failure = 2,
}

export interface Peer {
  id: bigint;
  context?: Buffer;
}

export class RawNode {
  readonly raft: Raft;
  private prevSoftSt: SoftState;
  private prevHardSt: HardState;

  constructor(config: Config) {
    this.raft = new Raft(config);
    this.prevSoftSt = this.raft.softState();
    this.prevHardSt = this.raft.hardState();
  }

  /**
   * Bootstraps a brand-new member of a new cluster as etcd does: the initial members are written as
   * committed ConfChangeAddNode entries at term 1 (indexes 1..n). The storage must be empty.
   */
  bootstrap(peers: Peer[]): void {
    if (peers.length === 0) throw new RaftError('must provide at least one peer to Bootstrap');
    if (this.raft.raftLog.storage.lastIndex() !== 0)
      throw new RaftError("can't bootstrap a nonempty Storage");
    // The hard state must differ from the initial empty one so that the first Ready persists it.
    this.prevHardSt = { term: 0, vote: None, commit: 0 };
    this.raft.becomeFollower(1, None);
    const ents: Entry[] = peers.map((p, i) => ({
      term: 1,
      index: i + 1,
      type: EntryType.EntryConfChange,
      data: Buffer.from(
        ConfChange.encode({
          type: ConfChangeType.ConfChangeAddNode,
          nodeId: p.id,
          context: p.context ?? EMPTY,
          id: 0n,
        }).finish(),
      ),
    }));
    this.raft.raftLog.append(ents);
    this.raft.raftLog.committed = ents.length;
    for (const p of peers) {
      this.raft.applyConfChange(
        confChangeToV2({ type: ConfChangeType.ConfChangeAddNode, nodeId: p.id, context: EMPTY, id: 0n }),
      );
    }
  }

  /** Advances the logical clock by one tick (elections, heartbeats, CheckQuorum). */
  tick(): void {
    this.raft.tick();
  }

  /** Ticks without triggering an election or heartbeat (for quiescing idle groups). */
  tickQuiesced(): void {
    this.raft.electionElapsed++;
  }

  /** Starts an election now (pre-vote first if enabled). */
  campaign(): void {
    this.raft.step(newMessage(MessageType.MsgHup, None, None, 0));
  }

  /** Proposes data to be appended to the log. Throws ErrProposalDropped when it cannot be accepted. */
  propose(data: Buffer): void {
    const m = newMessage(MessageType.MsgProp, None, this.raft.id, 0);
    m.entries = [{ term: 0, index: 0, type: EntryType.EntryNormal, data }];
    throwIf(this.raft.step(m));
  }

  /** Proposes several entries in one message (one log append, one MsgApp). */
  proposeBatch(datas: Buffer[]): void {
    const m = newMessage(MessageType.MsgProp, None, this.raft.id, 0);
    m.entries = datas.map((data) => ({ term: 0, index: 0, type: EntryType.EntryNormal, data }));
    throwIf(this.raft.step(m));
  }

  /** Proposes a configuration change (v1 ConfChange or ConfChangeV2). */
  proposeConfChange(cc: ConfChange | ConfChangeV2): void {
    const m = newMessage(MessageType.MsgProp, None, this.raft.id, 0);
    m.entries = [confChangeEntry(cc)];
    throwIf(this.raft.step(m));
  }

  /** Applies a committed conf change entry's change; returns the resulting ConfState (to persist). */
  applyConfChange(cc: ConfChange | ConfChangeV2): ConfState {
    return this.raft.applyConfChange(isV2(cc) ? cc : confChangeToV2(cc));
  }

  /**
   * Feeds a message received from a peer. Returns an error (and drops the message) for local-only
   * message types, responses from non-members, and refused forwarded proposals; these need no action.
   */
  step(m: Message): RaftError | null {
    if (isLocalMsg(m.type)) return ErrStepLocalMsg;
    if (isResponseMsg(m.type) && !this.raft.prs.progress.has(m.from)) return ErrStepPeerNotFound;
    return this.raft.step(m);
  }

  /**
   * Requests a linearizable read (§6.4): when confirmed, a ReadState {index, requestCtx: rctx} appears in a
   * Ready; the read may be served once the state machine has applied that index. rctx must be unique.
   */
  readIndex(rctx: Buffer): void {
    const m = newMessage(MessageType.MsgReadIndex, None, None, 0);
    m.entries = [{ term: 0, index: 0, type: EntryType.EntryNormal, data: rctx }];
    this.raft.step(m);
  }

  /** Asks the leader to hand leadership to `transferee` (thesis §3.10). */
  transferLeader(transferee: bigint): void {
    this.raft.step(newMessage(MessageType.MsgTransferLeader, None, transferee, 0));
  }

  /** The transport could not deliver to `id`: stop optimistic replication to it. */
  reportUnreachable(id: bigint): void {
    this.raft.step(newMessage(MessageType.MsgUnreachable, None, id, 0));
  }

  /** Outcome of sending a snapshot to `id`. */
  reportSnapshot(id: bigint, status: SnapshotStatus): void {
    const m = newMessage(MessageType.MsgSnapStatus, None, id, 0);
    m.reject = status === SnapshotStatus.Failure;
    this.raft.step(m);
  }

  hasReady(): boolean {
    const r = this.raft;
    if (r.lead !== this.prevSoftSt.lead || r.state !== this.prevSoftSt.raftState) return true;
    const hs = this.prevHardSt;
    if (r.term !== hs.term || r.vote !== hs.vote || r.raftLog.committed !== hs.commit) return true;
    if (r.raftLog.hasPendingSnapshot()) return true;
    if (r.msgs.length > 0 || r.raftLog.unstable.entries.length > 0 || r.raftLog.hasNextEnts()) return true;
    return r.readStates.length > 0;
  }

  /**
   * Everything the application must do now. The returned Ready is owned by the caller; call advance(rd)
   * once it has been handled (persisted, sent, applied).
   */
  ready(): Ready {
    const r = this.raft;
    const entries = r.raftLog.unstableEntries().slice();
    const rd: Ready = {
      softState: undefined,
      hardState: undefined,
      readStates: r.readStates,
      entries,
      snapshot: r.raftLog.unstable.snapshot,
      committedEntries: r.raftLog.nextEnts(),
      messages: r.msgs,
      mustSync: false,
    };
    if (r.lead !== this.prevSoftSt.lead || r.state !== this.prevSoftSt.raftState) {
      const ss = r.softState();
      rd.softState = ss;
      this.prevSoftSt = ss;
    }
    const hs = this.prevHardSt;
    if (r.term !== hs.term || r.vote !== hs.vote || r.raftLog.committed !== hs.commit) {
      const nhs = r.hardState();
      rd.hardState = nhs;
      // Term and vote must be durable before any message is sent (§5.1, §5.2); commit alone can be lazy.
      rd.mustSync = nhs.term !== hs.term || nhs.vote !== hs.vote;
      this.prevHardSt = nhs;
    }
    if (entries.length > 0) rd.mustSync = true;
    r.msgs = [];
    r.readStates = [];
    return rd;
  }

  /** Reports that a Ready was handled: entries/snapshot are stable and committed entries applied. */
  advance(rd: Ready): void {
    const r = this.raft;
    let applied = 0;
    const n = rd.committedEntries.length;
    if (n > 0) applied = rd.committedEntries[n - 1].index;
    else if (rd.snapshot !== undefined) applied = rd.snapshot.metadata!.index;
    r.advanceApplied(applied);
    if (rd.entries.length > 0) {
      const e = rd.entries[rd.entries.length - 1];
      r.raftLog.stableTo(e.index, e.term);
    }
    if (rd.snapshot !== undefined) r.raftLog.stableSnapTo(rd.snapshot.metadata!.index);
  }

  status(): Status {
    return getStatus(this.raft);
  }
}

function throwIf(err: RaftError | null): void {
  if (err !== null) throw err;
}

function isV2(cc: ConfChange | ConfChangeV2): cc is ConfChangeV2 {
  return (cc as ConfChangeV2).changes !== undefined;
}

/** The log entry carrying a conf change: EntryConfChange for v1, EntryConfChangeV2 for v2. */
export function confChangeEntry(cc: ConfChange | ConfChangeV2): Entry {
  if (isV2(cc)) {
    return {
      term: 0,
      index: 0,
      type: EntryType.EntryConfChangeV2,
      data: Buffer.from(ConfChangeV2.encode(cc).finish()),
    };
  }
  return {
    term: 0,
    index: 0,
    type: EntryType.EntryConfChange,
    data: Buffer.from(ConfChange.encode(cc).finish()),
  };
}

/** Decodes the conf change carried by a committed entry (as ConfChangeV2), or undefined for normal entries. */
export function decodeConfChange(e: Entry): ConfChangeV2 | undefined {
  if (e.type === EntryType.EntryConfChange) return confChangeToV2(ConfChange.decode(e.data));
  if (e.type === EntryType.EntryConfChangeV2) return ConfChangeV2.decode(e.data);
  return undefined;
}
