// One etcd-ts member and two real etcd 3.4.23 members in one cluster, started from the same
// --initial-cluster flags: writes through any member are read through every other, leadership moves
// both ways, each kind survives kill -9 and restart, and HashKV agrees.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { after, describe, it } from 'node:test';
import {
  ETCD_TS_BIN,
  etcdctl,
  freePort,
  hasEtcdctl,
  hasRealEtcd,
  REAL_ETCD,
  removeDir,
  tempDir,
} from './helpers/process.js';

interface Member {
  name: string;
  bin: string;
  clientUrl: string;
  peerUrl: string;
  dataDir: string;
  child?: ChildProcess;
  out: string;
}

const skip = !hasEtcdctl()
  ? 'etcdctl not installed (apt-get install etcd-client)'
  : !hasRealEtcd()
    ? 'the real etcd is not installed (apt-get install etcd-server)'
    : false;

function start(m: Member, initialCluster: string, state: 'new' | 'existing' = 'new'): Promise<void> {
  const args = [
    '--name',
    m.name,
    '--data-dir',
    m.dataDir,
    '--listen-client-urls',
    m.clientUrl,
    '--advertise-client-urls',
    m.clientUrl,
    '--listen-peer-urls',
    m.peerUrl,
    '--initial-advertise-peer-urls',
    m.peerUrl,
    '--initial-cluster',
    initialCluster,
    '--initial-cluster-token',
    'mixed-cluster',
    '--initial-cluster-state',
    state,
    '--heartbeat-interval',
    '50',
    '--election-timeout',
    '500',
  ];
  m.out = '';
  const child = spawn(m.bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  m.child = child;
  const onData = (b: Buffer) => {
    m.out += b.toString();
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  return new Promise((resolve, reject) => {
    const timer = setInterval(() => {
      if (/ready to serve client requests/.test(m.out)) {
        clearInterval(timer);
        resolve();
      }
    }, 50);
    child.once('exit', (code) => {
      clearInterval(timer);
      reject(new Error(`${m.name} exited (${code}):\n${m.out}`));
    });
  });
}

async function kill(m: Member): Promise<void> {
  const c = m.child;
  if (!c || c.exitCode !== null || c.signalCode !== null) return;
  const exited = new Promise((r) => c.once('exit', r));
  c.kill('SIGKILL');
  await exited;
}

async function ctlOk(endpoints: string, ...args: string[]): Promise<string> {
  const r = await etcdctl(endpoints, args);
  assert.equal(r.code, 0, `etcdctl ${args.join(' ')} failed: ${r.stderr}`);
  return r.stdout;
}

/** Retries until `fn` stops throwing (members catching up after a restart). */
async function eventually<T>(fn: () => Promise<T>, ms = 15_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

interface StatusRow {
  endpoint: string;
  memberId: bigint;
  leader: bigint;
}

describe('mixed cluster: etcd-ts with real etcd 3.4.23', { skip, timeout: 180_000 }, () => {
  const dir = tempDir('etcd-ts-mixed-');
  const members: Member[] = [];
  after(async () => {
    for (const m of members) await kill(m);
    removeDir(dir);
  });

  it('forms one cluster, replicates both ways, moves leadership both ways, survives kill -9 of each kind', async () => {
    for (const [i, bin] of [ETCD_TS_BIN, REAL_ETCD, REAL_ETCD].entries()) {
      members.push({
        name: `m${i}`,
        bin,
        clientUrl: `http://127.0.0.1:${await freePort()}`,
        peerUrl: `http://127.0.0.1:${await freePort()}`,
        dataDir: `${dir}/m${i}.etcd`,
        out: '',
      });
    }
    const ic = members.map((m) => `${m.name}=${m.peerUrl}`).join(',');
    await Promise.all(members.map((m) => start(m, ic)));
    const all = members.map((m) => m.clientUrl).join(',');
    const [ts, real1, real2] = members as [Member, Member, Member];

    // one cluster: every member lists all three, with their client URLs
    for (const m of members) {
      const list = await eventually(async () => {
        const out = await ctlOk(m.clientUrl, 'member', 'list');
        assert.equal((out.match(/, started, /g) ?? []).length, 3, out);
        for (const o of members)
          assert.ok(out.includes(o.clientUrl), `${m.name} does not list ${o.clientUrl}:\n${out}`);
        return out;
      });
      assert.ok(list.length > 0);
    }

    // writes through each member are read back through every other
    for (const m of members)
      await ctlOk(m.clientUrl, 'put', `from-${m.name}`, m.bin === REAL_ETCD ? 'etcd' : 'etcd-ts');
    for (const m of members) {
      const out = await ctlOk(m.clientUrl, 'get', 'from-', '--prefix', '--keys-only');
      assert.deepEqual(out.split('\n').filter(Boolean), ['from-m0', 'from-m1', 'from-m2']);
    }

    // IDs are 64-bit: read them from the JSON text, not through JSON.parse's doubles
    const status = async (): Promise<StatusRow[]> => {
      const text = await ctlOk(all, 'endpoint', 'status', '-w', 'json');
      return [...text.matchAll(/"Endpoint":"([^"]+)".*?"member_id":(\d+).*?"leader":(\d+)/g)].map((m) => ({
        endpoint: m[1]!,
        memberId: BigInt(m[2]!),
        leader: BigInt(m[3]!),
      }));
    };
    const idOf = async (m: Member): Promise<bigint> =>
      (await status()).find((r) => r.endpoint === m.clientUrl)!.memberId;
    const leaderId = async () => (await status())[0]!.leader;
    const leaderMember = async () => {
      const lead = await leaderId();
      for (const m of members) if ((await idOf(m)) === lead) return m;
      throw new Error('no leader');
    };

    // leadership moves to the etcd-ts member and back to a real etcd member
    const tsId = await idOf(ts);
    const realId = await idOf(real1);
    const from = await leaderMember();
    if (from !== ts) await ctlOk(from.clientUrl, 'move-leader', tsId.toString(16));
    await eventually(async () => assert.equal(await leaderId(), tsId));
    await ctlOk(ts.clientUrl, 'move-leader', realId.toString(16));
    await eventually(async () => assert.equal(await leaderId(), realId));

    // kill -9 and restart each kind; the others keep the cluster going and the restarted one catches up
    for (const victim of [ts, real2]) {
      await kill(victim);
      const alive = members.filter((m) => m !== victim);
      await eventually(() => ctlOk(alive[0]!.clientUrl, 'put', `while-${victim.name}-down`, 'x'));
      await start(victim, ic);
      await eventually(async () => {
        const out = await ctlOk(victim.clientUrl, 'get', `while-${victim.name}-down`, '--print-value-only');
        assert.equal(out, 'x\n');
      });
    }

    // the etcd-ts member leads again, then every member holds the same history
    const lead = await leaderMember();
    if (lead !== ts) await ctlOk(lead.clientUrl, 'move-leader', tsId.toString(16));
    await eventually(async () => assert.equal(await leaderId(), tsId));
    await ctlOk(ts.clientUrl, 'put', 'final', 'write');
    await eventually(async () => {
      const out = await ctlOk(all, 'endpoint', 'hashkv');
      const hashes = new Set(
        out
          .trim()
          .split('\n')
          .map((l) => l.split(', ')[1]),
      );
      assert.equal(hashes.size, 1, `HashKV differs across members:\n${out}`);
    });
  });
});

