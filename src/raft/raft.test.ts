// Unit tests for the thesis rules beyond the paper: PreVote (§9.6), CheckQuorum (§6.2), leader transfer
// (§3.10), ReadIndex (§6.4), membership changes (chapter 4), learners, snapshots (§5.6/chapter 5),
// flow control and proposal forwarding. Each test names the rule it checks.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  ConfChange,
  ConfChangeTransition,
  ConfChangeType,
  ConfChangeV2,
  EntryType,
  MessageType,
} from '../gen/raftpb/raft.js';
import { Changer } from './confchange.js';
import { ProgressState } from './progress.js';
import { type Raft, StateType } from './raft.js';
import { confChangeEntry, RawNode } from './rawnode.js';
import { ReadOnlyOption } from './read_only.js';
import { MemoryStorage } from './storage.js';
import { ids, msg, Network, newTestRaft, prop, readMessages } from './testing/network.js';
import { ErrProposalDropped } from './util.js';

const T = MessageType;

function net(n: number, extra: Parameters<typeof Network.of>[1] = {}): Network {
  const nt = Network.of(n, extra);
  nt.hup(1);
  assert.equal(nt.get(1).state, StateType.Leader);
  return nt;
}

function tickN(r: Raft, n: number): void {
  for (let i = 0; i < n; i++) r.tick();
}

function readIndexMsg(to: number, ctx: string) {
  return msg(T.MsgReadIndex, to, to, {
    from: 0n,
    entries: [{ term: 0, index: 0, type: EntryType.EntryNormal, data: Buffer.from(ctx) }],
  });
}

describe('PreVote (thesis §9.6)', () => {
  it('§9.6: an isolated node pre-campaigns without increasing its term, and does not disrupt the leader when it returns', () => {
    const nt = net(3, { preVote: true });
    const r3 = nt.get(3);
    const term = r3.term;
    nt.isolate(3);
    for (let i = 0; i < 5; i++) {
      tickN(r3, 2 * r3.electionTimeout);
      nt.send(...readMessages(r3));
    }
    assert.equal(r3.state, StateType.PreCandidate);
    assert.equal(r3.term, term, 'pre-votes never bump the term');
    nt.recover();
    nt.send(msg(T.MsgBeat, 1, 1));
    assert.equal(nt.get(1).state, StateType.Leader);
    assert.equal(nt.get(1).term, term);
    assert.equal(r3.state, StateType.Follower);
  });

  it('§9.6 (contrast): without PreVote the isolated node inflates its term and deposes the leader on return', () => {
    const nt = net(3);
    const r3 = nt.get(3);
    nt.isolate(3);
    tickN(r3, 2 * r3.electionTimeout);
    assert.equal(r3.state, StateType.Candidate);
    nt.recover();
    nt.send(...readMessages(r3));
    nt.send(msg(T.MsgBeat, 1, 1));
    assert.ok(nt.get(1).term > 1, 'leader saw the higher term');
  });

  it('§9.6: a pre-vote is granted to an up-to-date candidate even though we voted in this term', () => {
    const r = newTestRaft(1, [1, 2, 3]);
    r.step(msg(T.MsgVote, 2, 1, { term: 1 }));
    readMessages(r);
    r.step(msg(T.MsgPreVote, 3, 1, { term: 2 }));
    const out = readMessages(r);
    assert.equal(out[0].type, T.MsgPreVoteResp);
    assert.equal(out[0].reject, false);
    assert.equal(out[0].term, 2);
    assert.equal(r.term, 1, 'a pre-vote does not change our term');
    assert.equal(r.vote, 2n);
  });

  it('§9.6: a pre-candidate that wins the pre-vote starts a real election in the next term', () => {
    const r = newTestRaft(1, [1, 2, 3], 10, 1, undefined, { preVote: true });
    r.step(msg(T.MsgHup, 1, 1));
    assert.equal(r.state, StateType.PreCandidate);
    assert.equal(r.term, 0);
    r.step(msg(T.MsgPreVoteResp, 2, 1, { term: 1 }));
    assert.equal(r.state, StateType.Candidate);
    assert.equal(r.term, 1);
  });
});

