// Unit tests of the linearizability checker (helpers/porcupine.ts) on small hand-made histories, so
// that it demonstrably rejects non-linearizable ones.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  checkOperations,
  type KvInput,
  type KvOperation,
  type KvOutput,
  kvModel,
} from './helpers/porcupine.js';

let clientSeq = 0;
function op(
  input: KvInput,
  output: KvOutput | undefined,
  call: number,
  ret: number,
  client = clientSeq++,
): KvOperation {
  return { client, input, output, call, ret };
}
const get = (key: string, value: string | null, call: number, ret: number) =>
  op({ op: 'get', key }, { value }, call, ret);
const put = (key: string, value: string, call: number, ret: number) =>
  op({ op: 'put', key, value }, { ok: true }, call, ret);
const putUnknown = (key: string, value: string, call: number) =>
  op({ op: 'put', key, value }, undefined, call, 0);
const cas = (
  key: string,
  expect: string | null,
  value: string,
  succeeded: boolean | undefined,
  call: number,
  ret: number,
) => op({ op: 'cas', key, expect, value }, succeeded === undefined ? undefined : { succeeded }, call, ret);

const check = (h: KvOperation[], initial: Record<string, string | null> = {}) =>
  checkOperations(kvModel(initial), h, 5000).result;

test('sequential register histories', () => {
  assert.equal(check([]), 'ok');
  assert.equal(check([put('x', '1', 0, 1), get('x', '1', 2, 3)]), 'ok');
  assert.equal(check([get('x', null, 0, 1), put('x', '1', 2, 3), get('x', '1', 4, 5)]), 'ok');
  // a stale read after a completed write
  assert.equal(check([put('x', '1', 0, 1), get('x', null, 2, 3)]), 'illegal');
  // a read of a value never written
  assert.equal(check([put('x', '1', 0, 1), get('x', '2', 2, 3)]), 'illegal');
  assert.equal(check([get('x', 'a', 0, 1)], { x: 'a' }), 'ok');
  assert.equal(check([get('x', null, 0, 1)], { x: 'a' }), 'illegal');
});

test('concurrent operations may take effect in either order', () => {
  // the read overlaps the write: old or new value are both fine
  assert.equal(check([put('x', '1', 0, 10), get('x', null, 1, 2)]), 'ok');
  assert.equal(check([put('x', '1', 0, 10), get('x', '1', 1, 2)]), 'ok');
  // two overlapping writes, then reads that agree on the later one
  assert.equal(
    check([put('x', '1', 0, 10), put('x', '2', 1, 9), get('x', '1', 11, 12), get('x', '1', 13, 14)]),
    'ok',
  );
  // ...but once a read saw 1 after both returned, a later read cannot see 2
  assert.equal(
    check([put('x', '1', 0, 10), put('x', '2', 1, 9), get('x', '1', 11, 12), get('x', '2', 13, 14)]),
    'illegal',
  );
  // two reads overlapping one write: new then old is not linearizable (the new-old inversion)
  assert.equal(check([put('x', '1', 0, 100), get('x', '1', 10, 20), get('x', null, 30, 40)]), 'illegal');
  assert.equal(check([put('x', '1', 0, 100), get('x', null, 10, 20), get('x', '1', 30, 40)]), 'ok');
});

test('compare-and-swap', () => {
  assert.equal(check([cas('x', 'a', 'b', true, 0, 1), get('x', 'b', 2, 3)], { x: 'a' }), 'ok');
  assert.equal(check([cas('x', 'a', 'b', false, 0, 1)], { x: 'a' }), 'illegal');
  assert.equal(check([cas('x', 'z', 'b', true, 0, 1)], { x: 'a' }), 'illegal');
  // two clients CAS from the same value, sequentially: only one may succeed
  assert.equal(
    check([cas('x', 'a', 'b', true, 0, 1), cas('x', 'a', 'c', true, 2, 3)], { x: 'a' }),
    'illegal',
  );
  // concurrently: still only one may succeed
  assert.equal(
    check([cas('x', 'a', 'b', true, 0, 10), cas('x', 'a', 'c', true, 1, 9)], { x: 'a' }),
    'illegal',
  );
  assert.equal(
    check([cas('x', 'a', 'b', true, 0, 10), cas('x', 'a', 'c', false, 1, 9), get('x', 'b', 11, 12)], {
      x: 'a',
    }),
    'ok',
  );
  // a CAS that failed although the value matched in every possible order
  assert.equal(check([put('x', 'a', 0, 1), cas('x', 'a', 'b', false, 2, 3)]), 'illegal');
  // ...but a concurrent write explains the failure
  assert.equal(check([put('x', 'a', 0, 1), put('x', 'q', 2, 5), cas('x', 'a', 'b', false, 3, 4)]), 'ok');
});

