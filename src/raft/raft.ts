// The Raft state machine (Ongaro & Ousterhout, "In Search of an Understandable Consensus Algorithm",
// and Ongaro's thesis "Consensus: Bridging Theory and Practice"), with etcd raft's message protocol.
// It is driven by tick() and step(m); its outputs (messages, entries to persist, committed entries,
// read states) are collected by RawNode into a Ready. No I/O, no timers, no clock: randomness comes from
// the injected PRNG only.
import {
  ConfChangeV2,
  type ConfState,
  type Entry,
  EntryType,
  type HardState,
  type Message,
  MessageType,
  type Snapshot,
  ConfChange as WireConfChange,
} from '../gen/raftpb/raft.js';
import {
  Changer,
  confChangeToV2,
  emptyConfChangeV2,
  enterJointOf,
  isLeaveJoint,
  restoreConfState,
} from './confchange.js';
import { RaftLog } from './log.js';
import { ProgressState } from './progress.js';
import { VoteResult } from './quorum.js';
import { ReadOnly, ReadOnlyOption, type ReadState } from './read_only.js';
import { isEmptyHardState, type Storage } from './storage.js';
import { type ProgressMap, ProgressTracker, TrackerConfig } from './tracker.js';
import {
  CAMPAIGN_TRANSFER,
  EMPTY,
  ErrProposalDropped,
  NoLimit,
  None,
  newMessage,
  RaftError,
  seededRandom,
  voteRespMsgType,
} from './util.js';

export enum StateType {
  Follower = 0,
  Candidate = 1,
  Leader = 2,
  PreCandidate = 3,
}

export interface Config {
  /** This node's id (non-zero). */
  id: bigint;
  /** Ticks without hearing from a leader before a follower campaigns (randomized in [e, 2e)). §5.2 */
  electionTick: number;
  /** Ticks between leader heartbeats. Must be < electionTick. */
  heartbeatTick: number;
  storage: Storage;
  /** The last applied index, when restarting (entries up to it are not returned again). */
  applied?: number;
  /** Byte limit of one MsgApp's entries (at least one entry is always sent). Default: no limit. */
  maxSizePerMsg?: number;
  /** Byte limit of the committed entries of one Ready. Default: maxSizePerMsg. */
  maxCommittedSizePerReady?: number;
  /** Maximum unacknowledged MsgApps per follower in Replicate state. Default 256. */
  maxInflightMsgs?: number;
  /** Leader steps down when it has not heard from a quorum for an election timeout (thesis §6.2). */
  checkQuorum?: boolean;
  /** Run a pre-election before incrementing the term (thesis §9.6). */
  preVote?: boolean;
  /** How ReadIndex is confirmed. LeaseBased requires checkQuorum. */
  readOnlyOption?: ReadOnlyOption;
  /** Followers drop proposals instead of forwarding them to the leader. */
  disableProposalForwarding?: boolean;
  /** Injected PRNG returning floats in [0, 1). Default: a PRNG seeded from the node id. */
  random?: () => number;
}

export interface SoftState {
  lead: bigint;
  raftState: StateType;
}

enum CampaignType {
  PreElection = 0,
  Election = 1,
  Transfer = 2,
}

export class Raft {
  readonly id: bigint;
  term = 0;
  vote = None;
  readStates: ReadState[] = [];
  readonly raftLog: RaftLog;
  readonly maxMsgSize: number;
  prs: ProgressTracker;
  state = StateType.Follower;
  /** Whether this node is a learner in the active configuration. */
  isLearner = false;
  /** Outgoing messages; RawNode moves them into the Ready. */
  msgs: Message[] = [];
  lead = None;
  /** Target of an ongoing leadership transfer (thesis §3.10), or None. */
  leadTransferee = None;
  /**
   * Only one conf change may be pending (in the log but not yet applied) at a time: proposals of conf
   * changes are refused while pendingConfIndex > applied.
   */
  pendingConfIndex = 0;
  readOnly: ReadOnly;
  /** ReadIndex requests received before this leader committed an entry of its term; answered after. */
  pendingReadIndexMessages: Message[] = [];
  electionElapsed = 0;
  heartbeatElapsed = 0;
  readonly checkQuorum: boolean;
  readonly preVote: boolean;
  readonly heartbeatTimeout: number;
  readonly electionTimeout: number;
  randomizedElectionTimeout = 0;
  readonly disableProposalForwarding: boolean;
  private readonly random: () => number;
  private readonly readOnlyOption: ReadOnlyOption;

