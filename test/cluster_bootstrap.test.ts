// Bootstrap checks on a running three-member cluster: a member whose data dir exists restarts with
// whatever initial flags it is given; a member that was never added, or that comes with the wrong
// cluster token, is refused with a clear message and the cluster carries on.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { test } from 'node:test';
import { Cluster, sleep, within } from './helpers/cluster.js';

test('bootstrap: reused data dir, a member never added, a wrong cluster token', {
  timeout: 90_000,
}, async () => {
  const c = await Cluster.create();
  try {
    const leader = await c.waitForLeader();
    const follower = c.members.find((m) => m.name !== leader)!.name;
    await c.client().put('boot/k').value('v').exec();

    // an existing data dir is reused and the initial-cluster flags are ignored
    await c.kill(follower);
    await c.start(follower, {
      token: 'some-other-token',
      state: 'new',
      initialCluster: `${follower}=${c.member(follower).peerUrl}`,
    });
    assert.equal(await c.noRetryClient(follower).get('boot/k').string(), 'v');
    await c.waitForLeader();

    // --initial-cluster-state existing for a member the cluster does not know: refused with a hint
    const stranger = await c.addMember('infra9');
    await c.start('infra9', { state: 'existing', waitReady: false });
    const code = await within(stranger.proc!.exited, 15_000, 'running');
    assert.notEqual(code, 'running', `infra9 still running:\n${stranger.output()}`);
    assert.notEqual(code, 0);
    assert.match(stranger.output(), /member add/, stranger.output());

    // a member that lost its data dir comes back with the wrong token: another cluster ID, so the
    // peers refuse its messages and say why; it never joins, and the other two carry on
    await c.kill(follower);
    rmSync(c.member(follower).dataDir, { recursive: true, force: true });
    const markOthers = new Map(c.running().map((m) => [m.name, m.output().length]));
    await c.start(follower, { token: 'etcd-cluster-2', state: 'new', waitReady: false });
    await sleep(4000);
    const out = c.member(follower).proc!.output();
    assert.doesNotMatch(
      out,
      /ready to serve client requests/,
      'a member with the wrong cluster token joined',
    );
    const othersLog = [...markOthers].map(([n, at]) => c.member(n).output().slice(at)).join('\n');
    assert.match(`${out}\n${othersLog}`, /cluster ID mismatch/);
    const up = c.members.filter((m) => m.name !== follower && m.name !== 'infra9').map((m) => m.name);
    await c.waitForLeader(10_000, up);
    await c.client(up).put('boot/after').value('ok').exec();
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${c.logs()}`);
  } finally {
    await c.close();
  }
});
