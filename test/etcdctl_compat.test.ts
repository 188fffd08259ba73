// The real etcdctl 3.4 against bin/etcd and against the real etcd 3.4.23: the same command script,
// run on the same ports with the same flags, must print the same output (sizes and timings aside).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  ETCD_TS_BIN,
  type EtcdProcess,
  etcdctl,
  freePort,
  hasEtcdctl,
  hasRealEtcd,
  REAL_ETCD,
  removeDir,
  startEtcdProcess,
  tempDir,
} from './helpers/process.js';

interface Step {
  args: string[];
  stdin?: string;
}

const big = (n: number) => 'x'.repeat(n);

/** A session an etcd user might type: every KV feature etcdctl exposes, errors included. */
const SCRIPT: Step[] = [
  { args: ['put', 'foo', 'bar'] },
  { args: ['put', 'foo', 'bar2', '--prev-kv'] },
  { args: ['get', 'foo'] },
  { args: ['get', 'foo', '-w', 'json'] },
  { args: ['get', 'missing'] },
  { args: ['put', 'key1', 'v1'] },
  { args: ['put', 'key2', 'v2'] },
  { args: ['put', 'key3', 'v3'] },
  { args: ['put', 'key2', 'v2b'] },
  { args: ['put', 'zeta', 'last'] },
  { args: ['get', 'key', '--prefix'] },
  { args: ['get', 'key', '--prefix', '-w', 'json'] },
  { args: ['get', 'key1', 'key3'] },
  { args: ['get', 'key', '--from-key'] },
  { args: ['get', '', '--prefix', '--keys-only'] },
  { args: ['get', '', '--prefix', '--count-only', '-w', 'json'] },
  { args: ['get', 'key', '--prefix', '--limit', '2', '-w', 'json'] },
  { args: ['get', 'key', '--prefix', '--print-value-only'] },
  { args: ['get', 'key', '--prefix', '--sort-by', 'MODIFY', '--order', 'DESCEND'] },
  { args: ['get', 'key', '--prefix', '--sort-by', 'VALUE', '--order', 'ASCEND'] },
  { args: ['get', 'key', '--prefix', '--sort-by', 'VERSION', '--order', 'DESCEND'] },
  { args: ['get', 'key', '--prefix', '--sort-by', 'CREATE', '--order', 'DESCEND', '--limit', '2'] },
  { args: ['get', 'key', '--prefix', '--order', 'DESCEND'] },
  { args: ['get', 'key', '--prefix', '--min-mod-revision', '5'] },
  { args: ['get', 'key', '--prefix', '--max-create-revision', '4'] },
  { args: ['get', 'key', '--prefix', '--consistency', 's'] },
  { args: ['get', 'key2', '--rev', '4'] },
  { args: ['get', 'key2', '--rev', '6', '-w', 'fields'] },
  { args: ['get', 'foo', '--rev', '1000'] },
  { args: ['get', 'foo', '-w', 'protobuf'] },
  { args: ['del', 'key3'] },
  { args: ['del', 'nothing'] },
  { args: ['del', 'key', '--prefix', '--prev-kv'] },
  { args: ['get', 'key', '--prefix', '--rev', '7'] },
  { args: ['put', 'a', '1'] },
  { args: ['put', 'b', '2'] },
  { args: ['put', 'c', '3'] },
  { args: ['del', 'a', 'c'] },
  { args: ['del', 'a', '--from-key', '-w', 'json'] },
  { args: ['put', 'foo', 'bar'] },
  { args: ['put', 'foo', '--ignore-value'] },
  { args: ['put', 'newkey', '--ignore-value'] },
  { args: ['put', 'foo', 'x', '--ignore-lease'] },
  { args: ['put', 'foo', 'x', '--lease', '1234'] },
  {
    args: ['txn'],
    stdin: 'value("foo") = "x"\n\nput foo yes\nget foo\n\nput foo no\n\n',
  },
  {
    args: ['txn', '-w', 'json'],
    stdin: 'value("foo") = "nope"\n\nput foo yes\n\nput foo no\nget foo\n\n',
  },
  {
    args: ['txn'],
    stdin: 'mod("foo") > "0"\nversion("foo") < "100"\ncreate("foo") != "0"\n\ndel foo\n\nput foo bad\n\n',
  },
  { args: ['txn'], stdin: '\nput t1 a\nput t1 b\n\n\n' },
  { args: ['txn', '-i'], stdin: 'value("t1") = "zz"\n\nput t2 s\n\nput t2 f\nget t2\n\n' },
  { args: ['put', 'big'], stdin: big(1_100_000) },
  { args: ['put', 'toobig'], stdin: big(1_600_000) },
  { args: ['get', 'big', '--keys-only'] },
  { args: ['compact', '5'] },
  { args: ['get', 'foo', '--rev', '3'] },
  { args: ['get', 'foo', '--rev', '5'] },
  { args: ['compact', '3'] },
  { args: ['compact', '100000'] },
  { args: ['compact', '10', '--physical'] },
  { args: ['get', '', '--prefix', '--keys-only'] },
  { args: ['member', 'list'] },
  { args: ['member', 'list', '-w', 'table'] },
  { args: ['member', 'list', '-w', 'json'] },
  { args: ['endpoint', 'status', '-w', 'table'] },
  { args: ['endpoint', 'health'] },
  { args: ['endpoint', 'hashkv'] },
];