describe('CheckQuorum (thesis §6.2) and leases (§4.2.3)', () => {
  it('§6.2: a leader that has not heard from a quorum for an election timeout steps down', () => {
    const nt = net(3, { checkQuorum: true });
    const l = nt.get(1);
    nt.isolate(1);
    // The first check still counts the followers heard during the election; the second does not.
    tickN(l, l.electionTimeout);
    assert.equal(l.state, StateType.Leader);
    tickN(l, l.electionTimeout);
    assert.equal(l.state, StateType.Follower);
  });

  it('§6.2: a leader in contact with a quorum stays leader', () => {
    const nt = net(3, { checkQuorum: true });
    const l = nt.get(1);
    nt.isolate(3);
    for (let i = 0; i < 3 * l.electionTimeout; i++) {
      l.tick();
      nt.send(...readMessages(l));
    }
    assert.equal(l.state, StateType.Leader);
  });

  it('§4.2.3: a follower that heard from the leader within the election timeout ignores vote requests', () => {
    const nt = net(3, { checkQuorum: true });
    const f = nt.get(2);
    f.step(msg(T.MsgVote, 3, 2, { term: 5, index: 10, logTerm: 5 }));
    assert.equal(f.term, 1, 'term not bumped by the disruptive candidate');
    assert.equal(readMessages(f).length, 0);
    assert.equal(f.lead, 1n);
  });

  it('§3.10/§4.2.3: a vote request from a leadership transfer bypasses the lease', () => {
    const nt = net(3, { checkQuorum: true });
    const f = nt.get(2);
    f.step(
      msg(T.MsgVote, 3, 2, { term: 2, index: 10, logTerm: 5, context: Buffer.from('CampaignTransfer') }),
    );
    assert.equal(f.term, 2);
    assert.equal(f.vote, 3n);
  });
});

describe('leader transfer (thesis §3.10)', () => {
  it('§3.10: transfer to an up-to-date follower: TimeoutNow makes it campaign and win at once', () => {
    const nt = net(3);
    nt.send(msg(T.MsgTransferLeader, 2, 1));
    assert.equal(nt.get(1).state, StateType.Follower);
    assert.equal(nt.get(2).state, StateType.Leader);
    assert.equal(nt.get(2).term, 2);
  });

  it('§3.10: transfer to a lagging follower first brings its log up to date', () => {
    const nt = net(3);
    nt.isolate(3);
    nt.send(prop(1));
    nt.send(prop(1));
    nt.recover();
    const l = nt.get(1);
    assert.ok(l.prs.progress.get(3n)!.match < l.raftLog.lastIndex());
    nt.send(msg(T.MsgTransferLeader, 3, 1));
    assert.equal(nt.get(3).state, StateType.Leader);
    assert.equal(nt.get(3).raftLog.lastIndex() >= l.raftLog.lastIndex(), true);
  });

  it('§3.10: proposals are refused while a transfer is in progress', () => {
    const nt = net(3);
    nt.isolate(3);
    const l = nt.get(1);
    l.step(msg(T.MsgTransferLeader, 3, 1));
    assert.equal(l.leadTransferee, 3n);
    assert.equal(l.step(prop(1)), ErrProposalDropped);
  });

  it('§3.10: a transfer that does not finish within an election timeout is aborted', () => {
    const nt = net(3);
    nt.isolate(3);
    const l = nt.get(1);
    l.step(msg(T.MsgTransferLeader, 3, 1));
    tickN(l, l.electionTimeout);
    assert.equal(l.leadTransferee, 0n);
    assert.equal(l.state, StateType.Leader);
    assert.equal(l.step(prop(1)), null);
  });

  it('§3.10: transfer to a learner or to the leader itself does nothing', () => {
    const l = newTestRaft(1, [1, 2], 10, 1, MemoryStorage.withVoters(ids(1, 2), ids(3)));
    l.becomeCandidate();
    l.becomeLeader();
    l.step(msg(T.MsgTransferLeader, 3, 1));
    assert.equal(l.leadTransferee, 0n);
    l.step(msg(T.MsgTransferLeader, 1, 1));
    assert.equal(l.leadTransferee, 0n);
    assert.equal(l.state, StateType.Leader);
  });
});

