// A member restarted after the others compacted their raft logs catches up by snapshot: the leader
// streams a merged snapshot with a bbolt copy of its backend over /raft/snapshot (etcd's protocol),
// the member swaps the backend in and goes on from there. With etcd-ts members only, and (where
// Debian's etcd is installed) with a real etcd 3.4 member catching up from an etcd-ts leader.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Cluster, sleep } from './helpers/cluster.js';
import { ETCD_TS_BIN, etcdctl, hasEtcdctl, hasRealEtcd, REAL_ETCD } from './helpers/process.js';

const noCtl = hasEtcdctl() ? false : 'etcdctl not installed';
const SNAPSHOT_COUNT = 50;
/** entries the leader keeps after a snapshot: small, so 400 writes compact the log past a stopped member */
const CATCHUP = ['--experimental-snapshot-catchup-entries', '20'];

async function putMany(c: Cluster, names: string[], prefix: string, n: number): Promise<void> {
  const client = c.client(names);
  for (let i = 0; i < n; i += 20) {
    await Promise.all(
      Array.from({ length: Math.min(20, n - i) }, (_, j) =>
        client.put(`${prefix}${String(i + j).padStart(4, '0')}`).value(`v${i + j}`),
      ),
    );
  }
}

/** Number of keys under prefix as this member alone sees them (a serializable read). */
async function localCount(c: Cluster, name: string, prefix: string): Promise<number> {
  const r = await etcdctl(c.member(name).clientUrl, [
    'get',
    prefix,
    '--prefix',
    '--keys-only',
    '--consistency=s',
    '-w',
    'json',
  ]);
  assert.equal(r.code, 0, r.stderr);
  return Number((JSON.parse(r.stdout) as { count?: number }).count ?? 0);
}

