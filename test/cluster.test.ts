// Three-member clusters of bin/etcd on loopback, started from the seed's static example
// (infra0/infra1/infra2, token etcd-cluster-1), with a peer proxy on every link.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Cluster } from './helpers/cluster.js';
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
