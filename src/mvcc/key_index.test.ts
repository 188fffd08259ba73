// The key index against a plain model: every key's event list (put or delete, with its revision),
// queried at every revision still readable, through puts, deletes, reverted batches and compactions.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { type IndexUndo, TreeIndex } from './key_index.js';
import { RevisionSet } from './revision.js';

interface ModelEvent {
  main: number;
  sub: number;
  tombstone: boolean;
  /** creation revision and version of a put (compaction drops history, not these) */
  created: number;
  version: number;
}

/** What get(atRev) must answer, from the key's events (oldest first). */
function modelGet(events: ModelEvent[], atRev: number) {
  let i = events.length - 1;
  while (i >= 0 && events[i].main > atRev) i--;
  if (i < 0 || events[i].tombstone) return undefined;
  const e = events[i];
  return { main: e.main, sub: e.sub, created: e.created, version: e.version };
}

function appendPut(evs: ModelEvent[], main: number, sub: number): void {
  const last = evs[evs.length - 1];
  const live = last !== undefined && !last.tombstone;
  evs.push({
    main,
    sub,
    tombstone: false,
    created: live ? last.created : main,
    version: live ? last.version + 1 : 1,
  });
}

type Op =
  | { kind: 'put'; key: number; subs: number; lease: number }
  | { kind: 'del'; key: number }
  | { kind: 'revertedPut'; key: number }
  | { kind: 'compact'; back: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant('put' as const),
      key: fc.nat(5),
      subs: fc.nat(2),
      lease: fc.nat(2),
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('del' as const), key: fc.nat(5) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('revertedPut' as const), key: fc.nat(5) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('compact' as const), back: fc.nat(6) }) },
);

const keyOf = (k: number) => Buffer.from(`k${k}`);

test('the key index answers like a model of per-key event lists, through reverts and compactions', () => {
  fc.assert(
    fc.property(fc.array(opArb, { maxLength: 80 }), (ops) => {
      const idx = new TreeIndex();
      const model = new Map<number, ModelEvent[]>();
      let rev = 0;
      let compactRev = 0;
      for (const op of ops) {
        if (op.kind === 'put') {
          // a txn putting the key (subs + 1) times at one main revision
          rev++;
          for (let sub = 0; sub <= op.subs; sub++) {
            idx.put(keyOf(op.key), rev, sub, BigInt(op.lease));
            const evs = model.get(op.key) ?? [];
            appendPut(evs, rev, sub);
            model.set(op.key, evs);
          }
        } else if (op.kind === 'del') {
          rev++;
          const existed = idx.tombstone(keyOf(op.key), rev, 0);
          const evs = model.get(op.key) ?? [];
          const live = evs.length > 0 && !evs[evs.length - 1].tombstone;
          assert.equal(existed, live);
          if (live) evs.push({ main: rev, sub: 0, tombstone: true, created: 0, version: 0 });
        } else if (op.kind === 'revertedPut') {
          const undo: IndexUndo[] = [];
          idx.put(keyOf(op.key), rev + 1, 0, 7n, undo);
          idx.tombstone(keyOf(op.key), rev + 1, 1, undo);
          for (let i = undo.length - 1; i >= 0; i--) idx.revert(undo[i]);
        } else {
          const at = Math.max(compactRev, rev - op.back);
          const keep = new RevisionSet();
          for (const [k, evs] of model) {
            const ki = idx.getKeyIndex(keyOf(k));
            if (ki === undefined) continue;
            if (ki.compact(at, keep)) idx.deleteKey(keyOf(k).toString('latin1'));
            // the model drops what compaction drops: everything at or below `at` but the latest put
            let i = evs.length - 1;
            while (i >= 0 && evs[i].main > at) i--;
            if (i >= 0) evs.splice(0, evs[i].tombstone ? i + 1 : i);
          }
          compactRev = at;
        }
      }
      for (const [k, evs] of model) {
        const ki = idx.getKeyIndex(keyOf(k));
        if (evs.length === 0) {
          assert.equal(ki, undefined, `key ${k} should be gone`);
          continue;
        }
        assert.ok(ki, `key ${k} missing`);
        for (let at = compactRev; at <= rev + 1; at++) {
          assert.deepEqual(ki.get(at), modelGet(evs, at), `key ${k} at ${at}`);
        }
        const last = evs[evs.length - 1];
        assert.deepEqual(ki.latest(), last.tombstone ? undefined : modelGet(evs, rev));
      }
    }),
    { numRuns: 300 },
  );
});

test('a key never deleted keeps one generation; zero sub-revisions need no second list', () => {
  const idx = new TreeIndex();
  for (let r = 1; r <= 20; r++) idx.put(Buffer.from('a'), r, 0, 0n);
  const ki = idx.getKeyIndex(Buffer.from('a'))!;
  assert.equal(ki.generations, 1);
  assert.equal(ki.subs, null);
  assert.equal(ki.mains.length, 20);
  idx.put(Buffer.from('a'), 21, 3, 0n);
  assert.deepEqual(ki.get(21), { main: 21, sub: 3, created: 1, version: 21 });
  assert.deepEqual(ki.get(5), { main: 5, sub: 0, created: 1, version: 5 });
  idx.tombstone(Buffer.from('a'), 22, 0);
  assert.equal(ki.generations, 2);
  assert.equal(ki.get(22), undefined);
  assert.equal(ki.latest(), undefined);
});
