// Unit tests for the rules of the Raft paper (§5.1-§5.4), one rule per test, named by section.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EntryType, MessageType } from '../gen/raftpb/raft.js';
import { Unstable } from './log_unstable.js';
import { StateType } from './raft.js';
import { MemoryStorage } from './storage.js';
import {
  entsWithTerms,
  ids,
  msg,
  Network,
  newTestRaft,
  prop,
  readMessages,
  storageWithTerms,
} from './testing/network.js';

const T = MessageType;

function electedLeader(n = 3) {
  const all = Array.from({ length: n }, (_, i) => i + 1);
  const r = newTestRaft(1, all);
  r.becomeCandidate();
  r.becomeLeader();
  // Every follower acknowledged the leader's empty entry: they are now in Replicate state.
  for (let id = 2; id <= n; id++) r.step(msg(T.MsgAppResp, id, 1, { term: r.term, index: 1 }));
  readMessages(r);
  return r;
}

describe('§5.1 terms', () => {
  it('§5.1: a server seeing a higher term adopts it and reverts to follower (from every state)', () => {
    for (const st of [StateType.Follower, StateType.Candidate, StateType.Leader]) {
      const r = newTestRaft(1, [1, 2, 3]);
      if (st === StateType.Candidate) r.becomeCandidate();
      if (st === StateType.Leader) {
        r.becomeCandidate();
        r.becomeLeader();
      }
      r.step(msg(T.MsgApp, 2, 1, { term: 5 }));
      assert.equal(r.term, 5, StateType[st]);
      assert.equal(r.state, StateType.Follower, StateType[st]);
      assert.equal(r.lead, 2n, 'MsgApp names the new leader');
    }
  });

  it('§5.1: a request with a stale term is rejected (ignored without CheckQuorum/PreVote)', () => {
    const r = newTestRaft(1, [1, 2, 3]);
    r.becomeFollower(3, 2n);
    r.step(msg(T.MsgApp, 2, 1, { term: 2, index: 0, logTerm: 0, entries: entsWithTerms(2) }));
    assert.equal(r.raftLog.lastIndex(), 0);
    assert.equal(readMessages(r).length, 0);
    assert.equal(r.term, 3);
  });

  it('§5.1 (thesis §6.2): with CheckQuorum, a stale leader is answered with our term so it steps down', () => {
    const r = newTestRaft(1, [1, 2, 3], 10, 1, undefined, { checkQuorum: true });
    r.becomeFollower(3, 2n);
    r.step(msg(T.MsgHeartbeat, 3, 1, { term: 2 }));
    const out = readMessages(r);
    assert.equal(out.length, 1);
    assert.equal(out[0].type, T.MsgAppResp);
    assert.equal(out[0].term, 3);
  });
});

