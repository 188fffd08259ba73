// Three-member clusters of bin/etcd on loopback, started from the seed's static example
// (infra0/infra1/infra2, token etcd-cluster-1), with a peer proxy on every link.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { assertAllAcked, Cluster, sleep, WriteLoad } from './helpers/cluster.js';
import { etcdctl, hasEtcdctl } from './helpers/process.js';

const noCtl = hasEtcdctl() ? false : 'etcdctl not installed';

interface EndpointStatus {
  Endpoint: string;
  Status: { header: { member_id: number | string; raft_term: number }; leader: number | string };
}

/** `etcdctl endpoint status -w json`; the JSON numbers are uint64, so parse IDs as strings. */
export function parseEndpointStatus(stdout: string): EndpointStatus[] {
  return JSON.parse(stdout.replace(/"(member_id|leader|cluster_id)":(\d+)/g, '"$1":"$2"'));
}

test('the seed static three-member example: member list and one leader', {
  skip: noCtl,
  timeout: 60_000,
}, async () => {
  const c = await Cluster.create();
  try {
    const eps = c.endpoints();
    await c.waitForLeader();

    const plain = await etcdctl(eps, ['member', 'list']);
    assert.equal(plain.code, 0, plain.stderr);
    const lines = plain.stdout.trim().split('\n');
    assert.equal(lines.length, 3, plain.stdout);
    for (const m of c.members) {
      const line = lines.find((l) => l.includes(`, ${m.name}, `));
      assert.ok(line, `no line for ${m.name} in:\n${plain.stdout}`);
      // id, started, name, peer URLs, client URLs, is learner
      const cols = line.split(', ');
      assert.match(cols[0]!, /^[0-9a-f]+$/);
      assert.equal(cols[1], 'started');
      assert.equal(cols[3], m.peerUrl);
      assert.equal(cols[4], m.clientUrl);
      assert.equal(cols[5], 'false');
    }

    const table = await etcdctl(eps, ['member', 'list', '-w', 'table']);
    assert.equal(table.code, 0, table.stderr);
    assert.match(
      table.stdout,
      /\|\s+ID\s+\|\s+STATUS\s+\|\s+NAME\s+\|\s+PEER ADDRS\s+\|\s+CLIENT ADDRS\s+\|\s+IS LEARNER\s+\|/,
    );
    for (const m of c.members) {
      assert.match(
        table.stdout,
        new RegExp(
          `\\|\\s+started\\s+\\|\\s+${m.name}\\s+\\|\\s+${m.peerUrl}\\s+\\|\\s+${m.clientUrl}\\s+\\|\\s+false\\s+\\|`,
        ),
      );
    }

    // every member names the same leader, and exactly one endpoint is it
    const st = await etcdctl(eps, ['endpoint', 'status', '-w', 'json']);
    assert.equal(st.code, 0, st.stderr);
    const statuses = parseEndpointStatus(st.stdout);
    assert.equal(statuses.length, 3);
    const leaders = new Set(statuses.map((s) => String(s.Status.leader)));
    assert.equal(leaders.size, 1, st.stdout);
    assert.equal(
      statuses.filter((s) => String(s.Status.header.member_id) === String(s.Status.leader)).length,
      1,
      st.stdout,
    );
    const tableSt = await etcdctl(eps, ['endpoint', 'status', '-w', 'table']);
    assert.equal(tableSt.code, 0, tableSt.stderr);
    assert.equal((tableSt.stdout.match(/\|\s+true\s+\|/g) ?? []).length, 1, tableSt.stdout);

    // writes through any member are read back through every other
    for (const [i, m] of c.members.entries()) {
      const put = await etcdctl(m.clientUrl, ['put', `seed/k${i}`, `v${i}`]);
      assert.equal(put.code, 0, put.stderr);
    }
    for (const m of c.members) {
      const get = await etcdctl(m.clientUrl, ['get', '--prefix', 'seed/', '--print-value-only']);
      assert.equal(get.code, 0, get.stderr);
      assert.deepEqual(get.stdout.trim().split('\n'), ['v0', 'v1', 'v2']);
    }
    await c.waitHashKVAgree();
    const hk = await etcdctl(eps, ['endpoint', 'hashkv', '-w', 'json']);
    assert.equal(hk.code, 0, hk.stderr);
    const hashes = new Set(
      (JSON.parse(hk.stdout) as { HashKV: { hash: number } }[]).map((h) => h.HashKV.hash),
    );
    assert.equal(hashes.size, 1, hk.stdout);
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${c.logs()}`);
  } finally {
    await c.close();
  }
});

test('kill -9 of the leader under write load: new leader, writes continue, the old leader catches up', {
  timeout: 90_000,
}, async () => {
  const c = await Cluster.create();
  let load: WriteLoad | undefined;
  try {
    const oldLeader = await c.waitForLeader();
    load = new WriteLoad(c, 6, 'load/');
    await sleep(1500);
    const before = load.acked.size;
    assert.ok(
      before > 20,
      `only ${before} writes acknowledged before the kill; errors: ${load.errors.slice(-5).join('\n')}`,
    );

    const killedAt = Date.now();
    await c.kill(oldLeader);
    const newLeader = await c.waitForLeader(10_000);
    const electedIn = Date.now() - killedAt;
    assert.notEqual(newLeader, oldLeader);
    // "a few election timeouts" (500 ms each), plus status polling
    assert.ok(electedIn < 8 * c.opts.electionMs, `new leader after ${electedIn} ms`);

    // writes continue on the remaining two members
    const atElection = load.acked.size;
    await sleep(3000);
    assert.ok(
      load.acked.size > atElection + 20,
      `writes did not continue: ${atElection} -> ${load.acked.size}; errors: ${load.errors.slice(-5).join('\n')}`,
    );

    // the old leader restarts on its data dir and catches up while writes go on
    await c.start(oldLeader);
    await sleep(1500);
    await load.stop();
    assert.ok(Date.now() - load.lastAck < 1500, 'writes stopped being acknowledged after the restart');
    await c.waitForLeader(10_000);
    await c.waitHashKVAgree(20_000);
    for (const m of c.members) await assertAllAcked(c, m.name, 'load/', load.acked);
    // serializable reads on the old leader see everything too (it has applied it all)
    const ser = await c.noRetryClient(oldLeader).getAll().prefix('load/').count();
    assert.ok(ser >= load.acked.size, `${oldLeader}: ${ser} keys, ${load.acked.size} acknowledged`);
    console.log(`kill-leader: ${load.acked.size} acked writes, new leader in ${electedIn} ms`);
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${c.logs()}`);
  } finally {
    await load?.stop();
    await c.close();
  }
});

