// TLS on the client port and between peers, as etcd 3.4 does it: etcdctl and the etcd3 client over
// https (with and without client certs, a CRL), clusters over https peer URLs with cert files and
// with --peer-auto-tls, a peer refused by --peer-cert-allowed-cn, and a mixed cluster with the real
// etcd over https. Certificates are made by the test (helpers/certs.ts).
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Etcd3 } from 'etcd3';
import { type LeafFiles, TestCa } from './helpers/certs.js';
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

interface Proc {
  name: string;
  child: ChildProcess;
  clientUrl: string;
  dataDir: string;
  output(): string;
  kill(): Promise<void>;
}

const procs: Proc[] = [];
const dirs: string[] = [];

function spawnMember(bin: string, name: string, args: string[]): Proc {
  const child = spawn(bin, ['--name', name, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr!.on('data', (b: Buffer) => (out += b.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const i = args.indexOf('--advertise-client-urls');
  const p: Proc = {
    name,
    child,
    clientUrl: i >= 0 ? args[i + 1]!.split(',')[0]! : '',
    dataDir: args[args.indexOf('--data-dir') + 1]!,
    output: () => out,
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
  procs.push(p);
  return p;
}

async function waitFor(p: Proc, re: RegExp, ms = 20_000): Promise<void> {
  const t0 = Date.now();
  while (!re.test(p.output())) {
    if (p.child.exitCode !== null) throw new Error(`${p.name} exited early:\n${p.output().slice(-3000)}`);
    if (Date.now() - t0 > ms) throw new Error(`${p.name}: no ${re} in ${ms} ms:\n${p.output().slice(-3000)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

interface MemberSpec {
  bin?: string;
  /** Flags for this member's peer TLS (and client TLS, if any). */
  tls: string[];
  clientScheme?: 'http' | 'https';
}

/** Starts a cluster over https peer URLs; resolves once `ready` members say so. */
async function startCluster(specs: MemberSpec[]): Promise<Proc[]> {
  const dir = tempDir('etcd-ts-tls-');
  dirs.push(dir);
  const ports = await Promise.all(specs.map(async () => [await freePort(), await freePort()] as const));
  const peer = (i: number) => `https://127.0.0.1:${ports[i]![1]}`;
  const ic = specs.map((_, i) => `m${i}=${peer(i)}`).join(',');
  return specs.map((s, i) => {
    const client = `${s.clientScheme ?? 'http'}://127.0.0.1:${ports[i]![0]}`;
    return spawnMember(s.bin ?? ETCD_TS_BIN, `m${i}`, [
      '--data-dir',
      join(dir, `m${i}`),
      '--listen-client-urls',
      client,
      '--advertise-client-urls',
      client,
      '--listen-peer-urls',
      peer(i),
      '--initial-advertise-peer-urls',
      peer(i),
      '--initial-cluster',
      ic,
      '--initial-cluster-token',
      'tls-test',
      '--heartbeat-interval',
      '50',
      '--election-timeout',
      '500',
      ...s.tls,
    ]);
  });
}

async function ctlOk(endpoint: string, args: string[]): Promise<string> {
  const r = await etcdctl(endpoint, args);
  assert.equal(r.code, 0, `etcdctl ${args.join(' ')} failed: ${r.stderr}`);
  return r.stdout;
}

/** A put on one member, then the value read locally (serializable) on every member. */
async function assertReplicates(members: Proc[], ctlArgs: string[] = []): Promise<void> {
  await ctlOk(members[0]!.clientUrl, [...ctlArgs, 'put', 'tls-key', 'replicated']);
  for (const m of members) {
    let got = '';
    for (let i = 0; i < 50 && got !== 'replicated\n'; i++) {
      got = (
        await etcdctl(m.clientUrl, [...ctlArgs, 'get', 'tls-key', '--print-value-only', '--consistency=s'])
      ).stdout;
      if (got !== 'replicated\n') await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(got, 'replicated\n', `${m.name} did not get the write`);
  }
}

const READY = /ready to serve client requests/;

describe('TLS', { concurrency: true }, () => {
  let ca: TestCa;
  let server: LeafFiles; // CN example.com, SANs localhost / 127.0.0.1
  let server2: LeafFiles; // CN example2.com
  let client: LeafFiles;
  let revoked: LeafFiles;
  let crlFile: string;

  /** Peer TLS from the test's server cert, with peer client-cert auth against the test CA. */
  const peerCertAuthFlags = () => [
    '--peer-cert-file',
    server.cert,
    '--peer-key-file',
    server.key,
    '--peer-trusted-ca-file',
    ca.caFile,
    '--peer-client-cert-auth',
  ];

  before(async () => {
    const dir = tempDir('etcd-ts-pki-');
    dirs.push(dir);
    ca = await TestCa.create(dir);
    server = await ca.leaf('server', 'example.com');
    server2 = await ca.leaf('server2', 'example2.com');
    client = await ca.leaf('client', 'client');
    revoked = await ca.leaf('revoked', 'revoked');
    crlFile = await ca.crl('revoke.crl', [revoked.serial]);
  });

  after(async () => {
    await Promise.all(procs.map((p) => p.kill()));
    for (const d of dirs) removeDir(d);
  });

  test('client TLS: etcdctl and etcd3 with client certs, refusals logged, CRL, http URL stays plain', async (t) => {
    const dir = tempDir('etcd-ts-tls-client-');
    dirs.push(dir);
    const [cp, hp, pp] = [await freePort(), await freePort(), await freePort()];
    const https = `https://127.0.0.1:${cp}`;
    const http = `http://127.0.0.1:${hp}`;
    const peer = `http://127.0.0.1:${pp}`;
    const m = spawnMember(ETCD_TS_BIN, 'c0', [
      '--data-dir',
      join(dir, 'c0'),
      '--listen-client-urls',
      `${https},${http}`,
      '--advertise-client-urls',
      https,
      '--listen-peer-urls',
      peer,
      '--initial-advertise-peer-urls',
      peer,
      '--initial-cluster',
      `c0=${peer}`,
      '--cert-file',
      server.cert,
      '--key-file',
      server.key,
      '--trusted-ca-file',
      ca.caFile,
      '--client-cert-auth',
      '--client-crl-file',
      crlFile,
    ]);
    await waitFor(m, READY);

    const etcd3 = new Etcd3({
      hosts: https,
      credentials: {
        rootCertificate: readFileSync(ca.caFile),
        privateKey: readFileSync(client.key),
        certChain: readFileSync(client.cert),
      },
    });
    try {
      await etcd3.put('from-etcd3').value('over-tls');
      assert.equal(await etcd3.get('from-etcd3').string(), 'over-tls');
    } finally {
      etcd3.close();
    }
    // the http URL is served in plaintext next to the https one
    assert.equal(await (await fetch(`${http}/health`)).text(), '{"health":"true"}');

    if (!hasEtcdctl()) {
      t.diagnostic('etcdctl not installed (apt-get install etcd-client): etcdctl checks skipped');
      return;
    }
    const tls = ['--cacert', ca.caFile, '--cert', client.cert, '--key', client.key];
    await ctlOk(https, [...tls, 'put', 'k', 'v']);
    assert.equal(await ctlOk(https, [...tls, 'get', 'k', '--print-value-only']), 'v\n');
    assert.equal(await ctlOk(http, ['get', 'from-etcd3', '--print-value-only']), 'over-tls\n');
    // --client-cert-auth: no client cert, no service
    const noCert = await etcdctl(https, ['--cacert', ca.caFile, '--dial-timeout=2s', 'get', 'k']);
    assert.notEqual(noCert.code, 0);
    await waitFor(
      m,
      /rejected connection from \\"127\.0\.0\.1:\d+\\" \(error \\"tls: client didn't provide a certificate/,
    );
    // a revoked client cert is refused by the CRL
    const rev = await etcdctl(https, [
      '--cacert',
      ca.caFile,
      '--cert',
      revoked.cert,
      '--key',
      revoked.key,
      '--dial-timeout=2s',
      'get',
      'k',
    ]);
    assert.notEqual(rev.code, 0);
    await waitFor(m, new RegExp(`certificate serial ${revoked.serial} revoked`));
  });

  test('3 members over https peer URLs with cert files and peer client cert auth', async () => {
    const tls = peerCertAuthFlags();
    const members = await startCluster([{ tls }, { tls }, { tls }]);
    await Promise.all(members.map((m) => waitFor(m, READY)));
    if (hasEtcdctl()) await assertReplicates(members);
    for (const m of members) assert.doesNotMatch(m.output(), /rejected connection/);
  });

  test('3 members with --peer-auto-tls (and --auto-tls on https client URLs)', async (t) => {
    const tls = ['--peer-auto-tls', '--auto-tls'];
    const members = await startCluster([
      { tls, clientScheme: 'https' },
      { tls, clientScheme: 'https' },
      { tls, clientScheme: 'https' },
    ]);
    await Promise.all(members.map((m) => waitFor(m, READY)));
    const fixtures = join(members[0]!.dataDir, 'fixtures');
    assert.ok(
      existsSync(join(fixtures, 'peer', 'cert.pem')) && existsSync(join(fixtures, 'client', 'key.pem')),
    );
    if (!hasEtcdctl()) return t.diagnostic('etcdctl not installed: replication not checked');
    // etcdctl 3.4 uses TLS without any cert flag only with --insecure-transport=false
    await assertReplicates(members, ['--insecure-transport=false', '--insecure-skip-tls-verify']);
  });

  test("a peer whose cert CN is not --peer-cert-allowed-cn is refused, with etcd's log line", async () => {
    const tls = (leaf: LeafFiles) => [
      '--peer-cert-file',
      leaf.cert,
      '--peer-key-file',
      leaf.key,
      '--peer-trusted-ca-file',
      ca.caFile,
      '--peer-client-cert-auth',
      '--peer-cert-allowed-cn',
      'example.com',
    ];
    const members = await startCluster([{ tls: tls(server) }, { tls: tls(server) }, { tls: tls(server2) }]);
    // the two good members have quorum; the odd one is refused by both
    await Promise.all(members.slice(0, 2).map((m) => waitFor(m, READY)));
    await waitFor(
      members[0]!,
      /rejected connection from \\"127\.0\.0\.1:\d+\\" \(error \\"client certificate authentication failed\\"/,
    );
    assert.doesNotMatch(members[2]!.output(), READY);
  });

  test('mixed cluster over https peer URLs: one etcd-ts member, two real etcd 3.4 members', async (t) => {
    if (!hasRealEtcd() || !hasEtcdctl()) {
      t.skip('the real etcd (apt-get install etcd-server etcd-client) is not installed');
      return;
    }
    const tls = peerCertAuthFlags();
    const members = await startCluster([{ tls }, { tls, bin: REAL_ETCD }, { tls, bin: REAL_ETCD }]);
    await Promise.all(members.map((m) => waitFor(m, READY, 30_000)));
    await assertReplicates(members);
    // and the other way round: a write through a real member reaches etcd-ts
    await ctlOk(members[1]!.clientUrl, ['put', 'from-real', 'yes']);
    let got = '';
    for (let i = 0; i < 50 && got !== 'yes\n'; i++) {
      got = (await etcdctl(members[0]!.clientUrl, ['get', 'from-real', '--print-value-only'])).stdout;
    }
    assert.equal(got, 'yes\n');
  });
});
