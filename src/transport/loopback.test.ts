import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { after, test } from 'node:test';
import { EntryType, Message, MessageType } from '../gen/raftpb/raft.js';
import { PeerServer } from './http_server.js';
import { PeerTransport } from './transport.js';
import type { RaftHandler, TransportLogger } from './types.js';

const CLUSTER = 0xc1c1c1c1n;

interface Node {
  id: bigint;
  transport: PeerTransport;
  server: PeerServer;
  got: Message[];
  logs: { level: string; obj: Record<string, unknown>; msg: string }[];
  unreachable: bigint[];
  snapshots: { id: bigint; ok: boolean }[];
  critical: Error[];
  removed: Set<bigint>;
  dbs: Buffer[];
}

const nodes: Node[] = [];

async function startNode(id: bigint, opts: { port?: number; clusterId?: bigint } = {}): Promise<Node> {
  const node = {
    id,
    got: [] as Message[],
    logs: [] as Node['logs'],
    unreachable: [] as bigint[],
    snapshots: [] as Node['snapshots'],
    critical: [] as Error[],
    removed: new Set<bigint>(),
    dbs: [] as Buffer[],
  } as Node;
  const logger: TransportLogger = {
    info: (obj, msg = '') => node.logs.push({ level: 'info', obj: obj as Record<string, unknown>, msg }),
    warn: (obj, msg = '') => node.logs.push({ level: 'warn', obj: obj as Record<string, unknown>, msg }),
    error: (obj, msg = '') => node.logs.push({ level: 'error', obj: obj as Record<string, unknown>, msg }),
    debug: () => {},
  };
  const handler: RaftHandler = {
    process: (m) => {
      node.got.push(m);
    },
    isIdRemoved: (rid) => node.removed.has(rid),
    reportUnreachable: (rid) => node.unreachable.push(rid),
    reportSnapshot: (rid, ok) => node.snapshots.push({ id: rid, ok }),
    receiveSnapshot: async (_m, db) => {
      const chunks: Buffer[] = [];
      for await (const c of db as AsyncIterable<Buffer>) chunks.push(c);
      node.dbs.push(Buffer.concat(chunks));
    },
    reportCriticalError: (err) => node.critical.push(err),
  };
  node.transport = new PeerTransport({
    localId: id,
    clusterId: opts.clusterId ?? CLUSTER,
    handler,
    logger,
    dialTimeoutMs: 500,
  });
  node.server = await PeerServer.listen({
    listenUrl: `http://127.0.0.1:${opts.port ?? 0}`,
    handlers: [node.transport.handler()],
  });
  nodes.push(node);
  return node;
}

async function stopNode(n: Node): Promise<void> {
  await n.transport.stop();
  await n.server.close();
}

after(async () => {
  for (const n of nodes) await stopNode(n).catch(() => {});
});