describe('ReadIndex (thesis §6.4)', () => {
  it('§6.4: a Safe read returns the commit index only after a quorum acknowledged a heartbeat carrying its context', () => {
    const nt = net(3);
    const l = nt.get(1);
    nt.send(prop(1));
    l.step(readIndexMsg(1, 'ctx1'));
    assert.equal(l.readStates.length, 0, 'not before the heartbeat round');
    const hbs = readMessages(l);
    assert.ok(hbs.every((m) => m.type === T.MsgHeartbeat && m.context.toString() === 'ctx1'));
    nt.send(...hbs);
    assert.equal(l.readStates.length, 1);
    assert.equal(l.readStates[0].index, l.raftLog.committed);
    assert.equal(l.readStates[0].requestCtx.toString(), 'ctx1');
  });

  it('§6.4: an isolated leader cannot confirm a Safe read', () => {
    const nt = net(3);
    const l = nt.get(1);
    nt.isolate(1);
    nt.send(readIndexMsg(1, 'x'));
    assert.equal(l.readStates.length, 0);
  });

  it('§6.4: a follower forwards ReadIndex to the leader and receives the read index', () => {
    const nt = net(3);
    nt.send(prop(1));
    const f = nt.get(2);
    nt.send(readIndexMsg(2, 'fctx'));
    assert.equal(f.readStates.length, 1);
    assert.equal(f.readStates[0].index, nt.get(1).raftLog.committed);
    assert.equal(f.readStates[0].requestCtx.toString(), 'fctx');
  });

  it('§6.4 step 1: a new leader defers reads until it has committed an entry of its own term', () => {
    const nt = Network.of(3);
    nt.ignore(T.MsgAppResp);
    nt.hup(1);
    const l = nt.get(1);
    assert.equal(l.state, StateType.Leader);
    nt.send(readIndexMsg(1, 'early'));
    assert.equal(l.readStates.length, 0, 'no entry of term 1 committed yet');
    assert.equal(l.pendingReadIndexMessages.length, 1);
    nt.recover();
    nt.send(msg(T.MsgBeat, 1, 1)); // followers answer; the leader replicates and commits
    assert.equal(l.readStates.length, 1);
    assert.equal(l.readStates[0].index, l.raftLog.committed);
    assert.ok(l.raftLog.committed >= 1);
  });

  it('§6.4.1: a LeaseBased read is answered from the commit index without a heartbeat round', () => {
    const nt = net(3, { checkQuorum: true, readOnlyOption: ReadOnlyOption.LeaseBased });
    const l = nt.get(1);
    nt.isolate(1);
    l.step(readIndexMsg(1, 'lease'));
    assert.equal(l.readStates.length, 1);
    assert.equal(readMessages(l).length, 0);
  });

  it('LeaseBased reads require CheckQuorum', () => {
    assert.throws(() => newTestRaft(1, [1], 10, 1, undefined, { readOnlyOption: ReadOnlyOption.LeaseBased }));
  });
});

