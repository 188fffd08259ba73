// The watchable store against etcd's watch guarantees: ordered, unique, reliable (no gaps), atomic
// (a revision's events in one delivery), resumable (start revision), bookmarkable (progress), plus
// filters, prev_kv, IDs, compaction, and flow control (a blocked stream among live ones).
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import fc from 'fast-check';
import { type Event, Event_EventType } from '../gen/mvccpb/kv.js';
import { tempDirs } from '../testing/temp_dirs.js';
import { MvccStore } from './store.js';
import { encodedEvent, wireEvent } from './watch_codec.js';
import { prefixEnd, WatcherIndex } from './watch_index.js';
import {
  INVALID_WATCH_ID,
  WatchableStore,
  type WatchableStoreOptions,
  type WatchDelivery,
  WatchError,
  WatchErrors,
  type WatchStream,
} from './watchable_store.js';

const opened: Array<{ s: MvccStore; w: WatchableStore }> = [];
after(async () => {
  for (const { s, w } of opened) {
    w.close();
    await s.close();
  }
});
// registered after the stores' close, so the directories go once nothing has them open
const tmp = tempDirs('watch-test-');

function open(opts: WatchableStoreOptions = {}): { s: MvccStore; w: WatchableStore } {
  const s = MvccStore.open({ dir: tmp(), noSync: true });
  const w = new WatchableStore(s, opts);
  const r = { s, w };
  opened.push(r);
  return r;
}

const B = (s: string) => Buffer.from(s, 'latin1');
const ALL = Buffer.alloc(0); // from-key end
let ci = 0;

function put(s: MvccStore, key: string, value: string): number {
  return s.applyBatch(++ci, () => {
    const t = s.txnWrite();
    t.put(B(key), B(value), 0n);
    return t.end();
  });
}

function del(s: MvccStore, key: string, end?: string): number {
  return s.applyBatch(++ci, () => {
    const t = s.txnWrite();
    t.deleteRange(B(key), end === undefined ? undefined : B(end));
    return t.end();
  });
}

function txn(s: MvccStore, ops: Array<[string, string | null]>): number {
  return s.applyBatch(++ci, () => {
    const t = s.txnWrite();
    for (const [k, v] of ops) {
      if (v === null) t.deleteRange(B(k), undefined);
      else t.put(B(k), B(v), 0n);
    }
    return t.end();
  });
}

/** A sink that records deliveries; `full` makes send() report a full buffer. */
class Sink {
  got: WatchDelivery[] = [];
  full = false;
  send = (d: WatchDelivery): boolean => {
    // encode now, as the api layer does, so lazily read prevKvs are read at delivery time
    for (const ev of d.events) encodedEvent(ev, d.prevKv);
    this.got.push({ ...d, events: d.events.map((e) => wireEvent(e, d.prevKv)) });
    return !this.full;
  };
  /** [watchId, revision, "PUT k=v" | "DELETE k"...] per delivery */
  summary(): Array<[number, number, string[]]> {
    return this.got.map((d) => [d.watchId, d.revision, d.events.map(show)]);
  }
  events(id?: number): Event[] {
    return this.got.filter((d) => id === undefined || d.watchId === id).flatMap((d) => [...d.events]);
  }
}

function show(e: Event): string {
  const k = e.kv!.key.toString('latin1');
  const p = e.prevKv ? ` (prev ${e.prevKv.value.toString('latin1')})` : '';
  return e.type === Event_EventType.PUT
    ? `PUT ${k}=${e.kv!.value.toString('latin1')}@${e.kv!.modRevision}${p}`
    : `DELETE ${k}@${e.kv!.modRevision}${p}`;
}

const turn = () => new Promise<void>((r) => setImmediate(r));
async function settle(w: WatchableStore, max = 10_000): Promise<void> {
  for (let i = 0; i < max; i++) {
    await turn();
    const st = w.stats();
    if (st.unsynced === 0) {
      await turn();
      return;
    }
  }
  throw new Error(`watchers did not sync: ${JSON.stringify(w.stats())}`);
}

function stream(w: WatchableStore): { sink: Sink; ws: WatchStream } {
  const sink = new Sink();
  return { sink, ws: w.newStream(sink) };
}

