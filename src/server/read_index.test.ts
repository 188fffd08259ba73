// LinearizableReads on its own: reads of one event-loop turn share one ReadIndex round, a round is
// served once its index is applied, and rounds fail cleanly (timeout, no leader, stop).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { Errors } from './errors.js';
import { LinearizableReads, type ReadIndexDeps } from './read_index.js';
import { WaitRegistry } from './wait.js';

function harness(over: Partial<ReadIndexDeps> = {}) {
  const asked: Buffer[] = [];
  let applied = 0;
  let id = 0n;
  const deps: ReadIndexDeps = {
    readIndex: (ctx) => asked.push(ctx),
    leaderKnown: () => true,
    waitForLeader: () => Promise.resolve(),
    newId: () => ++id,
    applied: () => applied,
    timeoutMs: () => 10_000,
    ...over,
  };
  const reads = new LinearizableReads(deps);
  return {
    reads,
    asked,
    setApplied(i: number) {
      applied = i;
      reads.onApplied(i);
    },
  };
}

/** Records which of the given promises have settled, and how. */
function track(ps: Promise<unknown>[]) {
  const state: string[] = ps.map(() => 'pending');
  for (const [i, p] of ps.entries()) {
    p.then(
      () => {
        state[i] = 'ok';
      },
      (e) => {
        state[i] = `err:${(e as Error).message}`;
      },
    );
  }
  return state;
}

test('reads of one turn share one ReadIndex round, answered once its index is applied', async () => {
  const h = harness();
  const state = track([h.reads.notify(), h.reads.notify(), h.reads.notify()]);
  await nextTurn();
  assert.equal(h.asked.length, 1, 'one round for the three reads');
  h.reads.onReadStates([{ index: 7, requestCtx: h.asked[0] }]);
  await nextTurn();
  assert.deepEqual(state, ['pending', 'pending', 'pending'], 'index 7 is not applied yet');
  h.setApplied(6);
  await nextTurn();
  assert.deepEqual(state, ['pending', 'pending', 'pending']);
  h.setApplied(7);
  await nextTurn();
  assert.deepEqual(state, ['ok', 'ok', 'ok']);
});

test('a read arriving after a round started waits for the next round; unknown contexts are ignored', async () => {
  const h = harness();
  h.setApplied(10);
  const first = track([h.reads.notify()]);
  await nextTurn();
  const second = track([h.reads.notify()]);
  await nextTurn();
  assert.equal(h.asked.length, 2);
  assert.notDeepEqual(h.asked[0], h.asked[1], 'each round has its own context');
  h.reads.onReadStates([{ index: 3, requestCtx: Buffer.from('someone else') }]);
  h.reads.onReadStates([{ index: 3, requestCtx: h.asked[1] }]);
  await nextTurn();
  assert.deepEqual(first, ['pending']);
  assert.deepEqual(second, ['ok']);
});

test('a round the leader never answers times out; stopping fails what is left', async () => {
  const h = harness({ timeoutMs: () => 20 });
  const timedOut = track([h.reads.notify()]);
  await new Promise((r) => setTimeout(r, 60));
  assert.deepEqual(timedOut, [`err:${Errors.timeout.message}`]);
  const stopped = track([h.reads.notify()]);
  h.reads.failAll(Errors.stopped);
  await nextTurn();
  assert.deepEqual(stopped, [`err:${Errors.stopped.message}`]);
});

test('without a leader the round waits for one, and fails with its error', async () => {
  let leader = false;
  let release: (() => void) | undefined;
  const h = harness({
    leaderKnown: () => leader,
    waitForLeader: () =>
      new Promise<void>((resolve) => {
        release = resolve;
      }),
  });
  const state = track([h.reads.notify()]);
  await nextTurn();
  assert.equal(h.asked.length, 0, 'no ReadIndex without a leader');
  leader = true;
  release!();
  await nextTurn();
  assert.equal(h.asked.length, 1);
  h.reads.onReadStates([{ index: 0, requestCtx: h.asked[0] }]);
  await nextTurn();
  assert.deepEqual(state, ['ok']);

  const h2 = harness({ leaderKnown: () => false, waitForLeader: () => Promise.reject(Errors.noLeader) });
  const failed = track([h2.reads.notify()]);
  await nextTurn();
  await nextTurn();
  assert.deepEqual(failed, [`err:${Errors.noLeader.message}`]);
});

test('a wait with a deadline fails with its error unless the result comes first', async () => {
  const w = new WaitRegistry();
  const late = track([w.register(1n, 20, Errors.timeout)]);
  const onTime = track([w.register(2n, 1000, Errors.timeout)]);
  w.trigger(2n, { ok: true });
  await new Promise((r) => setTimeout(r, 60));
  assert.deepEqual(late, [`err:${Errors.timeout.message}`]);
  assert.deepEqual(onTime, ['ok']);
  w.trigger(1n, 'too late'); // no-op: nobody waits any more
  assert.equal(w.size, 0);
});