describe('membership changes (thesis chapter 4)', () => {
  const ccEntry = (type: ConfChangeType, nodeId: number) =>
    confChangeEntry(ConfChange.fromPartial({ type, nodeId: BigInt(nodeId) }));

  it('§4.1: a single-server addition takes effect when applied; the new voter counts toward quorum', () => {
    const r = newTestRaft(1, [1, 2, 3]);
    r.becomeCandidate();
    r.becomeLeader();
    r.applyConfChange({
      transition: ConfChangeTransition.ConfChangeTransitionAuto,
      changes: [{ type: ConfChangeType.ConfChangeAddNode, nodeId: 4n }],
      context: Buffer.alloc(0),
    });
    assert.deepEqual(r.prs.voterNodes(), ids(1, 2, 3, 4));
    r.step(prop(1));
    const li = r.raftLog.lastIndex();
    r.step(msg(T.MsgAppResp, 2, 1, { term: 1, index: li }));
    assert.ok(r.raftLog.committed < li, '2 of 4 is not a majority');
    r.step(msg(T.MsgAppResp, 4, 1, { term: 1, index: li }));
    assert.equal(r.raftLog.committed, li);
  });

  it('§4.1: only one configuration change may be pending; a second is replaced by an empty entry', () => {
    const r = newTestRaft(1, [1, 2]);
    r.becomeCandidate();
    r.becomeLeader();
    r.raftLog.commitTo(1);
    r.raftLog.appliedTo(1);
    const m1 = msg(T.MsgProp, 1, 1, { entries: [ccEntry(ConfChangeType.ConfChangeAddNode, 3)] });
    const m2 = msg(T.MsgProp, 1, 1, { entries: [ccEntry(ConfChangeType.ConfChangeAddNode, 4)] });
    r.step(m1);
    r.step(m2);
    const ents = r.raftLog.allEntries();
    assert.equal(ents[1].type, EntryType.EntryConfChange);
    assert.equal(ents[2].type, EntryType.EntryNormal, 'second change refused');
    assert.equal(ents[2].data.length, 0);
  });

  it('§4.1: a node with a committed but unapplied conf change does not campaign', () => {
    const r = newTestRaft(1, [1, 2, 3]);
    r.becomeFollower(1, 0n);
    r.raftLog.append([{ ...ccEntry(ConfChangeType.ConfChangeAddNode, 4), term: 1, index: 1 }]);
    r.raftLog.commitTo(1);
    r.step(msg(T.MsgHup, 1, 1));
    assert.equal(r.state, StateType.Follower);
  });

  it('§4.3: in a joint configuration an entry commits only with majorities of both old and new voters', () => {
    const r = newTestRaft(1, [1, 2, 3]);
    r.becomeCandidate();
    r.becomeLeader();
    r.applyConfChange({
      transition: ConfChangeTransition.ConfChangeTransitionJointExplicit,
      changes: [
        { type: ConfChangeType.ConfChangeAddNode, nodeId: 4n },
        { type: ConfChangeType.ConfChangeAddNode, nodeId: 5n },
        { type: ConfChangeType.ConfChangeRemoveNode, nodeId: 2n },
        { type: ConfChangeType.ConfChangeRemoveNode, nodeId: 3n },
      ],
      context: Buffer.alloc(0),
    });
    assert.equal(r.prs.config.toString(), 'voters=(1 4 5)&&(1 2 3)');
    r.step(prop(1));
    const li = r.raftLog.lastIndex();
    r.step(msg(T.MsgAppResp, 4, 1, { term: 1, index: li }));
    assert.ok(r.raftLog.committed < li, 'new majority alone is not enough');
    r.step(msg(T.MsgAppResp, 2, 1, { term: 1, index: li }));
    assert.equal(r.raftLog.committed, li, 'both majorities');
    // Leaving the joint config: the old voters are dropped.
    r.applyConfChange({
      transition: ConfChangeTransition.ConfChangeTransitionAuto,
      changes: [],
      context: Buffer.alloc(0),
    });
    assert.equal(r.prs.config.toString(), 'voters=(1 4 5)');
    assert.equal(r.prs.progress.has(2n), false);
  });

  it('§4.3: with auto-leave, the leader proposes leaving the joint configuration once it is applied', () => {
    const st = MemoryStorage.withVoters(ids(1));
    const rn = new RawNode({ id: 1n, electionTick: 10, heartbeatTick: 1, storage: st });
    rn.campaign();
    const drain = () => {
      while (rn.hasReady()) {
        const rd = rn.ready();
        st.append(rd.entries);
        if (rd.hardState) st.setHardState(rd.hardState);
        for (const e of rd.committedEntries) {
          if (e.type === EntryType.EntryConfChangeV2) {
            rn.applyConfChange(ConfChangeV2.decode(e.data));
          }
        }
        rn.advance(rd);
      }
    };
    drain();
    rn.proposeConfChange({
      transition: ConfChangeTransition.ConfChangeTransitionAuto,
      changes: [
        { type: ConfChangeType.ConfChangeAddLearnerNode, nodeId: 2n },
        { type: ConfChangeType.ConfChangeAddLearnerNode, nodeId: 3n },
      ],
      context: Buffer.alloc(0),
    });
    drain();
    assert.equal(rn.raft.prs.config.toString(), 'voters=(1) learners=(2 3)', 'entered and auto-left');
    assert.equal(rn.raft.prs.config.autoLeave, false);
  });

  it('§4.2.2: a leader that is removed from the configuration steps down', () => {
    const r = newTestRaft(1, [1, 2, 3]);
    r.becomeCandidate();
    r.becomeLeader();
    r.applyConfChange({
      transition: ConfChangeTransition.ConfChangeTransitionAuto,
      changes: [{ type: ConfChangeType.ConfChangeRemoveNode, nodeId: 1n }],
      context: Buffer.alloc(0),
    });
    assert.equal(r.state, StateType.Follower);
    assert.equal(r.promotable(), false);
  });

  it('§4.1: simple (non-joint) changes may not alter more than one voter at a time', () => {
    const r = newTestRaft(1, [1, 2, 3]);
    const add = (id: bigint) => ({ type: ConfChangeType.ConfChangeAddNode, nodeId: id });
    assert.throws(() => Changer.of(r.prs, 1).simple([add(4n), add(5n)]), /more than one voter/);
    assert.doesNotThrow(() => Changer.of(r.prs, 1).simple([add(4n)]));
    // The same two changes are fine through joint consensus.
    assert.doesNotThrow(() => Changer.of(r.prs, 1).enterJoint(false, [add(4n), add(5n)]));
  });
});