describe('WatcherIndex', () => {
  test('prefixEnd is etcd GetPrefixRangeEnd', () => {
    assert.deepEqual(prefixEnd(B('abc')), B('abd'));
    assert.deepEqual(prefixEnd(Buffer.from([0x61, 0xff])), B('b'));
    assert.deepEqual(prefixEnd(Buffer.from([0xff, 0xff])), Buffer.from([0]));
  });

  test('matches single keys, prefixes, from-key and ranges, and nothing else', () => {
    const idx = new WatcherIndex<{ key: Buffer; end: Buffer | undefined; n: string }>();
    const ws = [
      { key: B('foo'), end: undefined, n: 'key foo' },
      { key: B('foo'), end: B('fop'), n: 'prefix foo' },
      { key: B('f'), end: B('g'), n: 'prefix f' },
      { key: B('fo'), end: ALL, n: 'from fo' },
      { key: B('a'), end: B('fooz'), n: 'range a-fooz' },
      { key: B('\x00'), end: ALL, n: 'all' },
      { key: B('zz'), end: ALL, n: 'from zz' },
    ];
    for (const w of ws) idx.add(w);
    const m = (k: string) => {
      const out: string[] = [];
      idx.forEachMatch(B(k), k, (w) => out.push(w.n));
      return out.sort();
    };
    assert.deepEqual(m('foo'), ['all', 'from fo', 'key foo', 'prefix f', 'prefix foo', 'range a-fooz']);
    assert.deepEqual(m('foox'), ['all', 'from fo', 'prefix f', 'prefix foo', 'range a-fooz']);
    assert.deepEqual(m('fa'), ['all', 'prefix f', 'range a-fooz']);
    assert.deepEqual(m('zzz'), ['all', 'from fo', 'from zz']);
    assert.deepEqual(m('0'), ['all']);
    idx.delete(ws[1]);
    idx.delete(ws[5]);
    assert.deepEqual(m('foox'), ['from fo', 'prefix f', 'range a-fooz']);
    assert.equal(idx.size, 5);
  });
});