  constructor(c: Config) {
    validate(c);
    this.id = c.id;
    this.maxMsgSize = c.maxSizePerMsg ?? NoLimit;
    this.raftLog = new RaftLog(c.storage, c.maxCommittedSizePerReady ?? this.maxMsgSize);
    const maxInflight = c.maxInflightMsgs ?? 256;
    this.prs = new ProgressTracker(maxInflight);
    this.checkQuorum = c.checkQuorum ?? false;
    this.preVote = c.preVote ?? false;
    this.heartbeatTimeout = c.heartbeatTick;
    this.electionTimeout = c.electionTick;
    this.disableProposalForwarding = c.disableProposalForwarding ?? false;
    this.random = c.random ?? seededRandom(Number(c.id & 0xffffffffn));
    this.readOnlyOption = c.readOnlyOption ?? ReadOnlyOption.Safe;
    this.readOnly = new ReadOnly(this.readOnlyOption);

    const { hardState, confState } = c.storage.initialState();
    const [cfg, prs] = restoreConfState(
      new Changer(new TrackerConfig(), new Map(), maxInflight, this.raftLog.lastIndex()),
      confState,
    );
    this.switchToConfig(cfg, prs);
    if (!isEmptyHardState(hardState)) this.loadState(hardState);
    if (c.applied !== undefined && c.applied > 0) this.raftLog.appliedTo(c.applied);
    this.becomeFollower(this.term, None);
  }

  hasLeader(): boolean {
    return this.lead !== None;
  }

  softState(): SoftState {
    return { lead: this.lead, raftState: this.state };
  }

  hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.raftLog.committed };
  }

  private loadState(hs: HardState): void {
    if (hs.commit < this.raftLog.committed || hs.commit > this.raftLog.lastIndex()) {
      throw new RaftError(
        `${this.id} state.commit ${hs.commit} is out of range [${this.raftLog.committed}, ${this.raftLog.lastIndex()}]`,
      );
    }
    this.raftLog.committed = hs.commit;
    this.term = hs.term;
    this.vote = hs.vote;
  }

  // ---------------------------------------------------------------------------------------------
  // Sending

  /** Queues m for sending, stamping the sender and (except for votes, proposals and reads) the term. */
  send(m: Message): void {
    if (m.from === None) m.from = this.id;
    const t = m.type;
    if (
      t === MessageType.MsgVote ||
      t === MessageType.MsgVoteResp ||
      t === MessageType.MsgPreVote ||
      t === MessageType.MsgPreVoteResp
    ) {
      // Votes carry the term they are about (a pre-vote is for term+1, without changing ours).
      if (m.term === 0) throw new RaftError(`term should be set when sending ${MessageType[t]}`);
    } else {
      if (m.term !== 0)
        throw new RaftError(`term should not be set when sending ${MessageType[t]} (was ${m.term})`);
      // Proposals and read requests forwarded to the leader are treated as local messages there.
      if (t !== MessageType.MsgProp && t !== MessageType.MsgReadIndex) m.term = this.term;
    }
    this.msgs.push(m);
  }

  /** Sends a MsgApp (or a MsgSnap if the entries are compacted) to `to`, even if it carries no entries. */
  sendAppend(to: bigint): void {
    this.maybeSendAppend(to, true);
  }

  /**
   * §5.3 AppendEntries with etcd's flow control: nothing is sent to a paused follower. Returns whether a
   * message was sent. With sendIfEmpty false, a message without entries is not sent.
   */
  maybeSendAppend(to: bigint, sendIfEmpty: boolean): boolean {
    const pr = this.prs.progress.get(to);
    if (pr === undefined || pr.isPaused()) return false;
    let term = 0;
    let ents: Entry[] | undefined;
    try {
      term = this.raftLog.term(pr.next - 1);
      ents = this.raftLog.entries(pr.next, this.maxMsgSize);
    } catch {
      ents = undefined;
    }
    if (ents !== undefined) {
      if (ents.length === 0 && !sendIfEmpty) return false;
      const m = newMessage(MessageType.MsgApp, to, this.id, 0);
      m.index = pr.next - 1;
      m.logTerm = term;
      m.entries = ents;
      m.commit = this.raftLog.committed;
      const n = ents.length;
      if (n !== 0) {
        if (pr.state === ProgressState.Replicate) {
          // Optimistically assume delivery (§5.3 pipelining); the window bounds what is outstanding.
          const last = ents[n - 1].index;
          pr.optimisticUpdate(last);
          pr.inflights.add(last);
        } else if (pr.state === ProgressState.Probe) {
          pr.probeSent = true;
        }
      }
      this.send(m);
      return true;
    }
    // The entries the follower needs are compacted: send a snapshot (§7), but only to a follower that
    // has been heard from recently (a dead one would just waste the transfer).
    if (!pr.recentActive) return false;
    let snap: Snapshot;
    try {
      snap = this.raftLog.snapshot();
    } catch {
      return false; // temporarily unavailable: retry later
    }
    const sindex = snap.metadata?.index ?? 0;
    if (sindex === 0) throw new RaftError('need non-empty snapshot');
    const m = newMessage(MessageType.MsgSnap, to, this.id, 0);
    m.snapshot = snap;
    pr.becomeSnapshot(sindex);
    this.send(m);
    return true;
  }

  /**
   * Heartbeat with commit = min(match, committed): a follower must not learn a commit index beyond what is
   * known to match its log. The context carries a pending ReadIndex request (§6.4).
   */
  sendHeartbeat(to: bigint, ctx: Buffer): void {
    const pr = this.prs.progress.get(to)!;
    const m = newMessage(MessageType.MsgHeartbeat, to, this.id, 0);
    m.commit = Math.min(pr.match, this.raftLog.committed);
    m.context = ctx;
    this.send(m);
  }

  bcastAppend(): void {
    for (const id of this.prs.progress.keys()) if (id !== this.id) this.sendAppend(id);
  }

  bcastHeartbeat(): void {
    this.bcastHeartbeatWithCtx(this.readOnly.lastPendingRequestCtx() ?? EMPTY);
  }

  private bcastHeartbeatWithCtx(ctx: Buffer): void {
    for (const id of this.prs.progress.keys()) if (id !== this.id) this.sendHeartbeat(id, ctx);
  }

  private sendTimeoutNow(to: bigint): void {
    this.send(newMessage(MessageType.MsgTimeoutNow, to, this.id, 0));
  }

  // ---------------------------------------------------------------------------------------------
  // Commit and append

  /** Advances the commit index to what a quorum has matched, if that entry is of the current term. */
  maybeCommit(): boolean {
    return this.raftLog.maybeCommit(this.prs.committed(), this.term);
  }

  /** Leader appends entries of its term to its own log (§5.3); they count as matched by itself. */
  appendEntry(es: Entry[]): void {
    const li = this.raftLog.lastIndex();
    for (let i = 0; i < es.length; i++) {
      es[i].term = this.term;
      es[i].index = li + 1 + i;
    }
    const last = this.raftLog.append(es);
    this.prs.progress.get(this.id)?.maybeUpdate(last);
    // A single voter commits right away; otherwise this is a no-op until followers acknowledge.
    this.maybeCommit();
  }

  // ---------------------------------------------------------------------------------------------
  // State transitions

  private reset(term: number): void {
    if (this.term !== term) {
      this.term = term;
      this.vote = None;
    }
    this.lead = None;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.resetRandomizedElectionTimeout();
    this.abortLeaderTransfer();
    this.prs.resetVotes();
    const last = this.raftLog.lastIndex();
    for (const [id, pr] of this.prs.progress) {
      pr.match = id === this.id ? last : 0;
      pr.next = last + 1;
      pr.state = ProgressState.Probe;
      pr.pendingSnapshot = 0;
      pr.probeSent = false;
      pr.recentActive = false;
      pr.inflights.reset();
    }
    this.pendingConfIndex = 0;
    this.readOnly = new ReadOnly(this.readOnlyOption);
    this.pendingReadIndexMessages = [];
  }

  becomeFollower(term: number, lead: bigint): void {
    this.reset(term);
    this.lead = lead;
    this.state = StateType.Follower;
  }

  becomeCandidate(): void {
    if (this.state === StateType.Leader) throw new RaftError('invalid transition [leader -> candidate]');
    // §5.2: increment the term and vote for self.
    this.reset(this.term + 1);
    this.vote = this.id;
    this.state = StateType.Candidate;
  }

  /** PreVote (thesis §9.6): like a candidate but neither the term nor the vote changes. */
  becomePreCandidate(): void {
    if (this.state === StateType.Leader) throw new RaftError('invalid transition [leader -> pre-candidate]');
    this.prs.resetVotes();
    this.lead = None;
    this.state = StateType.PreCandidate;
  }

  becomeLeader(): void {
    if (this.state === StateType.Follower) throw new RaftError('invalid transition [follower -> leader]');
    this.reset(this.term);
    this.lead = this.id;
    this.state = StateType.Leader;
    const self = this.prs.progress.get(this.id);
    if (self !== undefined) {
      // The leader's own progress is trivially replicating and active.
      self.becomeReplicate();
      self.recentActive = true;
    }
    // Conservatively assume the unapplied tail may hold a conf change: no new one until it is applied.
    this.pendingConfIndex = this.raftLog.lastIndex();
    // §5.4.2 / §8: commit an entry of the new term at once, which commits the earlier entries too (and
    // lets ReadIndex start working).
    this.appendEntry([{ term: 0, index: 0, type: EntryType.EntryNormal, data: EMPTY }]);
  }

  private resetRandomizedElectionTimeout(): void {
    // §5.2: randomized timeouts make split votes rare.
    this.randomizedElectionTimeout = this.electionTimeout + Math.floor(this.random() * this.electionTimeout);
  }

  pastElectionTimeout(): boolean {
    return this.electionElapsed >= this.randomizedElectionTimeout;
  }

  /** Can this node become leader? Voter in the config, and not waiting to persist a snapshot. */
  promotable(): boolean {
    const pr = this.prs.progress.get(this.id);
    return pr !== undefined && !pr.isLearner && !this.raftLog.hasPendingSnapshot();
  }

  abortLeaderTransfer(): void {
    this.leadTransferee = None;
  }

  // ---------------------------------------------------------------------------------------------
  // Ticks

  tick(): void {
    if (this.state === StateType.Leader) this.tickHeartbeat();
    else this.tickElection();
  }

  private tickElection(): void {
    this.electionElapsed++;
    if (this.promotable() && this.pastElectionTimeout()) {
      this.electionElapsed = 0;
      this.step(newMessage(MessageType.MsgHup, None, this.id, 0));
    }
  }

  private tickHeartbeat(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    if (this.electionElapsed >= this.electionTimeout) {
      this.electionElapsed = 0;
      if (this.checkQuorum) this.step(newMessage(MessageType.MsgCheckQuorum, None, this.id, 0));
      // A transfer that did not finish within an election timeout is abandoned (thesis §3.10).
      if (this.state === StateType.Leader && this.leadTransferee !== None) this.abortLeaderTransfer();
    }
    if (this.state !== StateType.Leader) return;
    if (this.heartbeatElapsed >= this.heartbeatTimeout) {
      this.heartbeatElapsed = 0;
      this.step(newMessage(MessageType.MsgBeat, None, this.id, 0));
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Elections

  private hup(t: CampaignType): void {
    if (this.state === StateType.Leader) return;
    if (!this.promotable()) return;
    // A node must not campaign while it may still have to apply a conf change it has committed: the
    // change could alter whether it is a voter.
    if (this.raftLog.committed > this.raftLog.applied) {
      const ents = this.raftLog.slice(this.raftLog.applied + 1, this.raftLog.committed + 1, NoLimit);
      for (let i = 0; i < ents.length; i++) {
        const ty = ents[i].type;
        if (ty === EntryType.EntryConfChange || ty === EntryType.EntryConfChangeV2) return;
      }
    }
    this.campaign(t);
  }

  private campaign(t: CampaignType): void {
    let voteMsg: MessageType;
    let term: number;
    if (t === CampaignType.PreElection) {
      this.becomePreCandidate();
      voteMsg = MessageType.MsgPreVote;
      // Pre-votes are requested for the term we would use, without incrementing ours.
      term = this.term + 1;
    } else {
      this.becomeCandidate();
      voteMsg = MessageType.MsgVote;
      term = this.term;
    }
    if (this.poll(this.id, voteRespMsgType(voteMsg), true) === VoteResult.VoteWon) {
      // A single voter wins at once.
      if (t === CampaignType.PreElection) this.campaign(CampaignType.Election);
      else this.becomeLeader();
      return;
    }
    const lastIndex = this.raftLog.lastIndex();
    const lastTerm = this.raftLog.lastTerm();
    for (const id of this.prs.voterNodes()) {
      if (id === this.id) continue;
      const m = newMessage(voteMsg, id, this.id, term);
      m.index = lastIndex;
      m.logTerm = lastTerm;
      if (t === CampaignType.Transfer) m.context = CAMPAIGN_TRANSFER;
      this.send(m);
    }
  }

  private poll(id: bigint, _t: MessageType, granted: boolean): VoteResult {
    this.prs.recordVote(id, granted);
    return this.prs.tallyVotes().result;
  }

  // ---------------------------------------------------------------------------------------------
  // Step

  /** Feeds a message to the state machine. Returns an error for refused proposals, else null. */
  step(m: Message): RaftError | null {
    // Term handling (§5.1): higher terms update ours, lower terms are stale.
    if (m.term === 0) {
      // local message (or a forwarded proposal / read request)
    } else if (m.term > this.term) {
      if (m.type === MessageType.MsgVote || m.type === MessageType.MsgPreVote) {
        const force = m.context.equals(CAMPAIGN_TRANSFER);
        const inLease = this.checkQuorum && this.lead !== None && this.electionElapsed < this.electionTimeout;
        // Thesis §4.2.3: a server that has heard from a current leader within the minimum election
        // timeout ignores vote requests (prevents a removed/partitioned server from disrupting), unless
        // the election is a leadership transfer.
        if (!force && inLease) return null;
      }
      if (m.type === MessageType.MsgPreVote) {
        // A pre-vote never changes our term.
      } else if (m.type === MessageType.MsgPreVoteResp && !m.reject) {
        // A granted pre-vote is for a term we have not started yet; we bump our term on winning.
      } else if (
        m.type === MessageType.MsgApp ||
        m.type === MessageType.MsgHeartbeat ||
        m.type === MessageType.MsgSnap
      ) {
        this.becomeFollower(m.term, m.from);
      } else {
        this.becomeFollower(m.term, None);
      }
    } else if (m.term < this.term) {
      if (
        (this.checkQuorum || this.preVote) &&
        (m.type === MessageType.MsgHeartbeat || m.type === MessageType.MsgApp)
      ) {
        // A stale leader (e.g. behind a healed partition) must learn the new term, or with CheckQuorum /
        // PreVote nobody would ever tell it (we ignore its messages and do not campaign against it).
        this.send(newMessage(MessageType.MsgAppResp, m.from, None, 0));
      } else if (m.type === MessageType.MsgPreVote) {
        // Reject with our term so a pre-candidate with a stale term catches up.
        const r = newMessage(MessageType.MsgPreVoteResp, m.from, None, this.term);
        r.reject = true;
        this.send(r);
      }
      // Other stale messages are ignored.
      return null;
    }

    switch (m.type) {
      case MessageType.MsgHup:
        this.hup(this.preVote ? CampaignType.PreElection : CampaignType.Election);
        return null;
      case MessageType.MsgVote:
      case MessageType.MsgPreVote: {
        // §5.2 one vote per term (first come first served), §5.4.1 only for an up-to-date candidate.
        const canVote =
          this.vote === m.from ||
          (this.vote === None && this.lead === None) ||
          (m.type === MessageType.MsgPreVote && m.term > this.term);
        if (canVote && this.raftLog.isUpToDate(m.index, m.logTerm)) {
          this.send(newMessage(voteRespMsgType(m.type), m.from, None, m.term));
          if (m.type === MessageType.MsgVote) {
            // Only real votes are recorded (and reset the election timer).
            this.electionElapsed = 0;
            this.vote = m.from;
          }
        } else {
          const r = newMessage(voteRespMsgType(m.type), m.from, None, this.term);
          r.reject = true;
          this.send(r);
        }
        return null;
      }
      default:
        switch (this.state) {
          case StateType.Leader:
            return this.stepLeader(m);
          case StateType.Follower:
            return this.stepFollower(m);
          default:
            return this.stepCandidate(m);
        }
    }
  }

  private stepLeader(m: Message): RaftError | null {
    switch (m.type) {
      case MessageType.MsgBeat:
        this.bcastHeartbeat();
        return null;
      case MessageType.MsgCheckQuorum: {
        // CheckQuorum (thesis §6.2): step down if a quorum was not heard from in the last election
        // timeout, so clients can find the real leader.
        const self = this.prs.progress.get(this.id);
        if (self !== undefined) self.recentActive = true;
        if (!this.prs.quorumActive()) this.becomeFollower(this.term, None);
        for (const [id, pr] of this.prs.progress) if (id !== this.id) pr.recentActive = false;
        return null;
      }
      case MessageType.MsgProp:
        return this.leaderPropose(m);
      case MessageType.MsgReadIndex:
        if (this.prs.isSingleton()) {
          this.respondToReadIndex(m, this.raftLog.committed);
          return null;
        }
        // §6.4 step 1: the leader's commit index is only current once it has committed an entry of its
        // own term; until then, hold the request.
        if (!this.committedEntryInCurrentTerm()) {
          this.pendingReadIndexMessages.push(m);
          return null;
        }
        this.sendMsgReadIndexResponse(m);
        return null;
    }

    const pr = this.prs.progress.get(m.from);
    if (pr === undefined) return null;
    switch (m.type) {
      case MessageType.MsgAppResp:
        pr.recentActive = true;
        if (m.reject) {
          // Fast backtracking (§5.3 optimization): the follower's hint (and its term) lets us skip every
          // index of a conflicting term at once.
          let next = m.rejectHint;
          if (m.logTerm > 0) next = this.raftLog.findConflictByTerm(m.rejectHint, m.logTerm)[0];
          if (pr.maybeDecrTo(m.index, next)) {
            if (pr.state === ProgressState.Replicate) pr.becomeProbe();
            this.sendAppend(m.from);
          }
        } else {
          const oldPaused = pr.isPaused();
          if (pr.maybeUpdate(m.index)) {
            if (pr.state === ProgressState.Probe) {
              pr.becomeReplicate();
            } else if (pr.state === ProgressState.Snapshot && pr.match >= pr.pendingSnapshot) {
              // The follower caught up past the snapshot: resume replication.
              pr.becomeProbe();
              pr.becomeReplicate();
            } else if (pr.state === ProgressState.Replicate) {
              pr.inflights.freeLE(m.index);
            }
            if (this.maybeCommit()) {
              this.releasePendingReadIndexMessages();
              this.bcastAppend();
            } else if (oldPaused) {
              // It may be missing the latest commit index.
              this.sendAppend(m.from);
            }
            // Send as many more entries as the window allows.
            while (this.maybeSendAppend(m.from, false)) {
              // keep sending
            }
            // Transfer in progress and the transferee caught up: tell it to campaign now (§3.10).
            if (m.from === this.leadTransferee && pr.match === this.raftLog.lastIndex()) {
              this.sendTimeoutNow(m.from);
            }
          }
        }
        return null;
      case MessageType.MsgHeartbeatResp:
        pr.recentActive = true;
        pr.probeSent = false;
        // A full window may be stuck on lost messages: free a slot so replication can continue.
        if (pr.state === ProgressState.Replicate && pr.inflights.full()) pr.inflights.freeFirstOne();
        if (pr.match < this.raftLog.lastIndex()) this.sendAppend(m.from);
        if (this.readOnly.option !== ReadOnlyOption.Safe || m.context.length === 0) return null;
        {
          const acks = this.readOnly.recvAck(m.from, m.context);
          if (acks === undefined) return null;
          if (this.prs.config.voters.voteResult(acks) !== VoteResult.VoteWon) return null;
          for (const rs of this.readOnly.advance(m)) this.respondToReadIndex(rs.req, rs.index);
        }
        return null;
      case MessageType.MsgSnapStatus:
        if (pr.state !== ProgressState.Snapshot) return null;
        if (m.reject) pr.pendingSnapshot = 0;
        pr.becomeProbe();
        // Success: wait for the follower's MsgAppResp before sending more. Failure: wait for a heartbeat
        // response before retrying.
        pr.probeSent = true;
        return null;
      case MessageType.MsgUnreachable:
        // Optimistic replication assumed delivery; fall back to probing.
        if (pr.state === ProgressState.Replicate) pr.becomeProbe();
        return null;
      case MessageType.MsgTransferLeader: {
        if (pr.isLearner) return null; // a learner cannot lead
        const transferee = m.from;
        if (this.leadTransferee !== None) {
          if (this.leadTransferee === transferee) return null; // already in progress
          this.abortLeaderTransfer();
        }
        if (transferee === this.id) return null; // already leader
        // §3.10: the transfer must finish within an election timeout; proposals are refused meanwhile.
        this.electionElapsed = 0;
        this.leadTransferee = transferee;
        if (pr.match === this.raftLog.lastIndex()) this.sendTimeoutNow(transferee);
        else this.sendAppend(transferee);
        return null;
      }
    }
    return null;
  }

  private leaderPropose(m: Message): RaftError | null {
    if (m.entries.length === 0) throw new RaftError('stepped empty MsgProp');
    // Removed from the configuration, or handing leadership over: refuse (the caller retries elsewhere).
    if (!this.prs.progress.has(this.id)) return ErrProposalDropped;
    if (this.leadTransferee !== None) return ErrProposalDropped;
    for (let i = 0; i < m.entries.length; i++) {
      const e = m.entries[i];
      if (e.type !== EntryType.EntryConfChange && e.type !== EntryType.EntryConfChangeV2) continue;
      const cc =
        e.type === EntryType.EntryConfChange
          ? confChangeToV2(WireConfChange.decode(e.data))
          : ConfChangeV2.decode(e.data);
      // Only one conf change may be pending (thesis §4.1); a joint config may only be left, not changed.
      const alreadyPending = this.pendingConfIndex > this.raftLog.applied;
      const alreadyJoint = this.prs.config.voters.isJoint();
      const wantsLeaveJoint = isLeaveJoint(cc);
      if (alreadyPending || (alreadyJoint && !wantsLeaveJoint) || (!alreadyJoint && wantsLeaveJoint)) {
        // Refused: replaced by an empty normal entry (the proposer learns nothing; it must retry).
        m.entries[i] = { term: 0, index: 0, type: EntryType.EntryNormal, data: EMPTY };
      } else {
        this.pendingConfIndex = this.raftLog.lastIndex() + i + 1;
      }
    }
    this.appendEntry(m.entries);
    this.bcastAppend();
    return null;
  }

  private stepFollower(m: Message): RaftError | null {
    switch (m.type) {
      case MessageType.MsgProp:
        if (this.lead === None || this.disableProposalForwarding) return ErrProposalDropped;
        m.to = this.lead;
        this.send(m);
        return null;
      case MessageType.MsgApp:
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleAppendEntries(m);
        return null;
      case MessageType.MsgHeartbeat:
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleHeartbeat(m);
        return null;
      case MessageType.MsgSnap:
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleSnapshot(m);
        return null;
      case MessageType.MsgTransferLeader:
        if (this.lead === None) return null;
        m.to = this.lead;
        this.send(m);
        return null;
      case MessageType.MsgTimeoutNow:
        // Leadership transfer (thesis §3.10): campaign immediately, skipping PreVote (we know the leader
        // wants us to win) and the lease check (via the transfer context).
        this.hup(CampaignType.Transfer);
        return null;
      case MessageType.MsgReadIndex:
        if (this.lead === None) return null;
        m.to = this.lead;
        this.send(m);
        return null;
      case MessageType.MsgReadIndexResp:
        if (m.entries.length !== 1) return null;
        this.readStates.push({ index: m.index, requestCtx: m.entries[0].data });
        return null;
    }
    return null;
  }

  private stepCandidate(m: Message): RaftError | null {
    // Only the response type of our own election counts (pre-vote responses are stale for a candidate).
    const myVoteRespType =
      this.state === StateType.PreCandidate ? MessageType.MsgPreVoteResp : MessageType.MsgVoteResp;
    switch (m.type) {
      case MessageType.MsgProp:
        return ErrProposalDropped;
      case MessageType.MsgApp:
        // §5.2: a candidate that hears from a leader of its term steps down.
        this.becomeFollower(m.term, m.from);
        this.handleAppendEntries(m);
        return null;
      case MessageType.MsgHeartbeat:
        this.becomeFollower(m.term, m.from);
        this.handleHeartbeat(m);
        return null;
      case MessageType.MsgSnap:
        this.becomeFollower(m.term, m.from);
        this.handleSnapshot(m);
        return null;
      case myVoteRespType: {
        const res = this.poll(m.from, m.type, !m.reject);
        if (res === VoteResult.VoteWon) {
          if (this.state === StateType.PreCandidate) {
            this.campaign(CampaignType.Election);
          } else {
            this.becomeLeader();
            this.bcastAppend();
          }
        } else if (res === VoteResult.VoteLost) {
          // A pre-vote response carries a future term: stay in ours.
          this.becomeFollower(this.term, None);
        }
        return null;
      }
    }
    return null;
  }

  // ---------------------------------------------------------------------------------------------
  // Follower handlers

  private handleAppendEntries(m: Message): void {
    if (m.index < this.raftLog.committed) {
      // Everything up to our commit index matches already; tell the leader where we are.
      const r = newMessage(MessageType.MsgAppResp, m.from, None, 0);
      r.index = this.raftLog.committed;
      this.send(r);
      return;
    }
    const mlastIndex = this.raftLog.maybeAppend(m.index, m.logTerm, m.commit, m.entries);
    if (mlastIndex >= 0) {
      const r = newMessage(MessageType.MsgAppResp, m.from, None, 0);
      r.index = mlastIndex;
      this.send(r);
      return;
    }
    // §5.3 consistency check failed. Hint the largest index that may still match: at or below both the
    // probe index and our last index, with a term <= the probe's term (fast backtracking).
    const [hintIndex, hintTerm] = this.raftLog.findConflictByTerm(
      Math.min(m.index, this.raftLog.lastIndex()),
      m.logTerm,
    );
    const r = newMessage(MessageType.MsgAppResp, m.from, None, 0);
    r.index = m.index;
    r.reject = true;
    r.rejectHint = hintIndex;
    r.logTerm = hintTerm;
    this.send(r);
  }

  private handleHeartbeat(m: Message): void {
    this.raftLog.commitTo(m.commit);
    const r = newMessage(MessageType.MsgHeartbeatResp, m.from, None, 0);
    r.context = m.context;
    this.send(r);
  }

  private handleSnapshot(m: Message): void {
    const r = newMessage(MessageType.MsgAppResp, m.from, None, 0);
    if (m.snapshot !== undefined && this.restore(m.snapshot)) {
      r.index = this.raftLog.lastIndex();
    } else {
      r.index = this.raftLog.committed;
    }
    this.send(r);
  }

  /**
   * Installs a snapshot (§7) if it is ahead of our commit index: the log is reset to it and the
   * configuration is taken from its ConfState. Returns false if it was ignored.
   */
  restore(s: Snapshot): boolean {
    const meta = s.metadata!;
    if (meta.index <= this.raftLog.committed) return false;
    if (this.state !== StateType.Follower) {
      // Only a follower installs snapshots (the leader of a term sends them); be defensive.
      this.becomeFollower(this.term + 1, None);
      return false;
    }
    const cs = meta.confState!;
    const found =
      cs.voters.includes(this.id) || cs.learners.includes(this.id) || cs.votersOutgoing.includes(this.id);
    // A snapshot from a config that does not include us cannot be ours to install.
    if (!found) return false;
    // Our log already has the snapshot's last entry: just fast-forward the commit index.
    if (this.raftLog.matchTerm(meta.index, meta.term)) {
      this.raftLog.commitTo(meta.index);
      return false;
    }
    this.raftLog.restore(s);
    const fresh = new ProgressTracker(this.prs.maxInflight);
    this.prs = fresh;
    const [cfg, prs] = restoreConfState(Changer.of(fresh, this.raftLog.lastIndex()), cs);
    this.switchToConfig(cfg, prs);
    // We hold everything up to the snapshot.
    this.prs.progress.get(this.id)!.maybeUpdate(this.raftLog.lastIndex());
    return true;
  }

  // ---------------------------------------------------------------------------------------------
  // Configuration

  /** Applies a committed conf change (the application calls this when applying its entry). */
  applyConfChange(cc: ConfChangeV2): ConfState {
    const chg = Changer.of(this.prs, this.raftLog.lastIndex());
    let res: [TrackerConfig, ProgressMap];
    if (isLeaveJoint(cc)) {
      res = chg.leaveJoint();
    } else {
      const { enter, autoLeave } = enterJointOf(cc);
      res = enter ? chg.enterJoint(autoLeave, cc.changes) : chg.simple(cc.changes);
    }
    return this.switchToConfig(res[0], res[1]);
  }

  /** Makes cfg/prs the active configuration and reacts to it (commit, replication, stepping down). */
  switchToConfig(cfg: TrackerConfig, prs: ProgressMap): ConfState {
    this.prs.config = cfg;
    this.prs.progress = prs;
    const cs = this.prs.confState();
    const pr = prs.get(this.id);
    this.isLearner = pr?.isLearner ?? false;
    if ((pr === undefined || this.isLearner) && this.state === StateType.Leader) {
      // The leader was removed or demoted. etcd keeps leading (its server stops a removed member); we
      // step down in the same term instead, so the remaining voters elect a leader among themselves.
      this.becomeFollower(this.term, None);
      return cs;
    }
    if (this.state !== StateType.Leader || cs.voters.length === 0) return cs;
    // The quorum changed: the commit index may move (thesis §4.1).
    if (this.maybeCommit()) {
      this.bcastAppend();
    } else {
      for (const id of this.prs.progress.keys()) if (id !== this.id) this.maybeSendAppend(id, false);
    }
    // A transfer to a node that is no longer a voter is abandoned.
    if (this.leadTransferee !== None && !this.prs.config.voters.has(this.leadTransferee))
      this.abortLeaderTransfer();
    return cs;
  }

  /** After the application applied up to `applied`: auto-leave a joint config once it is committed. */
  advanceApplied(applied: number): void {
    if (applied === 0) return;
    this.raftLog.appliedTo(applied);
    if (this.prs.config.autoLeave && applied >= this.pendingConfIndex && this.state === StateType.Leader) {
      // The joint config (entered with auto-leave) is applied: propose leaving it (thesis §4.3).
      const data = Buffer.from(ConfChangeV2.encode(emptyConfChangeV2()).finish());
      this.appendEntry([{ term: 0, index: 0, type: EntryType.EntryConfChangeV2, data }]);
      this.pendingConfIndex = this.raftLog.lastIndex();
      this.bcastAppend();
    }
  }

  // ---------------------------------------------------------------------------------------------
  // ReadIndex

  private committedEntryInCurrentTerm(): boolean {
    return this.raftLog.zeroTermOnErr(this.raftLog.committed) === this.term;
  }

  private releasePendingReadIndexMessages(): void {
    if (this.pendingReadIndexMessages.length === 0 || !this.committedEntryInCurrentTerm()) return;
    const msgs = this.pendingReadIndexMessages;
    this.pendingReadIndexMessages = [];
    for (const m of msgs) this.sendMsgReadIndexResponse(m);
  }

  private sendMsgReadIndexResponse(m: Message): void {
    if (this.readOnly.option === ReadOnlyOption.Safe) {
      // §6.4 steps 2-3: record the commit index as the read index, and confirm leadership with a round
      // of heartbeats carrying the request's context.
      const ctx = m.entries[0].data;
      this.readOnly.addRequest(this.raftLog.committed, m);
      this.readOnly.recvAck(this.id, ctx);
      this.bcastHeartbeatWithCtx(ctx);
    } else {
      // §6.4.1 lease-based: no confirmation round.
      this.respondToReadIndex(m, this.raftLog.committed);
    }
  }

  /** Answers a confirmed read: locally (a ReadState) or to the follower that forwarded it. */
  private respondToReadIndex(req: Message, readIndex: number): void {
    if (req.from === None || req.from === this.id) {
      this.readStates.push({ index: readIndex, requestCtx: req.entries[0].data });
      return;
    }
    const r = newMessage(MessageType.MsgReadIndexResp, req.from, None, 0);
    r.index = readIndex;
    r.entries = req.entries;
    this.send(r);
  }
}

function validate(c: Config): void {
  if (c.id === None) throw new RaftError('cannot use none as id');
  if (c.heartbeatTick <= 0) throw new RaftError('heartbeat tick must be greater than 0');
  if (c.electionTick <= c.heartbeatTick)
    throw new RaftError('election tick must be greater than heartbeat tick');
  if (c.maxInflightMsgs !== undefined && c.maxInflightMsgs <= 0) {
    throw new RaftError('max inflight messages must be greater than 0');
  }
  if (c.readOnlyOption === ReadOnlyOption.LeaseBased && !c.checkQuorum) {
    throw new RaftError('CheckQuorum must be enabled when ReadOnlyOption is ReadOnlyLeaseBased');
  }
}