describe('learners (thesis §4.2.1)', () => {
  it('§4.2.1: a learner never campaigns', () => {
    const r = newTestRaft(3, [1, 2], 10, 1, MemoryStorage.withVoters(ids(1, 2), ids(3)));
    assert.equal(r.isLearner, true);
    tickN(r, 100);
    assert.equal(r.state, StateType.Follower);
    assert.equal(readMessages(r).length, 0);
  });

  it('§4.2.1: a learner receives the log but does not count toward commit or votes', () => {
    const st = () => MemoryStorage.withVoters(ids(1, 2), ids(3));
    const nt = new Network([
      newTestRaft(1, [], 10, 1, st()),
      newTestRaft(2, [], 10, 1, st()),
      newTestRaft(3, [], 10, 1, st()),
    ]);
    nt.hup(1);
    const l = nt.get(1);
    assert.equal(l.state, StateType.Leader);
    assert.equal(l.prs.voterNodes().length, 2, 'the learner is not asked for a vote');
    nt.send(prop(1));
    assert.equal(nt.get(3).raftLog.lastIndex(), l.raftLog.lastIndex(), 'learner replicated');
    nt.isolate(2);
    nt.send(prop(1));
    assert.ok(l.raftLog.committed < l.raftLog.lastIndex(), 'leader + learner is not a quorum');
  });

  it('§4.2.1: promoting a learner makes it a voter that counts', () => {
    const r = newTestRaft(1, [], 10, 1, MemoryStorage.withVoters(ids(1, 2), ids(3)));
    r.applyConfChange({
      transition: ConfChangeTransition.ConfChangeTransitionAuto,
      changes: [{ type: ConfChangeType.ConfChangeAddNode, nodeId: 3n }],
      context: Buffer.alloc(0),
    });
    assert.deepEqual(r.prs.voterNodes(), ids(1, 2, 3));
    assert.equal(r.prs.progress.get(3n)!.isLearner, false);
  });
});