async function waitFor(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function link(a: Node, b: Node): void {
  a.transport.addPeer(b.id, [b.server.url]);
  b.transport.addPeer(a.id, [a.server.url]);
}

function apps(from: bigint, to: bigint, term: number, start: number, count: number): Message[] {
  const out: Message[] = [];
  for (let i = 0; i < count; i++) {
    const idx = start + i;
    out.push(
      Message.fromPartial({
        type: MessageType.MsgApp,
        from,
        to,
        term,
        logTerm: term,
        index: idx,
        commit: idx,
        entries: [
          { term, index: idx + 1, type: EntryType.EntryNormal, data: Buffer.from(`value-${idx + 1}`) },
        ],
      }),
    );
  }
  return out;
}

test('two transports exchange thousands of messages in order over streams', async () => {
  const a = await startNode(1n);
  const b = await startNode(2n);
  link(a, b);
  await waitFor(() => a.transport.streamsWorking(2n) && b.transport.streamsWorking(1n), 'streams');
  assert.ok(a.transport.activeSince(2n)! > 0);

  const N = 5000;
  const appMsgs = apps(1n, 2n, 3, 0, N);
  const hbs = Array.from({ length: N }, (_, i) =>
    Message.fromPartial({ type: MessageType.MsgHeartbeat, from: 1n, to: 2n, term: 3, commit: i }),
  );
  // Interleaved, in bursts across several event-loop turns.
  for (let i = 0; i < N; i += 500) {
    const batch: Message[] = [];
    for (let j = i; j < i + 500; j++) batch.push(appMsgs[j], hbs[j]);
    a.transport.send(batch);
    await new Promise((r) => setImmediate(r));
  }
  // And the other way.
  b.transport.send(
    Array.from({ length: 1000 }, (_, i) =>
      Message.fromPartial({ type: MessageType.MsgAppResp, from: 2n, to: 1n, term: 3, index: i }),
    ),
  );
  await waitFor(() => b.got.length === 2 * N && a.got.length === 1000, 'all messages');
  const gotApps = b.got.filter((m) => m.type === MessageType.MsgApp);
  const gotHbs = b.got.filter((m) => m.type === MessageType.MsgHeartbeat);
  assert.deepEqual(
    gotApps.map((m) => Message.toJSON(m)),
    appMsgs.map((m) => Message.toJSON(m)),
  );
  assert.deepEqual(
    gotHbs.map((m) => m.commit),
    hbs.map((m) => m.commit),
  );
  assert.deepEqual(
    a.got.map((m) => m.index),
    Array.from({ length: 1000 }, (_, i) => i),
  );
  assert.equal(a.unreachable.length, 0);
  await stopNode(a);
  await stopNode(b);
});

test('streams reconnect after the receiver restarts', async () => {
  const a = await startNode(11n);
  let b = await startNode(12n);
  link(a, b);
  await waitFor(() => a.transport.streamsWorking(12n), 'streams');
  a.transport.send(apps(11n, 12n, 2, 0, 10));
  await waitFor(() => b.got.length === 10, 'first batch');

  const port = b.server.port;
  await stopNode(b);
  await waitFor(() => !a.transport.streamsWorking(12n), 'a sees the stream go');
  b = await startNode(12n, { port });
  b.transport.addPeer(11n, [a.server.url]);
  await waitFor(() => a.transport.streamsWorking(12n), 'streams again');
  // A new connection: the msgappv2 state starts over, so a continuation must be sent in full.
  a.transport.send(apps(11n, 12n, 2, 10, 10));
  await waitFor(() => b.got.length === 10, 'second batch');
  assert.deepEqual(
    b.got.map((m) => m.index),
    Array.from({ length: 10 }, (_, i) => 10 + i),
  );
  assert.ok(a.logs.some((l) => l.msg === 'lost TCP streaming connection with remote peer'));
  await stopNode(a);
  await stopNode(b);
});

test('a peer with another cluster ID is refused (412 cluster ID mismatch)', async () => {
  const a = await startNode(21n);
  const b = await startNode(22n, { clusterId: 0xdeadn });
  link(a, b);
  await waitFor(
    () => a.logs.some((l) => l.msg === 'request sent was ignored by remote peer due to cluster ID mismatch'),
    'mismatch logged',
  );
  assert.ok(b.logs.some((l) => l.msg === 'request cluster ID mismatch'));
  // Pipeline too: the POST is refused and the peer reported unreachable.
  a.transport.send([Message.fromPartial({ type: MessageType.MsgVote, from: 21n, to: 22n, term: 5 })]);
  await waitFor(() => a.unreachable.includes(22n), 'unreachable reported');
  assert.equal(b.got.length, 0);
  assert.equal(a.transport.streamsWorking(22n), false);

  // Raw check of the answer's status and body.
  const res = await fetch(`${b.server.url}/raft/stream/message/15`, {
    headers: { 'X-Etcd-Cluster-ID': 'c1c1c1c1', 'X-Server-Version': '3.4.23', 'X-Raft-To': '16' },
  });
  assert.equal(res.status, 412);
  assert.equal(await res.text(), 'cluster ID mismatch\n');
  assert.equal(res.headers.get('x-etcd-cluster-id'), 'dead');
  await stopNode(a);
  await stopNode(b);
});

test('pipeline delivers before streams are up; unreachable peers are logged with ID and URL', async () => {
  const a = await startNode(31n);
  const b = await startNode(32n);
  // b does not know a: its streams refuse a (404), but the pipeline POST is accepted.
  a.transport.addPeer(32n, [b.server.url]);
  a.transport.send([
    Message.fromPartial({ type: MessageType.MsgVote, from: 31n, to: 32n, term: 9, index: 4, logTerm: 2 }),
  ]);
  await waitFor(() => b.got.length === 1, 'pipelined vote');
  assert.equal(b.got[0].type, MessageType.MsgVote);
  assert.equal(b.got[0].term, 9);

  const dead = await startNode(33n);
  const deadUrl = dead.server.url;
  await stopNode(dead);
  a.transport.addPeer(33n, [deadUrl]);
  await waitFor(
    () =>
      a.logs.some(
        (l) =>
          l.level === 'warn' &&
          l.obj['remote-peer-id'] === '21' &&
          l.obj['remote-peer-url'] === deadUrl &&
          /failed to dial 21 on stream (Message|MsgApp v2) \(dial tcp .*: connect: connection refused\)/.test(
            String(l.obj.error),
          ),
      ),
    'unreachable warning',
  );
  await stopNode(a);
  await stopNode(b);
});

test('snapshot: MsgSnap and its db are streamed; the receiver saves then processes', async () => {
  const a = await startNode(41n);
  const b = await startNode(42n);
  link(a, b);
  const db = Buffer.alloc(3 * 1024 * 1024 + 17);
  for (let i = 0; i < db.length; i++) db[i] = (i * 31) & 0xff;
  const msg = Message.fromPartial({
    type: MessageType.MsgSnap,
    from: 41n,
    to: 42n,
    term: 4,
    snapshot: {
      data: Buffer.from('v2 store'),
      metadata: { index: 100, term: 4, confState: { voters: [41n, 42n] } },
    },
  });
  a.transport.sendSnapshot(msg, Readable.from([db.subarray(0, 1000), db.subarray(1000)]), db.length);
  await waitFor(() => a.snapshots.length === 1, 'snapshot report');
  assert.deepEqual(a.snapshots, [{ id: 42n, ok: true }]);
  assert.equal(b.dbs.length, 1);
  assert.ok(b.dbs[0].equals(db));
  assert.equal(b.got.length, 1);
  assert.equal(b.got[0].snapshot?.metadata?.index, 100);
  await stopNode(a);
  await stopNode(b);
});

test('a removed member is refused (410) and told so', async () => {
  const a = await startNode(51n);
  const b = await startNode(52n);
  b.removed.add(51n);
  link(a, b);
  await waitFor(() => a.critical.length > 0, 'critical error');
  assert.match(a.critical[0].message, /permanently removed/);
  const res = await fetch(`${b.server.url}/raft/stream/message/33`, {
    headers: { 'X-Etcd-Cluster-ID': 'c1c1c1c1', 'X-Server-Version': '3.4.23', 'X-Raft-To': '34' },
  });
  assert.equal(res.status, 410);
  assert.equal(await res.text(), 'removed member\n');
  const probe = await fetch(`${b.server.url}/raft/probing`);
  assert.equal(((await probe.json()) as { OK: boolean }).OK, true);
  const other = await fetch(`${b.server.url}/members`);
  assert.equal(other.status, 404);
  await stopNode(a);
  await stopNode(b);
});