test('unknown outcomes may take effect later or never', () => {
  // a timed-out write that was applied (seen later) ...
  assert.equal(check([putUnknown('x', '1', 0), get('x', '1', 50, 51)]), 'ok');
  // ... or never applied
  assert.equal(check([putUnknown('x', '1', 0), get('x', null, 50, 51)]), 'ok');
  // but it cannot take effect before it was invoked
  assert.equal(check([get('x', '1', 0, 1), putUnknown('x', '1', 5)]), 'illegal');
  // and once seen it cannot be un-applied
  assert.equal(check([putUnknown('x', '1', 0), get('x', '1', 50, 51), get('x', null, 60, 61)]), 'illegal');
  // an unknown CAS: either outcome, decided by the state where it lands
  assert.equal(check([cas('x', 'a', 'b', undefined, 0, 0), get('x', 'b', 10, 11)], { x: 'a' }), 'ok');
  assert.equal(check([cas('x', 'z', 'b', undefined, 0, 0), get('x', 'b', 10, 11)], { x: 'a' }), 'illegal');
  // failed reads are dropped
  assert.equal(check([op({ op: 'get', key: 'x' }, undefined, 0, 1), put('x', '1', 2, 3)]), 'ok');
});

test('keys are independent partitions', () => {
  assert.equal(
    check([put('x', '1', 0, 1), put('y', '2', 2, 3), get('x', '1', 4, 5), get('y', '2', 4, 5)]),
    'ok',
  );
  assert.equal(check([put('x', '1', 0, 1), put('y', '2', 2, 3), get('x', '2', 4, 5)]), 'illegal');
  const r = checkOperations(kvModel(), [put('x', '1', 0, 1), put('y', '2', 2, 3), get('y', '1', 4, 5)], 1000);
  assert.equal(r.result, 'illegal');
  if (r.result === 'illegal')
    assert.ok(
      r.longest.some((s) => s.includes('put(y, 2)')),
      r.longest.join('\n'),
    );
});

test('a larger concurrent history: linearizable, and a single corrupted read is caught', () => {
  // 6 clients doing overlapping writes and reads on one key, generated from a known linearization
  let seed = 42;
  const rand = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
  const h: KvOperation[] = [];
  let value: string | null = null;
  let t = 0;
  for (let i = 0; i < 300; i++) {
    // each op takes effect at time t; its interval is stretched randomly around t
    t += 1;
    const call = t - rand() * 5;
    const ret = t + rand() * 5;
    const r = rand();
    if (r < 0.4) {
      value = `v${i}`;
      h.push(put('k', value, call, ret));
    } else if (r < 0.6) {
      const expect = rand() < 0.5 ? value : 'nope';
      const ok = expect === value;
      const nv = `c${i}`;
      h.push(cas('k', expect, nv, ok, call, ret));
      if (ok) value = nv;
    } else if (r < 0.65) {
      value = `u${i}`;
      h.push(putUnknown('k', value, call));
    } else {
      h.push(get('k', value, call, ret));
    }
  }
  // a generous time budget: proving "illegal" explores more of the search space, and CI machines are busy
  const slowCheck = (hist: KvOperation[]) => checkOperations(kvModel({}), hist, 60_000).result;
  assert.equal(slowCheck(h), 'ok');
  // flip one late read to a value that had been overwritten long before
  const reads = h.filter((o) => o.input.op === 'get');
  const victim = reads[reads.length - 10]!;
  victim.output = { value: 'v0' };
  assert.equal(slowCheck(h), 'illegal');
});