describe('snapshots and compaction (thesis chapter 5)', () => {
  it('§5 (thesis): a follower whose next entries were compacted receives a snapshot, restores it and resumes replication', () => {
    const st1 = MemoryStorage.withVoters(ids(1, 2, 3));
    const nt = new Network([
      newTestRaft(1, [], 10, 1, st1),
      newTestRaft(2, [1, 2, 3]),
      newTestRaft(3, [1, 2, 3]),
    ]);
    nt.hup(1);
    nt.isolate(3);
    for (let i = 0; i < 5; i++) nt.send(prop(1));
    const l = nt.get(1);
    // Persist and compact the leader's log.
    st1.append(l.raftLog.unstableEntries().slice());
    l.raftLog.stableTo(l.raftLog.lastIndex(), l.term);
    st1.createSnapshot(l.raftLog.committed, undefined, Buffer.from('snap'));
    st1.compact(l.raftLog.committed);
    nt.recover();
    l.prs.progress.get(3n)!.recentActive = true;
    nt.send(msg(T.MsgBeat, 1, 1));
    const f = nt.get(3);
    assert.ok(nt.delivered.some((m) => m.type === T.MsgSnap && m.to === 3n));
    assert.equal(f.raftLog.committed, l.raftLog.committed);
    assert.equal(f.raftLog.hasPendingSnapshot(), true);
    l.step(msg(T.MsgSnapStatus, 3, 1));
    nt.send(prop(1));
    nt.send(msg(T.MsgBeat, 1, 1));
    assert.equal(l.prs.progress.get(3n)!.state, ProgressState.Replicate);
    assert.equal(f.raftLog.lastIndex(), l.raftLog.lastIndex());
  });

  it('§5 (thesis): a snapshot at or below the commit index is ignored', () => {
    const r = newTestRaft(2, [1, 2]);
    r.becomeFollower(2, 1n);
    r.raftLog.append([
      { term: 1, index: 1, type: 0, data: Buffer.alloc(0) },
      { term: 1, index: 2, type: 0, data: Buffer.alloc(0) },
    ]);
    r.raftLog.commitTo(2);
    const ok = r.restore({
      data: Buffer.alloc(0),
      metadata: {
        index: 2,
        term: 1,
        confState: {
          voters: ids(1, 2),
          learners: [],
          votersOutgoing: [],
          learnersNext: [],
          autoLeave: false,
        },
      },
    });
    assert.equal(ok, false);
  });

  it('§5 (thesis): a snapshot whose last entry is already in our log only fast-forwards the commit index', () => {
    const r = newTestRaft(2, [1, 2]);
    r.becomeFollower(2, 1n);
    r.raftLog.append([
      { term: 1, index: 1, type: 0, data: Buffer.alloc(0) },
      { term: 1, index: 2, type: 0, data: Buffer.alloc(0) },
      { term: 2, index: 3, type: 0, data: Buffer.alloc(0) },
    ]);
    const cs = { voters: ids(1, 2), learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false };
    assert.equal(r.restore({ data: Buffer.alloc(0), metadata: { index: 2, term: 1, confState: cs } }), false);
    assert.equal(r.raftLog.committed, 2);
    assert.equal(r.raftLog.lastIndex(), 3, 'log kept');
  });

  it('a follower restoring a snapshot takes its configuration and knows its own match', () => {
    const r = newTestRaft(2, [1, 2]);
    r.becomeFollower(2, 1n);
    const cs = {
      voters: ids(1, 2, 3),
      learners: ids(4),
      votersOutgoing: [],
      learnersNext: [],
      autoLeave: false,
    };
    assert.equal(r.restore({ data: Buffer.alloc(0), metadata: { index: 7, term: 2, confState: cs } }), true);
    assert.equal(r.prs.config.toString(), 'voters=(1 2 3) learners=(4)');
    assert.equal(r.prs.progress.get(2n)!.match, 7);
    assert.equal(r.raftLog.committed, 7);
  });

  it('a failed snapshot send returns the follower to probing after a pause', () => {
    const l = newTestRaft(1, [1, 2]);
    l.becomeCandidate();
    l.becomeLeader();
    const pr = l.prs.progress.get(2n)!;
    pr.becomeSnapshot(10);
    l.step(msg(T.MsgSnapStatus, 2, 1, { reject: true }));
    assert.equal(pr.state, ProgressState.Probe);
    assert.equal(pr.pendingSnapshot, 0);
    assert.equal(pr.isPaused(), true);
  });
});