describe('§5.2 leader election', () => {
  it('§5.2: servers start as followers', () => {
    const r = newTestRaft(1, [1, 2, 3]);
    assert.equal(r.state, StateType.Follower);
    assert.equal(r.term, 0);
  });

  it('§5.2: a leader sends heartbeats to all followers every heartbeat timeout', () => {
    const r = newTestRaft(1, [1, 2, 3], 10, 1);
    r.becomeCandidate();
    r.becomeLeader();
    r.raftLog.commitTo(1);
    readMessages(r);
    r.tick();
    const out = readMessages(r).sort((a, b) => Number(a.to - b.to));
    assert.deepEqual(
      out.map((m) => [m.type, m.to, m.term]),
      [
        [T.MsgHeartbeat, 2n, 1],
        [T.MsgHeartbeat, 3n, 1],
      ],
    );
  });

  it('§5.2: a follower that hears nothing for an election timeout becomes candidate, bumps term, votes for itself and requests votes', () => {
    for (const st of [StateType.Follower, StateType.Candidate]) {
      const r = newTestRaft(1, [1, 2, 3]);
      if (st === StateType.Candidate) r.becomeCandidate();
      const term0 = r.term;
      for (let i = 0; i < 2 * r.electionTimeout; i++) r.tick();
      assert.equal(r.state, StateType.Candidate);
      assert.equal(r.term, term0 + 1);
      assert.equal(r.vote, 1n);
      const out = readMessages(r).sort((a, b) => Number(a.to - b.to));
      assert.deepEqual(
        out.map((m) => [m.type, m.to, m.term]),
        [
          [T.MsgVote, 2n, term0 + 1],
          [T.MsgVote, 3n, term0 + 1],
        ],
      );
    }
  });

  it('§5.2: a candidate becomes leader with votes from a majority, and only then', () => {
    const cases: [number, Record<number, boolean>, StateType][] = [
      [1, {}, StateType.Leader],
      [3, { 2: true, 3: true }, StateType.Leader],
      [3, { 2: true }, StateType.Leader],
      [5, { 2: true, 3: true, 4: true, 5: true }, StateType.Leader],
      [5, { 2: true, 3: true }, StateType.Leader],
      [3, { 2: false, 3: false }, StateType.Follower],
      [5, { 2: false, 3: false, 4: false }, StateType.Follower],
      [3, {}, StateType.Candidate],
      [5, { 2: true }, StateType.Candidate],
      [5, { 2: false, 3: false }, StateType.Candidate],
    ];
    for (const [size, votes, want] of cases) {
      const all = Array.from({ length: size }, (_, i) => i + 1);
      const r = newTestRaft(1, all);
      r.step(msg(T.MsgHup, 1, 1));
      for (const [id, granted] of Object.entries(votes)) {
        r.step(msg(T.MsgVoteResp, Number(id), 1, { term: r.term, reject: !granted }));
      }
      assert.equal(r.state, want, `size ${size} votes ${JSON.stringify(votes)}`);
      assert.equal(r.term, 1);
    }
  });

  it('§5.2: each server votes for at most one candidate per term, first come first served', () => {
    const r = newTestRaft(1, [1, 2, 3]);
    r.step(msg(T.MsgVote, 2, 1, { term: 1, index: 0, logTerm: 0 }));
    r.step(msg(T.MsgVote, 3, 1, { term: 1, index: 0, logTerm: 0 }));
    r.step(msg(T.MsgVote, 2, 1, { term: 1, index: 0, logTerm: 0 })); // repeat of the granted vote
    const out = readMessages(r);
    assert.deepEqual(
      out.map((m) => [m.to, m.reject]),
      [
        [2n, false],
        [3n, true],
        [2n, false],
      ],
    );
    assert.equal(r.vote, 2n);
  });

  it('§5.2: a candidate that receives AppendEntries from a leader of its term returns to follower', () => {
    const r = newTestRaft(1, [1, 2, 3]);
    r.becomeCandidate();
    r.step(msg(T.MsgApp, 2, 1, { term: r.term }));
    assert.equal(r.state, StateType.Follower);
    assert.equal(r.lead, 2n);
  });

  it('§5.2: election timeouts are randomized in [electionTimeout, 2*electionTimeout)', () => {
    const r = newTestRaft(1, [1, 2, 3], 10, 1);
    const seen = new Set<number>();
    for (let i = 0; i < 300; i++) {
      r.becomeFollower(r.term + 1, 0n);
      const t = r.randomizedElectionTimeout;
      assert.ok(t >= 10 && t < 20, `timeout ${t}`);
      seen.add(t);
    }
    assert.ok(seen.size >= 8, `too little spread: ${[...seen]}`);
  });

  it('§5.2: a split vote times out and a new election starts in a higher term', () => {
    const nt = new Network([newTestRaft(1, [1, 2, 3]), null, null]);
    nt.hup(1);
    const r = nt.get(1);
    assert.equal(r.state, StateType.Candidate);
    assert.equal(r.term, 1);
    for (let i = 0; i < 2 * r.electionTimeout; i++) r.tick();
    assert.equal(r.state, StateType.Candidate);
    assert.equal(r.term, 2);
  });
});