async function waitFor(what: string, timeoutMs: number, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

test('a member restarted after log compaction catches up by snapshot (etcd-ts)', {
  skip: noCtl,
  timeout: 120_000,
}, async () => {
  const c = await Cluster.create({
    snapshotCount: SNAPSHOT_COUNT,
    heartbeatMs: 50,
    electionMs: 500,
    extraArgs: CATCHUP,
  });
  try {
    const leader = await c.waitForLeader();
    const lagging = c.members.find((m) => m.name !== leader)!.name;
    const others = c.members.filter((m) => m.name !== lagging).map((m) => m.name);

    // a lease with a key, known before the member stops
    const client = c.client(others);
    const early = client.lease(600, { autoKeepAlive: false });
    const earlyId = await early.grant();
    await early.put('leased/early').value('1');
    await putMany(c, others, 'before/', 20);
    await c.waitHashKVAgree(15_000);

    await c.kill(lagging);
    // while it is down: many writes (the leader snapshots every 50 and keeps 20 entries), a new lease
    await putMany(c, others, 'during/', 400);
    const late = client.lease(600, { autoKeepAlive: false });
    const lateId = await late.grant();
    await late.put('leased/late').value('2');
    await client.delete().key('before/0003');

    await c.start(lagging);
    const m = c.member(lagging);
    await c.waitForOutput(m, /applied snapshot/, 30_000);
    const out = m.proc!.output();
    assert.match(out, /received and saved database snapshot/);
    assert.match(
      c.member(leader).output() + c.members.map((x) => x.output()).join(''),
      /sending merged snapshot/,
    );

    await c.waitHashKVAgree(30_000);
    assert.equal(await localCount(c, lagging, 'during/'), 400);
    assert.equal(await localCount(c, lagging, 'before/'), 19);

    // leases came with the backend: the member knows both, and the keys attached to them
    const leases = await etcdctl(m.clientUrl, ['lease', 'list']);
    assert.equal(leases.code, 0, leases.stderr);
    for (const id of [earlyId, lateId]) {
      assert.match(leases.stdout, new RegExp(BigInt(id).toString(16)), leases.stdout);
    }
    assert.equal(await localCount(c, lagging, 'leased/'), 2);

    // and it keeps up afterwards, serving writes through itself too
    await putMany(c, [lagging], 'after/', 60);
    await c.waitHashKVAgree(30_000);
    for (const x of c.members) assert.equal(await localCount(c, x.name, 'after/'), 60);

    // a restart of the caught-up member recovers from its own data (the received snapshot included)
    await c.kill(lagging);
    await c.start(lagging);
    await c.waitHashKVAgree(30_000);
    assert.equal(await localCount(c, lagging, 'during/'), 400);
  } catch (err) {
    console.error(c.logs(60));
    throw err;
  } finally {
    await c.close();
  }
});

test('a learner added after the last stored snapshot catches up by a merged snapshot', {
  skip: noCtl,
  timeout: 120_000,
}, async () => {
  const c = await Cluster.create({
    snapshotCount: SNAPSHOT_COUNT,
    heartbeatMs: 50,
    electionMs: 500,
    extraArgs: CATCHUP,
  });
  try {
    await c.waitForLeader();
    const names = c.members.map((m) => m.name);
    // enough writes that the log no longer starts at 1, and the last stored snapshot is recent
    await putMany(c, names, 'k/', 120);
    const m = await c.addMember('infra3');
    const add = await etcdctl(c.endpoints(names), [
      'member',
      'add',
      'infra3',
      `--peer-urls=${m.peerUrl}`,
      '--learner',
    ]);
    assert.equal(add.code, 0, add.stderr);
    await c.start('infra3', { state: 'existing', initialCluster: c.initialCluster() });
    await c.waitForOutput(m, /applied snapshot/, 30_000);
    await waitFor(
      'the learner to hold every key',
      30_000,
      async () => (await localCount(c, 'infra3', 'k/')) === 120,
    );
    // the learner is in the ConfState it received: it keeps replicating and can be promoted
    await putMany(c, names, 'more/', 30);
    await waitFor(
      'the learner to replicate',
      30_000,
      async () => (await localCount(c, 'infra3', 'more/')) === 30,
    );
    const ids = await c.memberIds(names[0]);
    const id = [...ids].find(([, n]) => n === 'infra3')?.[0];
    assert.ok(id, `infra3 in ${JSON.stringify([...ids])}`);
    await waitFor('the learner promotion', 30_000, async () => {
      const r = await etcdctl(c.endpoints(names), ['member', 'promote', BigInt(id).toString(16)]);
      return r.code === 0;
    });
    await c.waitHashKVAgree(30_000);
  } catch (err) {
    console.error(c.logs(60));
    throw err;
  } finally {
    await c.close();
  }
});

test('a real etcd member restarted after log compaction catches up from an etcd-ts leader', {
  skip: noCtl || (hasRealEtcd() ? false : 'etcd not installed'),
  timeout: 180_000,
}, async () => {
  const c = await Cluster.create(
    { names: ['ts0', 'ts1', 'real'], snapshotCount: SNAPSHOT_COUNT, heartbeatMs: 50, electionMs: 500 },
    false,
  );
  const opts = c.opts as { bin: string };
  const startReal = async () => {
    opts.bin = REAL_ETCD;
    try {
      return await c.start('real', { readyText: /ready to serve client requests/ });
    } finally {
      opts.bin = ETCD_TS_BIN;
    }
  };
  try {
    await Promise.all([
      c.start('ts0', { extraArgs: CATCHUP }),
      c.start('ts1', { extraArgs: CATCHUP }),
      startReal(),
    ]);
    let leader = await c.waitForLeader(20_000);
    if (leader === 'real') {
      const ids = await c.memberIds();
      const target = [...ids].find(([, n]) => n === 'ts0')![0];
      const r = await etcdctl(c.member('real').clientUrl, ['move-leader', BigInt(target).toString(16)]);
      assert.equal(r.code, 0, r.stderr);
      leader = await c.waitForLeader(20_000);
    }
    assert.notEqual(leader, 'real');
    await putMany(c, ['ts0', 'ts1'], 'before/', 20);
    await c.waitHashKVAgree(15_000);

    await c.kill('real');
    await putMany(c, ['ts0', 'ts1'], 'during/', 400);

    await startReal();
    const m = c.member('real');
    await waitFor('the real etcd member to apply a snapshot', 30_000, async () =>
      /finished applying incoming snapshot|applied snapshot/.test(m.proc!.output()),
    );
    assert.match(c.member(leader).output(), /sending merged snapshot/);
    await c.waitHashKVAgree(30_000);
    assert.equal(await localCount(c, 'real', 'during/'), 400);

    // the real member still knows its peers (the v2 store in the snapshot) and takes writes
    const list = await etcdctl(m.clientUrl, ['member', 'list']);
    assert.equal(list.code, 0, list.stderr);
    assert.equal(list.stdout.trim().split('\n').length, 3, list.stdout);
    await putMany(c, ['real'], 'after/', 40);
    await c.waitHashKVAgree(30_000);
    for (const x of c.members) assert.equal(await localCount(c, x.name, 'after/'), 40);
  } catch (err) {
    console.error(c.logs(80));
    throw err;
  } finally {
    await c.close();
  }
});

test('an etcd-ts member restarted after log compaction catches up from a real etcd leader', {
  skip: noCtl || (hasRealEtcd() ? false : 'etcd not installed'),
  timeout: 240_000,
}, async () => {
  const c = await Cluster.create(
    { names: ['ts0', 'ts1', 'real'], snapshotCount: SNAPSHOT_COUNT, heartbeatMs: 50, electionMs: 500 },
    false,
  );
  const opts = c.opts as { bin: string };
  const startReal = async () => {
    opts.bin = REAL_ETCD;
    try {
      return await c.start('real');
    } finally {
      opts.bin = ETCD_TS_BIN;
    }
  };
  try {
    await Promise.all([c.start('ts0'), c.start('ts1'), startReal()]);
    let leader = await c.waitForLeader(20_000);
    if (leader !== 'real') {
      const ids = await c.memberIds();
      const target = [...ids].find(([, n]) => n === 'real')![0];
      const r = await etcdctl(c.member(leader).clientUrl, ['move-leader', BigInt(target).toString(16)]);
      assert.equal(r.code, 0, r.stderr);
      leader = await c.waitForLeader(20_000);
    }
    assert.equal(leader, 'real');
    await putMany(c, ['real', 'ts0'], 'before/', 20);
    await c.waitHashKVAgree(15_000);

    await c.kill('ts1');
    // etcd 3.4 keeps 5000 entries after each snapshot: write past that
    await putMany(c, ['real', 'ts0'], 'during/', 5200);

    await c.start('ts1');
    const m = c.member('ts1');
    await c.waitForOutput(m, /applied snapshot/, 60_000);
    await c.waitHashKVAgree(60_000);
    assert.equal(await localCount(c, 'ts1', 'during/'), 5200);
    const list = await etcdctl(m.clientUrl, ['member', 'list']);
    assert.equal(list.code, 0, list.stderr);
    assert.equal(list.stdout.trim().split('\n').length, 3, list.stdout);
    await putMany(c, ['ts1'], 'after/', 40);
    await c.waitHashKVAgree(30_000);
    for (const x of c.members) assert.equal(await localCount(c, x.name, 'after/'), 40);
  } catch (err) {
    console.error(c.logs(80));
    throw err;
  } finally {
    await c.close();
  }
});