describe('replication flow control and forwarding', () => {
  it('§5.3 pipelining: a replicating follower gets at most maxInflight unacknowledged MsgApps; a heartbeat response frees one', () => {
    const r = newTestRaft(1, [1, 2], 10, 1, undefined, { maxInflightMsgs: 3 });
    r.becomeCandidate();
    r.becomeLeader();
    r.step(msg(T.MsgAppResp, 2, 1, { term: 1, index: 1 }));
    readMessages(r);
    for (let i = 0; i < 10; i++) r.step(prop(1));
    assert.equal(readMessages(r).filter((m) => m.type === T.MsgApp).length, 3);
    r.step(msg(T.MsgHeartbeatResp, 2, 1, { term: 1 }));
    const out = readMessages(r).filter((m) => m.type === T.MsgApp);
    assert.equal(out.length, 1);
  });

  it('§5.3 probing: a follower in probe state gets one MsgApp until it answers', () => {
    const r = newTestRaft(1, [1, 2]);
    r.becomeCandidate();
    r.becomeLeader();
    r.bcastAppend();
    readMessages(r);
    r.step(prop(1));
    r.step(prop(1));
    assert.equal(readMessages(r).filter((m) => m.type === T.MsgApp).length, 0);
  });

  it('followers forward proposals to the leader; without a leader (or with forwarding disabled) they are dropped', () => {
    const nt = net(3);
    nt.send(prop(2, 'fwd'));
    const l = nt.get(1);
    assert.equal(l.raftLog.allEntries().at(-1)!.data.toString(), 'fwd');
    const lonely = newTestRaft(1, [1, 2, 3]);
    assert.equal(lonely.step(prop(1)), ErrProposalDropped);
    const nf = newTestRaft(2, [1, 2, 3], 10, 1, undefined, { disableProposalForwarding: true });
    nf.becomeFollower(1, 1n);
    assert.equal(nf.step(prop(2)), ErrProposalDropped);
  });

  it('fast backtracking: a leader finds the match point in a follower with a long conflicting tail in a few round trips', () => {
    const terms = (...t: number[]) => t;
    const lead = newTestRaft(1, [1, 2, 3]);
    const leadLog = terms(1, 1, 1, 4, 4, 5, 5, 6, 6, 6);
    lead.raftLog.append(leadLog.map((term, i) => ({ term, index: i + 1, type: 0, data: Buffer.alloc(0) })));
    lead.becomeFollower(7, 0n);
    const foll = newTestRaft(2, [1, 2, 3]);
    const fLog = [1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3];
    foll.raftLog.append(fLog.map((term, i) => ({ term, index: i + 1, type: 0, data: Buffer.alloc(0) })));
    foll.becomeFollower(3, 0n);
    const nt = new Network([lead, foll, newTestRaft(3, [1, 2, 3])]);
    nt.hup(1);
    assert.equal(lead.state, StateType.Leader);
    const rejects = nt.delivered.filter((m) => m.type === T.MsgAppResp && m.from === 2n && m.reject).length;
    assert.ok(rejects <= 3, `too many rejections: ${rejects}`);
    assert.deepEqual(
      foll.raftLog.allEntries().map((e) => e.term),
      lead.raftLog.allEntries().map((e) => e.term),
    );
  });
});