describe('§5.3 log replication', () => {
  it('§5.3: the leader appends a proposal to its log and sends it to every follower', () => {
    const r = electedLeader();
    r.step(prop(1, 'x'));
    assert.equal(r.raftLog.lastIndex(), 2);
    const out = readMessages(r).sort((a, b) => Number(a.to - b.to));
    assert.equal(out.length, 2);
    for (const m of out) {
      assert.equal(m.type, T.MsgApp);
      assert.equal(m.index, 1);
      assert.equal(m.logTerm, 1);
      assert.equal(m.entries.length, 1);
      assert.equal(m.entries[0].data.toString(), 'x');
      assert.equal(m.entries[0].term, 1);
    }
  });

  it('§5.3: an entry is committed once a majority stores it, and the commit index reaches followers', () => {
    for (const size of [1, 3, 5]) {
      const all = Array.from({ length: size }, (_, i) => i + 1);
      const r = newTestRaft(1, all);
      r.becomeCandidate();
      r.becomeLeader();
      readMessages(r);
      r.step(prop(1));
      const li = r.raftLog.lastIndex();
      const before = r.raftLog.committed;
      if (size === 1) {
        assert.equal(before, li);
        continue;
      }
      assert.ok(before < li);
      const q = Math.floor(size / 2) + 1;
      for (let i = 2; i <= q; i++) {
        assert.ok(r.raftLog.committed < li, 'not before a majority');
        r.step(msg(T.MsgAppResp, i, 1, { term: r.term, index: li }));
      }
      assert.equal(r.raftLog.committed, li, `size ${size}`);
      // The new commit index is broadcast.
      const apps = readMessages(r).filter((m) => m.type === T.MsgApp);
      assert.ok(apps.some((m) => m.commit === li));
    }
  });

  it('§5.3: a follower applies the leader commit index only up to the entries it matched', () => {
    const r = newTestRaft(1, [1, 2, 3]);
    r.becomeFollower(2, 2n);
    r.step(msg(T.MsgApp, 2, 1, { term: 2, index: 0, logTerm: 0, entries: entsWithTerms(1, 2), commit: 5 }));
    assert.equal(r.raftLog.committed, 2, 'min(leaderCommit, index of last new entry)');
  });

  it('§5.3: AppendEntries fails the consistency check when the log has no matching previous entry; the reply hints where to retry', () => {
    const st = storageWithTerms([1, 2, 3], 1, 2, 2, 2);
    const r = newTestRaft(1, [1, 2, 3], 10, 1, st);
    r.becomeFollower(3, 2n);
    // Leader probes at index 6 (we only have 4) and at 4 with term 3 (we have term 2 there).
    r.step(msg(T.MsgApp, 2, 1, { term: 3, index: 6, logTerm: 3 }));
    r.step(msg(T.MsgApp, 2, 1, { term: 3, index: 4, logTerm: 3 }));
    r.step(msg(T.MsgApp, 2, 1, { term: 3, index: 4, logTerm: 1 }));
    const out = readMessages(r);
    assert.deepEqual(
      out.map((m) => [m.reject, m.index, m.rejectHint, m.logTerm]),
      [
        [true, 6, 4, 2], // hint: our last index, with its term
        [true, 4, 4, 2],
        [true, 4, 1, 1], // fast backtracking: skip all term-2 entries at once
      ],
    );
  });

  it('§5.3: a follower deletes a conflicting entry and all that follow it, then appends the new ones', () => {
    const st = storageWithTerms([1, 2, 3], 1, 2, 2);
    const r = newTestRaft(1, [1, 2, 3], 10, 1, st);
    r.becomeFollower(3, 2n);
    const ents = [{ term: 3, index: 2, type: EntryType.EntryNormal, data: Buffer.from('n') }];
    r.step(msg(T.MsgApp, 2, 1, { term: 3, index: 1, logTerm: 1, entries: ents }));
    assert.deepEqual(
      r.raftLog.allEntries().map((e) => [e.index, e.term]),
      [
        [1, 1],
        [2, 3],
      ],
    );
    const out = readMessages(r);
    assert.equal(out[0].reject, false);
    assert.equal(out[0].index, 2);
  });

  it('§5.3: entries a follower already has are not truncated by a stale AppendEntries', () => {
    const st = storageWithTerms([1, 2, 3], 1, 1, 1);
    const r = newTestRaft(1, [1, 2, 3], 10, 1, st);
    r.becomeFollower(1, 2n);
    r.step(msg(T.MsgApp, 2, 1, { term: 1, index: 0, logTerm: 0, entries: entsWithTerms(1) }));
    assert.equal(r.raftLog.lastIndex(), 3);
  });

  it('§5.3 (figure 7): a new leader brings every divergent follower log into agreement with its own', () => {
    const leaderTerms = [1, 1, 1, 4, 4, 5, 5, 6, 6, 6];
    const followers = [
      [1, 1, 1, 4, 4, 5, 5, 6, 6], // (a) missing one
      [1, 1, 1, 4], // (b) missing many
      [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6], // (c) extra uncommitted
      [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7], // (d) extra of a later term
      [1, 1, 1, 4, 4, 4, 4], // (e) conflicting
      [1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3], // (f) conflicting from an early point
    ];
    for (const fterms of followers) {
      const lead = newTestRaft(1, [1, 2, 3], 10, 1, storageWithTerms([1, 2, 3], ...leaderTerms));
      lead.becomeFollower(8, 0n);
      const foll = newTestRaft(2, [1, 2, 3], 10, 1, storageWithTerms([1, 2, 3], ...fterms));
      foll.becomeFollower(fterms[fterms.length - 1], 0n);
      // A third voter that grants the vote, so node 1 wins regardless of node 2's log.
      const voter = newTestRaft(3, [1, 2, 3], 10, 1, storageWithTerms([1, 2, 3]));
      const nt = new Network([lead, foll, voter]);
      nt.hup(1);
      assert.equal(lead.state, StateType.Leader);
      nt.send(prop(1));
      const want = lead.raftLog.allEntries().map((e) => `${e.index}/${e.term}`);
      assert.deepEqual(
        foll.raftLog.allEntries().map((e) => `${e.index}/${e.term}`),
        want,
        `follower ${fterms}`,
      );
    }
  });
});