describe('WatchableStore', () => {
  test('live events: only matching keys, one delivery per revision at its revision', () => {
    const { s, w } = open();
    const { sink, ws } = stream(w);
    const a = ws.watch({ key: B('foo') });
    const b = ws.watch({ key: B('foo'), end: prefixEnd(B('foo')) });
    const c = ws.watch({ key: B('a'), end: B('c') });
    assert.deepEqual([a, b, c], [0, 1, 2]);
    put(s, 'foo', '1'); // rev 2
    put(s, 'foo/bar', '2'); // rev 3
    put(s, 'bar', '3'); // rev 4
    put(s, 'zzz', '4'); // rev 5: nobody
    del(s, 'foo'); // rev 6
    assert.deepEqual(sink.summary(), [
      [0, 2, ['PUT foo=1@2']],
      [1, 2, ['PUT foo=1@2']],
      [1, 3, ['PUT foo/bar=2@3']],
      [2, 4, ['PUT bar=3@4']],
      [0, 6, ['DELETE foo@6']],
      [1, 6, ['DELETE foo@6']],
    ]);
  });

  test('atomic: all events of a txn revision arrive in one delivery', () => {
    const { s, w } = open();
    const { sink, ws } = stream(w);
    ws.watch({ key: B('k'), end: prefixEnd(B('k')) });
    put(s, 'k2', 'old');
    txn(s, [
      ['k1', 'a'],
      ['k2', null],
      ['x', 'outside'],
      ['k3', 'c'],
    ]);
    assert.deepEqual(sink.summary(), [
      [0, 2, ['PUT k2=old@2']],
      [0, 3, ['PUT k1=a@3', 'DELETE k2@3', 'PUT k3=c@3']],
    ]);
  });

  test('IDs: auto from 0 skipping taken ones, client-chosen, duplicates refused, empty range refused', () => {
    const { w } = open();
    const { ws } = stream(w);
    assert.equal(ws.watch({ key: B('a'), id: 1 }), 1);
    assert.equal(ws.watch({ key: B('a') }), 0);
    assert.equal(ws.watch({ key: B('a') }), 2);
    assert.throws(() => ws.watch({ key: B('a'), id: 2 }), new WatchError(WatchErrors.duplicateId));
    assert.throws(() => ws.watch({ key: B('b'), end: B('a') }), new WatchError(WatchErrors.emptyRange));
    assert.throws(() => ws.watch({ key: B('b'), end: B('b') }), new WatchError(WatchErrors.emptyRange));
    assert.equal(ws.watch({ key: B('b'), end: ALL }), 3);
    assert.equal(ws.cancel(2), true);
    assert.equal(ws.cancel(2), false);
    assert.equal(ws.cancel(77), false);
    // a canceled ID is free again: the next auto ID continues upward, as etcd's nextID does
    assert.equal(ws.watch({ key: B('a') }), 4);
    assert.equal(ws.watch({ key: B('a'), id: 2 }), 2);
  });

  test('cancel stops events; close stops everything', () => {
    const { s, w } = open();
    const { sink, ws } = stream(w);
    const id = ws.watch({ key: B('a') });
    put(s, 'a', '1');
    ws.cancel(id);
    put(s, 'a', '2');
    assert.equal(sink.got.length, 1);
    ws.watch({ key: B('a') });
    ws.close();
    put(s, 'a', '3');
    assert.equal(sink.got.length, 1);
    assert.deepEqual(w.stats(), { streams: 0, synced: 0, unsynced: 0, blockedStreams: 0 });
  });

  test('filters: NOPUT and NODELETE; a revision filtered to nothing sends nothing', () => {
    const { s, w } = open();
    const { sink, ws } = stream(w);
    const noPut = ws.watch({ key: B('a'), noPut: true });
    const noDel = ws.watch({ key: B('a'), noDelete: true });
    put(s, 'a', '1');
    del(s, 'a');
    assert.deepEqual(sink.summary(), [
      [noDel, 2, ['PUT a=1@2']],
      [noPut, 3, ['DELETE a@3']],
    ]);
  });

  test('prev_kv: live and from history; none for a create', async () => {
    const { s, w } = open();
    const { sink, ws } = stream(w);
    ws.watch({ key: B('a'), prevKv: true });
    put(s, 'a', '1');
    put(s, 'a', '2');
    del(s, 'a');
    const live = sink.summary();
    assert.deepEqual(live, [
      [0, 2, ['PUT a=1@2']],
      [0, 3, ['PUT a=2@3 (prev 1)']],
      [0, 4, ['DELETE a@4 (prev 2)']],
    ]);
    const h = stream(w);
    h.ws.watch({ key: B('a'), prevKv: true, startRevision: 1 });
    h.ws.watch({ key: B('a'), startRevision: 1 });
    await settle(w);
    assert.deepEqual(h.sink.summary(), [
      [0, 4, ['PUT a=1@2', 'PUT a=2@3 (prev 1)', 'DELETE a@4 (prev 2)']],
      [1, 4, ['PUT a=1@2', 'PUT a=2@3', 'DELETE a@4']],
    ]);
  });

  test('resumable: a past start revision replays history, then goes live with no gap or repeat', async () => {
    const { s, w } = open({ historyBlockRevs: 7, stepsPerTurn: 1 });
    for (let i = 0; i < 50; i++) put(s, `k${i % 5}`, `v${i}`); // revs 2..51
    const { sink, ws } = stream(w);
    ws.watch({ key: B('k'), end: prefixEnd(B('k')), startRevision: 10 });
    // writes while the watcher is catching up
    for (let i = 50; i < 80; i++) {
      put(s, `k${i % 5}`, `v${i}`);
      if (i % 3 === 0) await turn();
    }
    await settle(w);
    put(s, 'k1', 'last');
    const revs = sink.events().map((e) => e.kv!.modRevision);
    assert.deepEqual(
      revs,
      Array.from({ length: 73 }, (_, i) => i + 10),
    );
    // header revisions never go backwards and cover the events they carry
    let prev = 0;
    for (const d of sink.got) {
      assert.ok(d.revision >= prev);
      assert.ok(d.revision >= d.events[d.events.length - 1]!.kv!.modRevision);
      prev = d.revision;
    }
  });

  test('catching up through large values: reads shrink, nothing is lost, responses stay bounded', async () => {
    const { s, w } = open({ mergeBytes: 2 * 1024 * 1024 });
    const big = 'x'.repeat(700 * 1024);
    for (let i = 0; i < 24; i++) put(s, `big${i % 3}`, `${i}${big}`); // ~17 MB of history
    const a = stream(w);
    const b = stream(w);
    a.ws.watch({ key: B('big'), end: prefixEnd(B('big')), startRevision: 1 });
    b.ws.watch({ key: B('big1'), startRevision: 1 });
    await settle(w);
    assert.deepEqual(
      a.sink.events().map((e) => e.kv!.value.subarray(0, 2).toString()),
      Array.from({ length: 24 }, (_, i) => `${i}${big}`.slice(0, 2)),
    );
    assert.equal(b.sink.events().length, 8);
    for (const d of a.sink.got) {
      const bytes = d.events.reduce((n, e) => n + e.kv!.value.length, 0);
      assert.ok(bytes <= 3 * 1024 * 1024, `a catch-up response of ${bytes} bytes`);
    }
  });

  test('restore: a replaced store (snapshot from the leader) is caught up from, then watched live', async () => {
    const { s, w } = open();
    const { sink, ws } = stream(w);
    ws.watch({ key: B('k') });
    put(s, 'k', 'old'); // 2
    const s2 = MvccStore.open({ dir: tmp(), noSync: true });
    put(s2, 'k', 'a'); // 2 (the watcher has seen revision 2 already)
    put(s2, 'x', 'b'); // 3
    put(s2, 'k', 'c'); // 4
    w.restore(s2);
    await settle(w);
    put(s, 'k', 'ignored'); // the old store no longer matters
    put(s2, 'k', 'd'); // 5
    assert.deepEqual(sink.summary(), [
      [0, 2, ['PUT k=old@2']],
      [0, 4, ['PUT k=c@4']],
      [0, 5, ['PUT k=d@5']],
    ]);
    w.restore(s);
    await s2.close();
  });

  test('a future start revision reports only from that revision', () => {
    const { s, w } = open();
    const { sink, ws } = stream(w);
    ws.watch({ key: B('a'), startRevision: 4 });
    put(s, 'a', '1'); // 2
    put(s, 'a', '2'); // 3
    put(s, 'a', '3'); // 4
    assert.deepEqual(sink.summary(), [[0, 4, ['PUT a=3@4']]]);
  });

  test('compacted start revision: canceled with compact_revision; at the compaction revision: what remains', async () => {
    const { s, w } = open();
    put(s, 'a', '1'); // 2
    put(s, 'b', '1'); // 3
    del(s, 'b'); // 4
    put(s, 'a', '2'); // 5
    await s.compact(4).done;
    const { sink, ws } = stream(w);
    const old = ws.watch({ key: B('a'), startRevision: 2 });
    const atC = ws.watch({ key: B('\x00'), end: ALL, startRevision: 4 });
    const after = ws.watch({ key: B('a'), startRevision: 5 });
    await settle(w);
    assert.deepEqual(
      sink.got.find((d) => d.watchId === old),
      {
        watchId: old,
        revision: 0,
        events: [],
        prevKv: false,
        fragment: false,
        compactRevision: 4,
      },
    );
    assert.equal(ws.cancel(old), false, 'the compacted watcher is gone');
    // etcd reads what is stored at the compaction revision itself: the delete of b there is gone
    assert.deepEqual(sink.events(atC).map(show), ['PUT a=2@5']);
    assert.deepEqual(sink.events(after).map(show), ['PUT a=2@5']);
  });

  test('progress request: at once when synced, only after catching up otherwise', async () => {
    const { s, w } = open({ historyBlockRevs: 4, stepsPerTurn: 1 });
    for (let i = 0; i < 20; i++) put(s, 'a', `${i}`);
    const { sink, ws } = stream(w);
    ws.requestProgress();
    assert.deepEqual(sink.summary(), [[INVALID_WATCH_ID, 21, []]]);
    sink.got = [];
    ws.watch({ key: B('a'), startRevision: 2 });
    ws.requestProgress();
    assert.equal(sink.got.length, 0);
    await settle(w);
    const last = sink.got[sink.got.length - 1]!;
    assert.deepEqual([last.watchId, last.revision, last.events.length], [INVALID_WATCH_ID, 21, 0]);
    assert.equal(sink.events(0).length, 20, 'every event came before the progress notification');
  });

  test('progress notify: each tick reports, except the first tick after events', () => {
    // ticks are driven by hand so that the assertions do not depend on timer accuracy under load
    const { s, w } = open({ progressIntervalMs: 3_600_000 });
    const { sink, ws } = stream(w);
    ws.watch({ key: B('a'), progressNotify: true });
    ws.watch({ key: B('b') });
    w.progressTick(ws);
    assert.deepEqual(sink.summary(), [[0, 1, []]], 'only the watcher that asked for progress');
    put(s, 'a', '1');
    w.progressTick(ws);
    assert.deepEqual(
      sink.summary().slice(1),
      [[0, 2, ['PUT a=1@2']]],
      'the tick after an event sends nothing',
    );
    w.progressTick(ws);
    assert.deepEqual(sink.summary().slice(2), [[0, 2, []]], 'the next one reports again');
    ws.close();
  });

  test('progress notify: the stream timer ticks by itself and stops when the stream closes', async () => {
    const { w } = open({ progressIntervalMs: 20 });
    const { sink, ws } = stream(w);
    ws.watch({ key: B('a'), progressNotify: true });
    const deadline = Date.now() + 5_000;
    while (sink.got.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    assert.ok(sink.got.length >= 2, `two periodic notifications within 5 s (got ${sink.got.length})`);
    for (const d of sink.got) assert.deepEqual([d.watchId, d.revision, d.events.length], [0, 1, 0]);
    ws.close();
    const n = sink.got.length;
    await new Promise((r) => setTimeout(r, 80));
    assert.equal(sink.got.length, n, 'nothing after close');
  });

  test('slow consumer: a blocked stream gets nothing, others everything; it catches up on resume', async () => {
    const { s, w } = open({ historyBlockRevs: 64 });
    const fast = Array.from({ length: 5 }, () => stream(w));
    for (const f of fast) f.ws.watch({ key: B('k'), end: prefixEnd(B('k')) });
    const slow = stream(w);
    slow.ws.watch({ key: B('k'), end: prefixEnd(B('k')) });
    slow.ws.watch({ key: B('k3') });
    slow.sink.full = true;
    const N = 3000;
    for (let i = 0; i < N; i++) {
      txn(s, [
        [`k${i % 7}`, `v${i}`],
        [`k${(i + 3) % 7}`, `w${i}`],
      ]);
      // fast streams have every revision as soon as it commits
      for (const f of fast) assert.equal(f.sink.got.length, i + 1);
    }
    // the slow one got one delivery (the one that filled it) and nothing since: no buffering
    assert.equal(slow.sink.got.length, 1);
    assert.deepEqual(w.stats(), { streams: 6, synced: 5, unsynced: 2, blockedStreams: 1 });
    slow.sink.full = false;
    slow.ws.resume();
    await settle(w);
    put(s, 'k3', 'live');
    const all = slow.sink.events(0);
    assert.equal(all.length, 2 * N + 1);
    assert.deepEqual(
      all.map((e) => e.kv!.modRevision),
      [...Array.from({ length: N }, (_, i) => [i + 2, i + 2]).flat(), N + 2],
    );
    const k3 = slow.sink.events(1);
    assert.ok(k3.every((e) => e.kv!.key.toString() === 'k3'));
    assert.deepEqual(
      k3.map(show),
      fast[0]!.sink
        .events()
        .filter((e) => e.kv!.key.toString() === 'k3')
        .map(show),
    );
    assert.deepEqual(w.stats(), { streams: 6, synced: 7, unsynced: 0, blockedStreams: 0 });
    for (const f of fast) assert.equal(f.sink.events().length, 2 * N + 1);
  });

  test('slow consumer compacted meanwhile: canceled with the compaction revision', async () => {
    const { s, w } = open();
    const slow = stream(w);
    slow.ws.watch({ key: B('a') });
    slow.sink.full = true;
    put(s, 'a', '1'); // 2 fills the buffer
    put(s, 'a', '2'); // 3
    put(s, 'a', '3'); // 4
    await s.compact(4).done;
    slow.sink.full = false;
    slow.ws.resume();
    await settle(w);
    assert.deepEqual(
      slow.sink.got.map((d) => [d.watchId, d.compactRevision, d.events.length]),
      [
        [0, 0, 1],
        [0, 4, 0],
      ],
    );
    assert.deepEqual(slow.ws.ids(), []);
  });

  test('a stream blocked mid-revision: watchers not yet served get that revision later', async () => {
    const { s, w } = open();
    const { sink, ws } = stream(w);
    for (let i = 0; i < 4; i++) ws.watch({ key: B('a') });
    let n = 0;
    sink.send = (d) => {
      sink.got.push(d);
      return ++n !== 2; // the second delivery of revision 2 fills the buffer
    };
    put(s, 'a', '1');
    assert.equal(sink.got.length, 2);
    put(s, 'a', '2');
    assert.equal(sink.got.length, 2);
    ws.resume();
    await settle(w);
    const byId = new Map<number, number[]>();
    for (const d of sink.got)
      for (const e of d.events) byId.set(d.watchId, [...(byId.get(d.watchId) ?? []), e.kv!.modRevision]);
    for (let id = 0; id < 4; id++) assert.deepEqual(byId.get(id), [2, 3], `watcher ${id}`);
  });

  test('property: replaying a watcher\u2019s events rebuilds the store at every revision', async () => {
    const keyArb = fc.constantFrom('a', 'b', 'c', 'd', 'e');
    const opArb = fc.oneof(
      fc.record({ t: fc.constant('put' as const), k: keyArb, v: fc.string({ maxLength: 3 }) }),
      fc.record({ t: fc.constant('del' as const), k: keyArb, e: fc.option(keyArb, { nil: undefined }) }),
      fc.record({
        t: fc.constant('txn' as const),
        ops: fc.uniqueArray(fc.tuple(keyArb, fc.option(fc.string({ maxLength: 2 }), { nil: null })), {
          minLength: 1,
          maxLength: 4,
          selector: (x) => x[0],
        }),
      }),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(opArb, fc.boolean(), fc.boolean()), { minLength: 1, maxLength: 60 }),
        fc.integer({ min: 1, max: 9 }),
        async (steps, blockRevs) => {
          const { s, w } = open({ historyBlockRevs: blockRevs, stepsPerTurn: 1 });
          const live = stream(w);
          live.ws.watch({ key: B('\x00'), end: ALL, prevKv: true });
          const flaky = stream(w); // blocks and resumes at random
          let started = false;
          for (const [op, block, resume] of steps) {
            if (op.t === 'put') put(s, op.k, op.v);
            else if (op.t === 'del') del(s, op.k, op.e !== undefined && op.e > op.k ? op.e : undefined);
            else txn(s, op.ops);
            if (!started) {
              flaky.ws.watch({ key: B('\x00'), end: ALL, startRevision: 1 });
              started = true;
            }
            flaky.sink.full = block;
            if (resume) {
              flaky.sink.full = false;
              flaky.ws.resume();
              await turn();
            }
          }
          flaky.sink.full = false;
          flaky.ws.resume();
          await settle(w);
          for (const sink of [live.sink, flaky.sink]) {
            const state = new Map<string, string>();
            const evs = sink.events();
            let i = 0;
            let lastRev = 1;
            for (let rev = 2; rev <= s.currentRevision; rev++) {
              for (; i < evs.length && evs[i]!.kv!.modRevision === rev; i++) {
                const e = evs[i]!;
                if (e.type === Event_EventType.PUT)
                  state.set(e.kv!.key.toString('latin1'), e.kv!.value.toString('latin1'));
                else state.delete(e.kv!.key.toString('latin1'));
              }
              assert.ok(i === evs.length || evs[i]!.kv!.modRevision > rev, 'events in revision order');
              const expect = new Map(
                s
                  .range(B('\x00'), Buffer.from([0]), { rev })
                  .kvs.map((kv) => [kv.key.toString('latin1'), kv.value.toString('latin1')]),
              );
              assert.deepEqual(state, expect, `state at revision ${rev}`);
              lastRev = rev;
            }
            assert.equal(i, evs.length, 'no events beyond the current revision');
            assert.equal(lastRev, s.currentRevision);
          }
          // prev_kv of every live update is the value the replay had before it
          const seen = new Map<string, string>();
          for (const e of live.sink.events()) {
            const k = e.kv!.key.toString('latin1');
            assert.equal(e.prevKv?.value.toString('latin1'), seen.get(k));
            if (e.type === Event_EventType.PUT) seen.set(k, e.kv!.value.toString('latin1'));
            else seen.delete(k);
          }
          opened.pop();
          w.close();
          await s.close();
        },
      ),
      { numRuns: 60 },
    );
  });
});