/** Runs `fn` and returns its error, or undefined when it succeeded. */
async function failure(fn: () => Promise<unknown>): Promise<Error | undefined> {
  try {
    await fn();
    return undefined;
  } catch (err) {
    return err as Error;
  }
}

test('a minority partition serves no linearizable reads or writes; the majority goes on; HashKV agrees after healing', {
  timeout: 90_000,
}, async () => {
  const c = await Cluster.create();
  try {
    const ids = await c.memberIds();
    const idOf = (name: string) => BigInt([...ids].find(([, n]) => n === name)![0]).toString(16);
    await c.client().put('part/before').value('1').exec();

    // first the leader, then a follower, is cut off from the other two
    for (const round of ['leader', 'follower'] as const) {
      const leader = await c.waitForLeader();
      const isolated = round === 'leader' ? leader : c.members.find((m) => m.name !== leader)!.name;
      const majority = c.members.filter((m) => m.name !== isolated).map((m) => m.name);
      const logMark = c.member(isolated).proc!.output().length;
      c.proxy!.isolate(isolated);

      // the majority elects a leader among themselves (if needed) and takes writes
      const newLeader = await c.waitForLeader(10_000, majority);
      assert.ok(majority.includes(newLeader));
      for (const [i, m] of majority.entries()) {
        await c
          .noRetryClient(m)
          .put(`part/${round}/maj${i}`)
          .value('ok')
          .options({ deadline: new Date(Date.now() + 5000) })
          .exec();
      }

      // the isolated member refuses (or times out) linearizable writes and reads
      const iso = c.noRetryClient(isolated);
      const deadline = () => ({ deadline: new Date(Date.now() + 2500) });
      // (all at once: each takes the whole deadline when it times out)
      const [putErr, getErr, txnErr] = await Promise.all([
        failure(() => iso.put(`part/${round}/iso`).value('no').options(deadline()).exec()),
        failure(() => iso.get(`part/${round}/maj0`).options(deadline()).string()),
        failure(() =>
          iso
            .if('part/before', 'Value', '==', '1')
            .then(iso.put('part/x').value('y'))
            .options(deadline())
            .commit(),
        ),
      ]);
      assert.ok(putErr, `${isolated} (isolated ${round}) acknowledged a write`);
      assert.ok(getErr, `${isolated} (isolated ${round}) served a linearizable read`);
      assert.ok(txnErr, `${isolated} (isolated ${round}) committed a txn`);
      // serializable reads are local: they answer, without the majority's new writes
      const ser = await iso.get(`part/${round}/maj0`).options(deadline()).serializable(true).string();
      assert.equal(ser, null);
      // the majority still works after all that
      await c.noRetryClient(majority[0]!).put(`part/${round}/after`).value('ok').options(deadline()).exec();

      // the isolated member's log names the peers it cannot reach
      const log = c.member(isolated).proc!.output().slice(logMark);
      for (const m of majority) {
        assert.match(
          log,
          new RegExp(`"remote-peer-id":"${idOf(m)}"[^\\n]*(inactive|lost TCP streaming|unreachable)`),
          `${isolated}'s log does not say it lost ${m}`,
        );
      }

      c.proxy!.healAll();
      await c.waitForLeader(10_000);
      // the healed member catches up: a linearizable read through it sees the majority's writes
      const got = await c
        .noRetryClient(isolated)
        .get(`part/${round}/after`)
        .options({ deadline: new Date(Date.now() + 5000) })
        .string();
      assert.equal(got, 'ok');
      await c.waitHashKVAgree(20_000);
    }
    assert.ok([...c.proxy!.dropped.values()].reduce((a, b) => a + b, 0) > 0, 'the proxy dropped nothing');
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${c.logs()}`);
  } finally {
    await c.close();
  }
});

test('a member restarted after the others compacted their logs catches up by snapshot', {
  timeout: 90_000,
}, async () => {
  const c = await Cluster.create({
    snapshotCount: 50,
    extraArgs: ['--experimental-snapshot-catchup-entries', '10'],
  });
  try {
    const leader = await c.waitForLeader();
    const lagger = c.members.find((m) => m.name !== leader)!.name;
    const up = c.members.filter((m) => m.name !== lagger).map((m) => m.name);
    const client = c.client(up);
    for (let i = 0; i < 20; i++) await client.put(`snap/early/${i}`).value(`${i}`).exec();
    await c.kill(lagger);

    // a few hundred writes while it is down: the others snapshot every 50 entries and keep only 10
    const acked = new Map<string, string>();
    for (let i = 0; i < 300; i += 20) {
      await Promise.all(
        Array.from({ length: 20 }, async (_, j) => {
          const key = `snap/late/${i + j}`;
          await client.put(key).value(key).exec();
          acked.set(key, key);
        }),
      );
    }
    const snaps = (await import('node:fs')).readdirSync(`${c.member(leader).dataDir}/member/snap`);
    assert.ok(
      snaps.some((f) => f.endsWith('.snap')),
      `no raft snapshot on ${leader}: ${snaps.join(', ')}`,
    );

    const mark = c.member(leader).output().length;
    await c.start(lagger, { timeoutMs: 20_000 });
    await c.waitForLeader(10_000);
    await c.waitHashKVAgree(30_000);
    await assertAllAcked(c, lagger, 'snap/late/', acked);
    const early = await c.noRetryClient(lagger).getAll().prefix('snap/early/').serializable(true).count();
    assert.equal(early, 20);
    // it was a snapshot, not the log, that brought it up to date
    const leaderLog = c.member(leader).output().slice(mark);
    const laggerLog = c.member(lagger).proc!.output();
    assert.match(leaderLog, /"msg":"sent database snapshot"/, `${leader} sent no database snapshot`);
    assert.match(
      laggerLog,
      /"msg":"received and saved database snapshot"/,
      `${lagger} received no database snapshot`,
    );
    assert.match(laggerLog, /"msg":"applied snapshot"/, `${lagger} applied no snapshot`);
    // and it keeps up afterwards
    await c.noRetryClient(lagger).put('snap/after').value('x').exec();
    await c.waitHashKVAgree(10_000);
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${c.logs()}`);
  } finally {
    await c.close();
  }
});

test('many concurrent linearizable reads through every member all complete (ReadIndex contexts never collide)', {
  timeout: 60_000,
}, async () => {
  const c = await Cluster.create();
  try {
    await c.waitForLeader();
    const writer = c.client();
    await writer.put('rk').value('v1').exec();
    const clients = c.members.map((m) => c.noRetryClient(m.name));
    const started = Date.now();
    // 3 members x 200 reads, all in flight at once: each member runs ReadIndex rounds with its own
    // request IDs; a context shared by two members' rounds would leave one unanswered until timeout
    const reads = clients.flatMap((cl) => Array.from({ length: 200 }, () => cl.get('rk').string()));
    const values = await Promise.all(reads);
    assert.ok(values.every((v) => v === 'v1'));
    assert.ok(Date.now() - started < 5000, `600 linearizable reads took ${Date.now() - started} ms`);
    for (const cl of [writer, ...clients]) cl.close();
  } finally {
    await c.close();
  }
});