describe('§5.4 safety', () => {
  it('§5.4.1: a vote is denied to a candidate whose log is less up to date (last term, then length)', () => {
    // Voter log: terms [1, 2, 2] (last term 2, last index 3).
    const cases: [number, number, boolean][] = [
      // [candidate last term, candidate last index, granted]
      [1, 10, false],
      [2, 2, false],
      [2, 3, true],
      [2, 4, true],
      [3, 1, true],
    ];
    for (const [lt, li, granted] of cases) {
      const r = newTestRaft(1, [1, 2, 3], 10, 1, storageWithTerms([1, 2, 3], 1, 2, 2));
      r.step(msg(T.MsgVote, 2, 1, { term: 3, logTerm: lt, index: li }));
      const out = readMessages(r);
      assert.equal(out.length, 1);
      assert.equal(out[0].reject, !granted, `candidate (${lt}, ${li})`);
    }
  });

  it('§5.4.2 (figure 8): a leader never commits an entry from an earlier term by counting replicas', () => {
    // Leader of term 3 holds an uncommitted entry of term 2 at index 2.
    const r = newTestRaft(1, [1, 2, 3], 10, 1, storageWithTerms([1, 2, 3], 1, 2));
    r.becomeFollower(2, 0n);
    r.becomeCandidate();
    r.becomeLeader(); // appends the empty entry of term 3 at index 3
    readMessages(r);
    assert.equal(r.term, 3);
    r.step(msg(T.MsgAppResp, 2, 1, { term: 3, index: 2 }));
    assert.equal(r.raftLog.committed, 0, 'index 2 (term 2) is on a majority but must not be committed');
    r.step(msg(T.MsgAppResp, 2, 1, { term: 3, index: 3 }));
    assert.equal(r.raftLog.committed, 3, 'committing the term-3 entry commits index 2 indirectly');
  });

  it('§5.4.3: a candidate missing a committed entry cannot win (leader completeness through elections)', () => {
    // Nodes 1 and 2 have the committed entry of term 1 at index 2; node 3 does not.
    const a = newTestRaft(1, [1, 2, 3], 10, 1, storageWithTerms([1, 2, 3], 1, 1));
    const b = newTestRaft(2, [1, 2, 3], 10, 1, storageWithTerms([1, 2, 3], 1, 1));
    const c = newTestRaft(3, [1, 2, 3], 10, 1, storageWithTerms([1, 2, 3], 1));
    const nt = new Network([a, b, c]);
    nt.hup(3);
    assert.notEqual(c.state, StateType.Leader);
    nt.hup(1);
    assert.equal(a.state, StateType.Leader);
  });
});

describe('storage', () => {
  it('MemoryStorage: entries, term, compaction and snapshots keep indexes consistent', () => {
    const st = MemoryStorage.withVoters(ids(1));
    st.append(entsWithTerms(1, 1, 2, 3, 3));
    assert.equal(st.firstIndex(), 1);
    assert.equal(st.lastIndex(), 5);
    assert.equal(st.term(3), 2);
    assert.equal(st.entries(2, 5, Number.MAX_SAFE_INTEGER).length, 3);
    assert.equal(st.entries(2, 5, 1).length, 1, 'size limit keeps at least one entry');
    st.createSnapshot(3, undefined, Buffer.from('s'));
    st.compact(3);
    assert.equal(st.firstIndex(), 4);
    assert.equal(st.term(3), 2, 'the compaction point keeps its term');
    assert.throws(() => st.term(2));
    assert.throws(() => st.entries(3, 5, 100));
    // Appending over a suffix truncates it.
    st.append([{ term: 4, index: 5, type: 0, data: Buffer.alloc(0) }]);
    assert.equal(st.lastIndex(), 5);
    assert.equal(st.term(5), 4);
  });
});

describe('unstable log', () => {
  it('stableTo ignores a persisted write whose entries were replaced meanwhile (term mismatch)', () => {
    const u = new Unstable(1);
    u.truncateAndAppend(entsWithTerms(1, 1));
    // The entries at 2 were replaced by a new leader's after the write of (2, term 1) started.
    u.truncateAndAppend([{ term: 2, index: 2, type: 0, data: Buffer.alloc(0) }]);
    u.stableTo(2, 1);
    assert.equal(u.entries.length, 2, 'nothing dropped: (2, 1) is no longer our entry');
    u.stableTo(2, 2);
    assert.equal(u.entries.length, 0);
    assert.equal(u.offset, 3);
  });
});