/** Output that legitimately differs between two servers: sizes, timings, and fields etcd-ts adds. */
function normalize(text: string): string {
  return (
    text
      .replace(/"ts":"[^"]*"/g, '"ts":"T"')
      .replace(/client-[0-9a-f-]{36}/g, 'client-ID')
      .replace(/took = [0-9.]+[µmn]?s/g, 'took = T')
      // until members run raft, the raft index counts only client writes, not etcd's bootstrap entries
      .replace(/\| +\d+ \| +\d+ \| +(\| *\n)/g, '| INDEX | INDEX | $1')
      .replace(/\| +[0-9.]+ [kMG]?B +\|/g, '| SIZE |')
      .replace(/"dbSize":\d+/g, '"dbSize":N')
      .replace(/"dbSizeInUse":\d+/g, '"dbSizeInUse":N')
      .replace(/, \d+ \| /g, ', HASH | ')
      .replace(/, \d+\n/g, ', HASH\n')
  );
}

async function runScript(bin: string, ports: { client: number; peer: number }): Promise<string[]> {
  const dir = tempDir();
  let proc: EtcdProcess | undefined;
  try {
    proc = await startEtcdProcess({
      bin,
      name: 'compat',
      dataDir: `${dir}/compat.etcd`,
      clientPort: ports.client,
      peerPort: ports.peer,
    });
    const out: string[] = [];
    for (const step of SCRIPT) {
      const r = await etcdctl(proc.clientUrl, step.args, step.stdin ?? '');
      out.push(
        `$ etcdctl ${step.args.join(' ').slice(0, 80)}\n[exit ${r.code}]\n${normalize(r.stdout)}${normalize(r.stderr)}`,
      );
    }
    return out;
  } finally {
    await proc?.kill();
    removeDir(dir);
  }
}

describe('etcdctl 3.4 sees etcd-ts as etcd', { timeout: 240_000 }, () => {
  const skip = !hasEtcdctl()
    ? 'etcdctl not installed (apt-get install etcd-client)'
    : !hasRealEtcd()
      ? 'the real etcd is not installed (apt-get install etcd-server); it is the reference output'
      : false;
  let ports: { client: number; peer: number };
  before(async () => {
    ports = { client: await freePort(), peer: await freePort() };
  });
  after(() => {});

  it('prints the same output as the real etcd for the same command script', { skip }, async () => {
    const reference = await runScript(REAL_ETCD, ports);
    const ours = await runScript(ETCD_TS_BIN, ports);
    assert.equal(ours.length, reference.length);
    const mismatches: string[] = [];
    for (let i = 0; i < reference.length; i++) {
      if (ours[i] !== reference[i]) {
        mismatches.push(`--- etcd 3.4.23:\n${reference[i]}\n--- etcd-ts:\n${ours[i]}`);
      }
    }
    assert.equal(
      mismatches.length,
      0,
      `${mismatches.length} of ${reference.length} steps differ:\n${mismatches.join('\n')}`,
    );
  });
});
