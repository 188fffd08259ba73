// Property tests for the building blocks: quorum arithmetic (majority and joint, thesis §4.3),
// the in-flight window, conf change replay (ConfState round trip) and the wire encoding of messages.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { type ConfChangeSingle, ConfChangeType, Message, MessageType } from '../gen/raftpb/raft.js';
import { Changer, restoreConfState } from './confchange.js';
import { Inflights } from './progress.js';
import { JointConfig, MaxIndex, majorityCommittedIndex, majorityVoteResult, VoteResult } from './quorum.js';
import { ProgressTracker, TrackerConfig } from './tracker.js';
import { newMessage } from './util.js';

const idx = (m: Map<bigint, number>) => ({ ackedIndex: (id: bigint) => m.get(id) });

/** Naive definition: the largest i such that a majority of voters acked >= i. */
function naiveCommitted(voters: bigint[], acked: Map<bigint, number>): number {
  if (voters.length === 0) return MaxIndex;
  let best = 0;
  const cands = new Set([0, ...voters.map((v) => acked.get(v) ?? 0)]);
  for (const i of cands) {
    const n = voters.filter((v) => (acked.get(v) ?? 0) >= i).length;
    if (n > voters.length / 2 && i > best) best = i;
  }
  return best;
}

const voterSet = fc.uniqueArray(fc.integer({ min: 1, max: 9 }), { maxLength: 7 }).map((a) => a.map(BigInt));
const ackMap = fc
  .array(fc.tuple(fc.integer({ min: 1, max: 9 }), fc.integer({ min: 0, max: 20 })))
  .map((a) => new Map(a.map(([k, v]) => [BigInt(k), v] as [bigint, number])));

describe('quorum', () => {
  it('§5.3: majority committed index = the largest index acknowledged by a majority (vs. naive definition)', () => {
    fc.assert(
      fc.property(voterSet, ackMap, (voters, acked) => {
        assert.equal(majorityCommittedIndex(new Set(voters), idx(acked)), naiveCommitted(voters, acked));
      }),
      { numRuns: 500 },
    );
  });

  it('§4.3: a joint committed index is the minimum over both halves', () => {
    fc.assert(
      fc.property(voterSet, voterSet, ackMap, (a, b, acked) => {
        const j = new JointConfig(new Set(a), new Set(b));
        assert.equal(
          j.committedIndex(idx(acked)),
          Math.min(naiveCommitted(a, acked), naiveCommitted(b, acked)),
        );
      }),
      { numRuns: 300 },
    );
  });

  it('§5.2/§4.3: vote results: won with a majority (of both halves), lost when a majority is impossible', () => {
    fc.assert(
      fc.property(
        voterSet,
        fc.array(fc.tuple(fc.integer({ min: 1, max: 9 }), fc.boolean())),
        (voters, vs) => {
          const votes = new Map(vs.map(([k, v]) => [BigInt(k), v] as [bigint, boolean]));
          const res = majorityVoteResult(new Set(voters), votes);
          const yes = voters.filter((v) => votes.get(v) === true).length;
          const no = voters.filter((v) => votes.get(v) === false).length;
          const q = Math.floor(voters.length / 2) + 1;
          const want =
            voters.length === 0 || yes >= q
              ? VoteResult.VoteWon
              : voters.length - no < q
                ? VoteResult.VoteLost
                : VoteResult.VotePending;
          assert.equal(res, want);
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe('inflights', () => {
  it('flow control window behaves like a bounded FIFO of increasing indexes', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 8 }),
        fc.array(fc.oneof(fc.constant(-1), fc.integer({ min: 0, max: 40 }))),
        (size, ops) => {
          const inf = new Inflights(size);
          let model: number[] = [];
          let next = 1;
          for (const op of ops) {
            if (op === -1) {
              if (model.length < size) {
                inf.add(next);
                model.push(next++);
              }
            } else {
              inf.freeLE(op);
              model = model.filter((x) => x > op);
            }
            assert.equal(inf.count, model.length);
            assert.equal(inf.full(), model.length === size);
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('conf change replay', () => {
  const change = fc.record({
    type: fc.constantFrom(
      ConfChangeType.ConfChangeAddNode,
      ConfChangeType.ConfChangeAddLearnerNode,
      ConfChangeType.ConfChangeRemoveNode,
    ),
    nodeId: fc.integer({ min: 1, max: 6 }).map(BigInt),
  });

  it('restoring the ConfState of any reachable configuration (incl. joint) yields the same configuration', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.boolean(), fc.array(change, { minLength: 1, maxLength: 3 })), { maxLength: 8 }),
        (steps) => {
          const t = new ProgressTracker(16);
          [t.config, t.progress] = new Changer(new TrackerConfig(), new Map(), 16, 1).simple([
            { type: ConfChangeType.ConfChangeAddNode, nodeId: 1n },
          ]);
          for (const [joint, ccs] of steps) {
            const chg = Changer.of(t, 10);
            try {
              let res: ReturnType<Changer['simple']>;
              if (t.config.voters.isJoint()) res = chg.leaveJoint();
              else if (joint) res = chg.enterJoint(ccs.length % 2 === 0, ccs as ConfChangeSingle[]);
              else res = chg.simple(ccs.slice(0, 1) as ConfChangeSingle[]);
              [t.config, t.progress] = res;
            } catch {
              // invalid change (e.g. removing all voters): the configuration is unchanged
            }
            const cs = t.confState();
            const [cfg, prs] = restoreConfState(new Changer(new TrackerConfig(), new Map(), 16, 10), cs);
            const t2 = new ProgressTracker(16);
            t2.config = cfg;
            t2.progress = prs;
            assert.deepEqual(t2.confState(), cs);
            assert.deepEqual([...prs.keys()].sort(), [...t.progress.keys()].sort());
          }
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe('wire encoding', () => {
  it('messages round-trip through the raftpb codec with 64-bit node ids and every field', () => {
    const m = newMessage(MessageType.MsgApp, 0xfedcba9876543210n, 0x8000000000000001n, 7);
    m.logTerm = 6;
    m.index = 2 ** 40;
    m.commit = 99;
    m.reject = true;
    m.rejectHint = 12;
    m.context = Buffer.from('ctx');
    m.entries = [{ term: 7, index: 2 ** 40 + 1, type: 2, data: Buffer.from('x') }];
    const back = Message.decode(Message.encode(m).finish());
    assert.equal(back.to, m.to);
    assert.equal(back.from, m.from);
    assert.equal(back.index, m.index);
    assert.equal(back.entries[0].index, m.entries[0].index);
    assert.equal(back.rejectHint, 12);
    assert.equal(back.reject, true);
    assert.equal(Buffer.from(back.context).toString(), 'ctx');
  });
});
