// Membership changes on a running three-member cluster, with writes going on: a fourth member joins as
// a learner (etcdctl member add --learner, started with --initial-cluster-state existing), is promoted,
// another member is removed; and leadership is handed over with etcdctl move-leader.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { assertAllAcked, Cluster, sleep, WriteLoad, within } from './helpers/cluster.js';
import { etcdctl, hasEtcdctl } from './helpers/process.js';

const noCtl = hasEtcdctl() ? false : 'etcdctl not installed';

interface ListedMember {
  id: string;
  status: string;
  name: string;
  peerURLs: string;
  clientURLs: string;
  isLearner: boolean;
}

async function memberList(endpoints: string): Promise<ListedMember[]> {
  const r = await etcdctl(endpoints, ['member', 'list']);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout
    .trim()
    .split('\n')
    .map((line) => {
      const [id, status, name, peerURLs, clientURLs, learner] = line.split(', ');
      return {
        id: id!,
        status: status!,
        name: name!,
        peerURLs: peerURLs!,
        clientURLs: clientURLs!,
        isLearner: learner === 'true',
      };
    });
}

/** Retries an etcdctl command while it fails with `retryOn` (e.g. a learner that has not caught up). */
async function etcdctlRetry(endpoints: string, args: string[], retryOn: RegExp, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await etcdctl(endpoints, args);
    if (r.code === 0 || !retryOn.test(r.stderr) || Date.now() > deadline) return r;
    await sleep(300);
  }
}

test('add a learner, promote it, remove another member, with writes going on', {
  skip: noCtl,
  timeout: 120_000,
}, async () => {
  const c = await Cluster.create();
  let load: WriteLoad | undefined;
  try {
    await c.waitForLeader();
    load = new WriteLoad(c, 4, 'mem/');
    const progress = async (what: string) => {
      const n = load!.acked.size;
      await sleep(1000);
      assert.ok(
        load!.acked.size > n + 10,
        `writes did not continue ${what}: ${n} -> ${load!.acked.size}; ${load!.errors.slice(-3).join('; ')}`,
      );
    };
    await progress('at the start');

    // etcdctl member add --learner prints the environment for the new member
    const m3 = await c.addMember('infra3');
    const add = await etcdctl(c.endpoints(), [
      'member',
      'add',
      'infra3',
      '--learner',
      `--peer-urls=${m3.peerUrl}`,
    ]);
    assert.equal(add.code, 0, add.stderr);
    assert.match(add.stdout, /Member +[0-9a-f]+ added to cluster +[0-9a-f]+/);
    assert.match(add.stdout, /ETCD_NAME="infra3"/);
    assert.ok(
      add.stdout.includes(`ETCD_INITIAL_CLUSTER="${c.initialCluster()}"`) ||
        /ETCD_INITIAL_CLUSTER="[^"]*infra3=/.test(add.stdout),
      add.stdout,
    );
    assert.match(add.stdout, /ETCD_INITIAL_CLUSTER_STATE="existing"/);
    const id3 = /Member +([0-9a-f]+) added/.exec(add.stdout)![1]!;

    // listed as an unstarted learner until it runs
    let list = await memberList(c.endpoints());
    assert.equal(list.length, 4);
    const pending = list.find((m) => m.id === id3)!;
    assert.equal(pending.status, 'unstarted');
    assert.equal(pending.isLearner, true);
    assert.equal(pending.peerURLs, m3.peerUrl);

    await c.start('infra3', { state: 'existing', initialCluster: c.initialCluster() });
    list = await memberList(c.endpoints());
    const learner = list.find((m) => m.id === id3)!;
    assert.deepEqual(
      [learner.status, learner.name, learner.isLearner, learner.clientURLs],
      ['started', 'infra3', true, m3.clientUrl],
    );
    // a learner serves serializable reads but does not count for quorum
    const st = await c.status('infra3');
    assert.ok(st, 'the learner answers Status');
    await progress('with a learner');

    // promote it once it has caught up
    const promote = await etcdctlRetry(
      c.endpoints(['infra0', 'infra1', 'infra2']),
      ['member', 'promote', id3],
      /not in sync|not ready/i,
    );
    assert.equal(promote.code, 0, promote.stderr);
    assert.match(promote.stdout, new RegExp(`Member +${id3} promoted in cluster +[0-9a-f]+`));
    list = await memberList(c.endpoints());
    assert.equal(list.find((m) => m.id === id3)!.isLearner, false);
    await progress('after the promotion');

    // remove a follower that is not the new member
    const leader = await c.waitForLeader();
    const gone = c.members.find((m) => m.name !== leader && m.name !== 'infra3')!.name;
    const goneId = list.find((m) => m.name === gone)!.id;
    const remaining = c.members.filter((m) => m.name !== gone).map((m) => m.name);
    const rm = await etcdctl(c.endpoints(remaining), ['member', 'remove', goneId]);
    assert.equal(rm.code, 0, rm.stderr);
    assert.match(rm.stdout, new RegExp(`Member +${goneId} removed from cluster +[0-9a-f]+`));
    list = await memberList(c.endpoints(remaining));
    assert.deepEqual(list.map((m) => m.name).sort(), remaining.sort());
    // the removed member learns that it was removed (whether its process exits is the next test)
    await c.waitForOutput(c.member(gone), /removed from the cluster|removed this member/, 10_000);
    await c.kill(gone);
    await progress('after the removal');

    await load.stop();
    const newLeader = await c.waitForLeader(10_000, remaining);
    assert.ok(remaining.includes(newLeader));
    await c.waitHashKVAgree(20_000, remaining);
    for (const name of remaining) await assertAllAcked(c, name, 'mem/', load.acked);
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${c.logs()}`);
  } finally {
    await load?.stop();
    await c.close();
  }
});

test('etcdctl move-leader hands leadership to the named member', {
  skip: noCtl,
  timeout: 60_000,
}, async () => {
  const c = await Cluster.create();
  try {
    const leader = await c.waitForLeader();
    const list = await memberList(c.endpoints());
    for (const target of c.members.map((m) => m.name).filter((n) => n !== leader)) {
      const current = await c.waitForLeader();
      const targetId = list.find((m) => m.name === target)!.id;
      const r = await etcdctl(c.endpoints(), ['move-leader', targetId]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, new RegExp(`Leadership transferred from [0-9a-f]+ to ${targetId}`));
      assert.equal(await c.waitForLeader(), target, `leader after move-leader from ${current} to ${target}`);
      // the cluster takes writes under the new leader
      const put = await etcdctl(c.endpoints(), ['put', `moved/${target}`, 'x']);
      assert.equal(put.code, 0, put.stderr);
    }
    // move-leader to a member that is not in the cluster is refused
    const bad = await etcdctl(c.endpoints(), ['move-leader', 'abcdef']);
    assert.notEqual(bad.code, 0);
    await c.waitHashKVAgree();
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${c.logs()}`);
  } finally {
    await c.close();
  }
});