describe('RawNode', () => {
  it('Ready carries entries, hard state and messages; advance makes entries stable and records applied', () => {
    const st = MemoryStorage.withVoters(ids(1));
    const rn = new RawNode({ id: 1n, electionTick: 10, heartbeatTick: 1, storage: st });
    rn.campaign();
    assert.equal(rn.hasReady(), true);
    let rd = rn.ready();
    assert.equal(rd.softState?.raftState, StateType.Leader);
    assert.equal(rd.hardState?.term, 1);
    assert.equal(rd.mustSync, true);
    assert.equal(rd.entries.length, 1);
    assert.deepEqual(
      rd.committedEntries.map((e) => e.index),
      [1],
      'a single voter commits at once',
    );
    st.append(rd.entries);
    st.setHardState(rd.hardState!);
    rn.advance(rd);
    rn.propose(Buffer.from('a'));
    rd = rn.ready();
    assert.equal(rd.entries.length, 1);
    assert.deepEqual(
      rd.committedEntries.map((e) => e.index),
      [2],
    );
    st.append(rd.entries);
    rn.advance(rd);
    assert.equal(rn.status().applied, 2);
    assert.equal(rn.hasReady(), false);
  });

  it('Ready.mustSync: term, vote or entries need a sync before sending; a commit index alone does not', () => {
    const st = MemoryStorage.withVoters(ids(1, 2));
    const rn = new RawNode({ id: 2n, electionTick: 10, heartbeatTick: 1, storage: st });
    rn.step(msg(T.MsgVote, 1, 2, { term: 1 }));
    let rd = rn.ready();
    assert.equal(rd.mustSync, true, 'vote and term changed');
    rn.advance(rd);
    rn.step(
      msg(T.MsgApp, 1, 2, {
        term: 1,
        index: 0,
        logTerm: 0,
        entries: [{ term: 1, index: 1, type: 0, data: Buffer.alloc(0) }],
      }),
    );
    rd = rn.ready();
    assert.equal(rd.mustSync, true, 'entries');
    st.append(rd.entries);
    rn.advance(rd);
    rn.step(msg(T.MsgHeartbeat, 1, 2, { term: 1, commit: 1 }));
    rd = rn.ready();
    assert.equal(rd.hardState?.commit, 1);
    assert.equal(rd.mustSync, false, 'commit only');
  });

  it('bootstrap writes the initial members as committed conf change entries at term 1 (as etcd does)', () => {
    const st = new MemoryStorage();
    const rn = new RawNode({ id: 1n, electionTick: 10, heartbeatTick: 1, storage: st });
    rn.bootstrap([{ id: 1n }, { id: 2n }, { id: 3n }]);
    const rd = rn.ready();
    assert.equal(rd.entries.length, 3);
    assert.ok(rd.entries.every((e) => e.type === EntryType.EntryConfChange && e.term === 1));
    assert.equal(rd.hardState?.commit, 3);
    assert.equal(rd.committedEntries.length, 3);
    assert.deepEqual(rn.raft.prs.voterNodes(), ids(1, 2, 3));
  });

  it('step refuses local message types and responses from non-members', () => {
    const rn = new RawNode({
      id: 1n,
      electionTick: 10,
      heartbeatTick: 1,
      storage: MemoryStorage.withVoters(ids(1, 2)),
    });
    assert.notEqual(rn.step(msg(T.MsgHup, 1, 1)), null);
    assert.notEqual(rn.step(msg(T.MsgAppResp, 9, 1, { term: 1 })), null);
  });
});
