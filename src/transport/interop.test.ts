// Interop with the real etcd 3.4: a real etcd and a fake member served by our PeerTransport form
// a two-member cluster. The real etcd dials our streams and sends its votes/appends/heartbeats;
// our replies (a granted vote, append and heartbeat acks) make it leader and let it commit writes.
import assert from 'node:assert/strict';
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { type Message, Message as MessageCodec, MessageType } from '../gen/raftpb/raft.js';
import { clusterId, memberId } from '../server/member_id.js';
import { idHex } from './constants.js';
import { PeerServer } from './http_server.js';
import { fetchMembers, fetchVersion, leaseTimeToLiveHttp, renewLeaseHttp } from './peer_endpoints.js';
import { PeerTransport } from './transport.js';
import type { RaftHandler, TransportLogger } from './types.js';

const ETCD = '/usr/bin/etcd';
const ETCDCTL = '/usr/bin/etcdctl';
const run = promisify(execFile);

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

async function waitFor(cond: () => boolean | Promise<boolean>, what: string, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test('real etcd 3.4 and a PeerTransport member form a cluster', {
  skip: !existsSync(ETCD) && 'etcd not installed',
  timeout: 60_000,
}, async (t) => {
  const token = 'transport-interop';
  let transport: PeerTransport | undefined;
  const server = await PeerServer.listen({
    listenUrl: 'http://127.0.0.1:0',
    handlers: [
      (req, res) => transport?.handler()(req, res) ?? false,
      (req, res) => {
        if (req.url !== '/version') return false;
        res.writeHead(200, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify({ etcdserver: '3.4.23', etcdcluster: '3.4.0' }));
        return true;
      },
    ],
  });
  const fakeUrl = server.url;
  const peerPort = await freePort();
  const clientPort = await freePort();
  const realPeerUrl = `http://127.0.0.1:${peerPort}`;
  const clientUrl = `http://127.0.0.1:${clientPort}`;
  const fakeId = memberId([fakeUrl], token);
  const realId = memberId([realPeerUrl], token);
  const cid = clusterId([fakeId, realId]);

  const received: Message[] = [];
  const logs: { msg: string; obj: Record<string, unknown> }[] = [];
  const log = (obj: object, msg = '') => logs.push({ msg, obj: obj as Record<string, unknown> });
  const logger: TransportLogger = { info: log, warn: log, error: log, debug: () => {} };
  const reply = (m: Partial<Message>) =>
    transport!.send([MessageCodec.fromPartial({ ...m, from: fakeId, to: realId })]);
  // A minimal follower: grant every vote, accept every append, answer every heartbeat.
  const handler: RaftHandler = {
    process(m) {
      received.push(m);
      switch (m.type) {
        case MessageType.MsgPreVote:
          reply({ type: MessageType.MsgPreVoteResp, term: m.term });
          break;
        case MessageType.MsgVote:
          reply({ type: MessageType.MsgVoteResp, term: m.term });
          break;
        case MessageType.MsgApp:
          reply({ type: MessageType.MsgAppResp, term: m.term, index: m.index + m.entries.length });
          break;
        case MessageType.MsgHeartbeat:
          reply({ type: MessageType.MsgHeartbeatResp, term: m.term, context: m.context });
          break;
      }
    },
    isIdRemoved: () => false,
    reportUnreachable: () => {},
    reportSnapshot: () => {},
  };
  transport = new PeerTransport({ localId: fakeId, clusterId: cid, handler, logger, peerUrls: [fakeUrl] });
  transport.addPeer(realId, [realPeerUrl]);

  const dataDir = mkdtempSync(join(tmpdir(), 'transport-interop-'));
  let etcdLog = '';
  const etcd: ChildProcess = spawn(
    ETCD,
    [
      '--name=real',
      `--data-dir=${dataDir}`,
      `--listen-peer-urls=${realPeerUrl}`,
      `--initial-advertise-peer-urls=${realPeerUrl}`,
      `--listen-client-urls=${clientUrl}`,
      `--advertise-client-urls=${clientUrl}`,
      `--initial-cluster=real=${realPeerUrl},fake=${fakeUrl}`,
      `--initial-cluster-token=${token}`,
      '--initial-cluster-state=new',
      '--logger=zap',
      '--log-outputs=stderr',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  etcd.stderr!.on('data', (c: Buffer) => {
    etcdLog += c.toString();
  });
  t.after(async () => {
    etcd.kill('SIGKILL');
    await transport?.stop();
    await server.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  try {
    // Its votes reach us (pre-vote is off in etcd 3.4: a MsgVote for term >= 2).
    await waitFor(() => received.some((m) => m.type === MessageType.MsgVote), 'a MsgVote from etcd');
    const vote = received.find((m) => m.type === MessageType.MsgVote)!;
    assert.equal(vote.from, realId);
    assert.equal(vote.to, fakeId);
    assert.ok(vote.term >= 2, `vote term ${vote.term}`);
    assert.ok(vote.index >= 2, 'the bootstrap conf changes are in its log');

    // Our granted vote made it leader: appends and heartbeats follow.
    await waitFor(() => received.some((m) => m.type === MessageType.MsgApp), 'a MsgApp from the leader');
    await waitFor(() => received.some((m) => m.type === MessageType.MsgHeartbeat), 'a MsgHeartbeat');

    // Both directions stream: it dialed our two streams, and we dialed its two.
    await waitFor(() => transport!.streamsWorking(realId), 'etcd dialed our streams');
    for (const type of ['stream MsgApp v2', 'stream Message']) {
      assert.ok(
        logs.some(
          (l) =>
            l.msg === 'established TCP streaming connection with remote peer' &&
            l.obj['stream-reader-type'] === type,
        ),
        `we read etcd's ${type}`,
      );
    }

    const env = { ...process.env, ETCDCTL_API: '3' };
    const status = async () =>
      (await run(ETCDCTL, [`--endpoints=${clientUrl}`, 'endpoint', 'status', '-w', 'json'], { env })).stdout;
    await waitFor(async () => {
      try {
        return /"leader":(\d+)/.exec(await status())?.[1] === realId.toString();
      } catch {
        return false;
      }
    }, 'etcd reports itself leader');
    const out = await status();
    assert.equal(/"member_id":(\d+)/.exec(out)?.[1], realId.toString());
    assert.equal(/"cluster_id":(\d+)/.exec(out)?.[1], cid.toString());

    // A write commits only with our append acks (2-member quorum), and a linearizable read needs
    // our heartbeat acks (ReadIndex).
    await run(ETCDCTL, [`--endpoints=${clientUrl}`, '--command-timeout=10s', 'put', 'interop', 'ok'], {
      env,
    });
    const got = await run(
      ETCDCTL,
      [`--endpoints=${clientUrl}`, '--command-timeout=10s', 'get', 'interop', '--print-value-only'],
      { env },
    );
    assert.equal(got.stdout.trim(), 'ok');
    const put = received.find(
      (m) => m.type === MessageType.MsgApp && m.entries.some((e) => e.data.includes(Buffer.from('interop'))),
    );
    assert.ok(put, 'the put reached us in a MsgApp');
    assert.match(etcdLog, new RegExp(`${idHex(realId)} became leader at term`));

    // Its other peer endpoints, read with our clients: /members, /version, /leases(/internal).
    const ms = await fetchMembers(realPeerUrl);
    assert.equal(ms.clusterId, cid);
    assert.deepEqual(
      ms.members.map((m) => m.id).sort((a, b) => (a < b ? -1 : 1)),
      [fakeId, realId].sort((a, b) => (a < b ? -1 : 1)),
    );
    assert.deepEqual(ms.members.find((m) => m.id === realId)?.peerURLs, [realPeerUrl]);
    assert.equal((await fetchVersion(realPeerUrl)).etcdserver, '3.4.23');
    const grant = await run(ETCDCTL, [`--endpoints=${clientUrl}`, 'lease', 'grant', '120'], { env });
    const leaseId = BigInt(`0x${/lease ([0-9a-f]+) granted/.exec(grant.stdout)![1]}`);
    assert.equal(await renewLeaseHttp(realPeerUrl, leaseId), 120);
    const ttl = await leaseTimeToLiveHttp(realPeerUrl, leaseId, true);
    assert.equal(ttl.grantedTTL, 120);
    await assert.rejects(renewLeaseHttp(realPeerUrl, 0x1234n), /lease not found/);
    if (process.env.TRANSPORT_INTEROP_LOG) console.log(etcdLog);
  } catch (err) {
    t.diagnostic(etcdLog.split('\n').slice(-40).join('\n'));
    throw err;
  }
});

test('a PeerTransport member leads a real etcd 3.4 follower (our appends go over msgappv2)', {
  skip: !existsSync(ETCD) && 'etcd not installed',
  timeout: 60_000,
}, async (t) => {
  const token = 'transport-interop-leader';
  let transport: PeerTransport | undefined;
  const server = await PeerServer.listen({
    listenUrl: 'http://127.0.0.1:0',
    handlers: [(req, res) => transport?.handler()(req, res) ?? false],
  });
  const fakeUrl = server.url;
  const peerPort = await freePort();
  const clientPort = await freePort();
  const realPeerUrl = `http://127.0.0.1:${peerPort}`;
  const clientUrl = `http://127.0.0.1:${clientPort}`;
  const fakeId = memberId([fakeUrl], token);
  const realId = memberId([realPeerUrl], token);
  const cid = clusterId([fakeId, realId]);

  // A minimal leader for term 2 over the two bootstrap entries (index 1-2, term 1).
  const TERM = 2;
  let granted = false;
  let lastIndex = 2;
  let lastTerm = 1;
  let match = 0;
  let commit = 0;
  const received: Message[] = [];
  const send = (m: Partial<Message>) =>
    transport!.send([MessageCodec.fromPartial({ term: TERM, ...m, from: fakeId, to: realId })]);
  const heartbeat = () => send({ type: MessageType.MsgHeartbeat, commit: Math.min(match, commit) });
  const append = (entries: Message['entries']) => {
    for (const e of entries) {
      e.term = TERM;
      e.index = ++lastIndex;
    }
    send({ type: MessageType.MsgApp, index: lastIndex - entries.length, logTerm: lastTerm, entries, commit });
    if (entries.length > 0) lastTerm = TERM;
  };
  const handler: RaftHandler = {
    process(m) {
      received.push(m);
      switch (m.type) {
        case MessageType.MsgVoteResp:
          if (!m.reject && m.term === TERM) granted = true;
          break;
        case MessageType.MsgAppResp:
          if (!m.reject && m.index > match) {
            match = m.index;
            commit = match; // both members hold it: a quorum of two
            heartbeat();
          }
          break;
        case MessageType.MsgProp:
          append(m.entries);
          break;
        case MessageType.MsgReadIndex:
          send({ type: MessageType.MsgReadIndexResp, index: commit, entries: m.entries });
          break;
      }
    },
    isIdRemoved: () => false,
    reportUnreachable: () => {},
    reportSnapshot: () => {},
  };
  transport = new PeerTransport({ localId: fakeId, clusterId: cid, handler, peerUrls: [fakeUrl] });
  transport.addPeer(realId, [realPeerUrl]);

  const dataDir = mkdtempSync(join(tmpdir(), 'transport-interop-'));
  let etcdLog = '';
  const etcd = spawn(
    ETCD,
    [
      '--name=real',
      `--data-dir=${dataDir}`,
      `--listen-peer-urls=${realPeerUrl}`,
      `--initial-advertise-peer-urls=${realPeerUrl}`,
      `--listen-client-urls=${clientUrl}`,
      `--advertise-client-urls=${clientUrl}`,
      `--initial-cluster=real=${realPeerUrl},fake=${fakeUrl}`,
      `--initial-cluster-token=${token}`,
      '--initial-cluster-state=new',
      '--election-timeout=5000',
      '--logger=zap',
      '--log-outputs=stderr',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  etcd.stderr.on('data', (c: Buffer) => {
    etcdLog += c.toString();
  });
  let ticker: NodeJS.Timeout | undefined;
  t.after(async () => {
    clearInterval(ticker);
    etcd.kill('SIGKILL');
    await transport?.stop();
    await server.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  try {
    // Campaign before its own (5 s) election timeout: our log (term 1, index 2) is as long as its.
    await waitFor(() => {
      if (!granted) send({ type: MessageType.MsgVote, index: 2, logTerm: 1 });
      return granted;
    }, 'its vote');
    await waitFor(() => transport!.streamsWorking(realId), 'etcd dialed our streams');
    ticker = setInterval(heartbeat, 100);
    append([{ term: 0, index: 0, type: 0, data: Buffer.alloc(0) }]); // the leader's empty entry
    // Its attribute publish (a MsgProp forwarded to us) commits through our appends.
    await waitFor(() => commit >= 4, 'appends acknowledged');
    const env = { ...process.env, ETCDCTL_API: '3' };
    const ctl = async (...args: string[]) =>
      (await run(ETCDCTL, [`--endpoints=${clientUrl}`, '--command-timeout=10s', ...args], { env })).stdout;
    await waitFor(async () => {
      try {
        return (
          /"leader":(\d+)/.exec(await ctl('endpoint', 'status', '-w', 'json'))?.[1] === fakeId.toString()
        );
      } catch {
        return false;
      }
    }, 'etcd reports our member as leader');
    await ctl('put', 'led-by', 'etcd-ts');
    assert.equal((await ctl('get', 'led-by', '--print-value-only')).trim(), 'etcd-ts');
    assert.ok(
      received.some((m) => m.type === MessageType.MsgProp),
      'its proposals were forwarded to us',
    );
    assert.ok(!received.some((m) => m.type === MessageType.MsgAppResp && m.reject), 'no append was rejected');
    assert.match(etcdLog, new RegExp(`elected leader ${idHex(fakeId)} at term 2`));
  } catch (err) {
    t.diagnostic(etcdLog.split('\n').slice(-40).join('\n'));
    throw err;
  }
});
