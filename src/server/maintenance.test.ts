// Unit tests: alarms (etcd's bucket layout and strings), quota costs, retention parsing and the
// automatic compaction schedules (with a fake clock).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { AlarmMember, AlarmRequest_AlarmAction, AlarmType } from '../gen/etcdserverpb/rpc.js';
import { Backend } from '../mvcc/backend.js';
import { AlarmStore, alarmString } from './alarms.js';
import { type Clock, parseGoDuration, parseRetention, startAutoCompactor } from './auto_compactor.js';
import { cost, KV_OVERHEAD, Quota } from './quota.js';

class FakeClock implements Clock {
  t = 0;
  private timers: Array<{ at: number; fn: () => void; live: boolean }> = [];
  now() {
    return this.t;
  }
  setTimeout(fn: () => void, ms: number) {
    const timer = { at: this.t + ms, fn, live: true };
    this.timers.push(timer);
    return { cancel: () => (timer.live = false) };
  }
  async advance(ms: number) {
    const end = this.t + ms;
    for (;;) {
      const next = this.timers.filter((x) => x.live && x.at <= end).sort((a, b) => a.at - b.at)[0];
      if (!next) break;
      this.t = next.at;
      next.live = false;
      next.fn();
      for (let i = 0; i < 5; i++) await Promise.resolve();
    }
    this.t = end;
  }
}

describe('alarms', () => {
  it('persists alarms as etcd does (key = encoded AlarmMember) and prints etcd strings', () => {
    const dir = mkdtempSync(join(tmpdir(), 'alarms-'));
    const b = new Backend({ dir, noSync: true });
    try {
      const store = new AlarmStore(b.bucket('alarm'));
      const changes: string[] = [];
      const onChange = (c: { raised?: unknown; cleared?: unknown }) =>
        changes.push(c.raised ? 'raised' : 'cleared');
      const act = {
        action: AlarmRequest_AlarmAction.ACTIVATE,
        memberID: 13668033151171901709n,
        alarm: AlarmType.NOSPACE,
      };
      b.write(() => store.apply(act, onChange));
      b.write(() => store.apply(act, onChange)); // idempotent
      assert.deepEqual(changes, ['raised']);
      const keys = [...(b.bucket('alarm').getKeys({}) as Iterable<Buffer>)];
      assert.equal(keys.length, 1);
      assert.deepEqual(AlarmMember.decode(keys[0]!), { memberID: act.memberID, alarm: AlarmType.NOSPACE });
      assert.equal(alarmString(store.get()[0]!), 'memberID:13668033151171901709 alarm:NOSPACE ');
      assert.ok(store.has(AlarmType.NOSPACE));
      assert.equal(store.get(AlarmType.CORRUPT).length, 0);
      const get = store.apply({ action: AlarmRequest_AlarmAction.GET, memberID: 0n, alarm: AlarmType.NONE });
      assert.equal(get.alarms.length, 1);
      const off = b.write(() =>
        store.apply({ ...act, action: AlarmRequest_AlarmAction.DEACTIVATE }, onChange),
      );
      assert.equal(off.alarms.length, 1);
      assert.deepEqual(changes, ['raised', 'cleared']);
      assert.equal(store.get().length, 0);
      // a rolled-back batch takes its alarm with it
      assert.throws(() =>
        b.write(() => {
          store.apply(act);
          throw new Error('abort');
        }),
      );
      assert.equal(store.get().length, 0);
    } finally {
      void b.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('quota', () => {
  it('estimates costs as etcd does and compares against the file size', () => {
    const put = {
      key: Buffer.from('k'),
      value: Buffer.alloc(100),
      lease: 0n,
      prevKv: false,
      ignoreValue: false,
      ignoreLease: false,
    };
    assert.equal(cost({ put }), KV_OVERHEAD + 101);
    const txn = {
      compare: [],
      success: [{ requestPut: put }, { requestPut: put }],
      failure: [{ requestDeleteRange: { key: Buffer.from('x') } }],
    } as never;
    assert.equal(cost({ txn }), 2 * (KV_OVERHEAD + 101));
    assert.equal(cost({ leaseGrant: {} }), 64);
    let size = 1000;
    const q = new Quota(2000, () => size);
    assert.ok(q.available({ put }));
    assert.equal(new Quota(0, () => 0).limit, 2 * 1024 * 1024 * 1024);
    size = 1700;
    const q2 = new Quota(2000, () => size);
    assert.ok(!q2.available({ put }));
    assert.ok(q2.available({ txn: { compare: [], success: [], failure: [] } as never }), 'no puts: free');
  });
});

describe('auto compaction', () => {
  it('parses retention like etcd', () => {
    assert.equal(parseRetention('periodic', '1'), 3_600_000);
    assert.equal(parseRetention('periodic', '30m'), 1_800_000);
    assert.equal(parseRetention('periodic', '1h30m'), 5_400_000);
    assert.equal(parseRetention('revision', '1000'), 1000);
    assert.equal(parseRetention('periodic', '0'), 0);
    assert.equal(parseGoDuration('1.5s'), 1500);
    assert.throws(() => parseRetention('periodic', 'abc'), /error parsing CompactionRetention/);
  });

  it('periodic: compacts at the revision of one period ago, then every period/10 slot', async () => {
    const clock = new FakeClock();
    let rev = 1;
    const compacted: number[] = [];
    const c = startAutoCompactor(
      { mode: 'periodic', retention: 10_000 },
      { rev: () => rev, compact: async (r) => void compacted.push(r), log: () => {}, clock },
    )!;
    // one revision per second
    for (let s = 0; s < 9; s++) {
      await clock.advance(1000);
      rev++;
    }
    assert.deepEqual(compacted, [], 'nothing before one period has passed');
    await clock.advance(1000);
    rev++;
    assert.deepEqual(compacted, [1], 'at one period: the revision recorded one period ago');
    await clock.advance(10_000);
    assert.ok(compacted.length >= 2);
    assert.ok(compacted.at(-1)! > compacted[0]!);
    c.stop();
  });

  it('revision: compacts at current - retention every interval, skipping repeats', async () => {
    const clock = new FakeClock();
    let rev = 5;
    const compacted: number[] = [];
    const c = startAutoCompactor(
      { mode: 'revision', retention: 10 },
      {
        rev: () => rev,
        compact: async (r) => void compacted.push(r),
        log: () => {},
        clock,
        revisionIntervalMs: 1000,
      },
    )!;
    await clock.advance(1000);
    assert.deepEqual(compacted, [], 'rev - retention <= 0');
    rev = 25;
    await clock.advance(1000);
    await clock.advance(1000);
    assert.deepEqual(compacted, [15], 'same revision is not compacted twice');
    rev = 40;
    await clock.advance(1000);
    assert.deepEqual(compacted, [15, 30]);
    c.stop();
    assert.equal(
      startAutoCompactor(
        { mode: 'revision', retention: 0 },
        { rev: () => 1, compact: async () => {}, log: () => {} },
      ),
      undefined,
    );
  });
});