/** Removes a follower with `member remove`, sent to the leader or to the follower itself. */
async function removeAFollower(c: Cluster, via: 'leader' | 'itself') {
  const leader = await c.waitForLeader();
  const gone = c.members.find((m) => m.name !== leader)!.name;
  const id = (await memberList(c.endpoints())).find((m) => m.name === gone)!.id;
  const rm = await etcdctl(c.endpoints([via === 'leader' ? leader : gone]), ['member', 'remove', id]);
  return { leader, gone, id, rm };
}

test('a removed member stops serving and its process exits, as etcd does', {
  skip: noCtl,
  timeout: 60_000,
}, async () => {
  const c = await Cluster.create();
  try {
    const { gone, rm } = await removeAFollower(c, 'leader');
    assert.equal(rm.code, 0, rm.stderr);
    const code = await within(c.member(gone).proc!.exited, 5000, 'running');
    assert.notEqual(code, 'running', `${gone} is still running 5 s after it was removed`);
  } finally {
    await c.close();
  }
});

test('member remove sent to the member being removed is acknowledged', {
  skip: noCtl,
  timeout: 60_000,
}, async () => {
  const c = await Cluster.create();
  try {
    const { leader, id, rm } = await removeAFollower(c, 'itself');
    // whatever the answer, the removal took effect
    const list = await memberList(c.endpoints([leader]));
    assert.ok(!list.some((m) => m.id === id), 'the member was not removed');
    assert.equal(rm.code, 0, rm.stderr);
    assert.match(rm.stdout, new RegExp(`Member +${id} removed from cluster`));
  } finally {
    await c.close();
  }
});