describe('a real etcd 3.4.23 joins an etcd-ts cluster', { skip, timeout: 120_000 }, () => {
  const dir = tempDir('etcd-ts-join-');
  const members: Member[] = [];
  after(async () => {
    for (const m of members) await kill(m);
    removeDir(dir);
  });

  it('member add, then the real etcd starts with --initial-cluster-state existing and catches up', async () => {
    const mk = async (name: string, bin: string): Promise<Member> => ({
      name,
      bin,
      clientUrl: `http://127.0.0.1:${await freePort()}`,
      peerUrl: `http://127.0.0.1:${await freePort()}`,
      dataDir: `${dir}/${name}.etcd`,
      out: '',
    });
    const ts = await mk('ts0', ETCD_TS_BIN);
    members.push(ts);
    await start(ts, `ts0=${ts.peerUrl}`);
    for (let i = 0; i < 20; i++) await ctlOk(ts.clientUrl, 'put', `k${i}`, `v${i}`);
    const real = await mk('real1', REAL_ETCD);
    members.push(real);
    const added = await ctlOk(ts.clientUrl, 'member', 'add', 'real1', `--peer-urls=${real.peerUrl}`);
    assert.match(added, /Member +[0-9a-f]+ added to cluster/);
    await start(real, `ts0=${ts.peerUrl},real1=${real.peerUrl}`, 'existing');
    await eventually(async () => {
      const out = await ctlOk(real.clientUrl, 'get', 'k19', '--print-value-only');
      assert.equal(out, 'v19\n');
    });
    await ctlOk(real.clientUrl, 'put', 'from-real', 'yes');
    assert.equal(await ctlOk(ts.clientUrl, 'get', 'from-real', '--print-value-only'), 'yes\n');
    const list = await ctlOk(ts.clientUrl, 'member', 'list');
    assert.equal((list.match(/, started, /g) ?? []).length, 2, list);
    await eventually(async () => {
      const out = await ctlOk(`${ts.clientUrl},${real.clientUrl}`, 'endpoint', 'hashkv');
      assert.equal(
        new Set(
          out
            .trim()
            .split('\n')
            .map((l) => l.split(', ')[1]),
        ).size,
        1,
        out,
      );
    });
  });
});
