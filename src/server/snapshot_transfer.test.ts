// SnapshotTransfer without a cluster: the merged MsgSnap and its db, the v2-store data, the restore of
// a received db with what derives from it (leases, members, peers), and the recovery at start.
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { type Message, MessageType } from '../gen/raftpb/raft.js';
import { Lessor } from '../lease/lessor.js';
import { BboltReader } from '../mvcc/bbolt/index.js';
import { writeStoreSnapshot } from '../mvcc/snapshot.js';
import { MvccStore } from '../mvcc/store.js';
import { tempDirs } from '../testing/temp_dirs.js';
import type { PeerTransport } from '../transport/index.js';
import { Snapshotter } from '../wal/index.js';
import { lmdbLeaseBackend } from './lease_backend.js';
import { createLogger } from './logger.js';
import { Membership } from './membership.js';
import { SnapshotTransfer, v2StoreSnapshot } from './snapshot_transfer.js';

const tmp = tempDirs('snap-transfer-test-');

const B = (s: string) => Buffer.from(s, 'latin1');
const log = createLogger('error');

interface FakeTransport {
  sent: Message[];
  snaps: Array<{ msg: Message; db: Buffer; size: number }>;
  peers: string[];
  done: Promise<void>;
}

function fakeTransport(): { t: PeerTransport; f: FakeTransport } {
  let resolve!: () => void;
  const f: FakeTransport = { sent: [], snaps: [], peers: [], done: new Promise((r) => (resolve = r)) };
  const t = {
    send: (msgs: Message[]) => f.sent.push(...msgs),
    sendSnapshot: (msg: Message, db: NodeJS.ReadableStream, size: number) => {
      const chunks: Buffer[] = [];
      db.on('data', (c: Buffer) => chunks.push(c));
      db.on('end', () => {
        f.snaps.push({ msg, db: Buffer.concat(chunks), size });
        resolve();
      });
    },
    addPeer: (id: bigint) => f.peers.push(`add ${id}`),
    updatePeer: (id: bigint) => f.peers.push(`update ${id}`),
    removePeer: (id: bigint) => f.peers.push(`remove ${id}`),
  } as unknown as PeerTransport;
  return { t, f };
}

function member(store: MvccStore, id: bigint, url: string, name = ''): void {
  store
    .bucket('members')
    .putSync(B(id.toString(16)), B(`{"id":${id},"peerURLs":["${url}"],"name":"${name}"}`));
}

function setup(applied: () => number) {
  const store = MvccStore.open({ dir: tmp() });
  const snapDir = tmp();
  const { t, f } = fakeTransport();
  const lessor = new Lessor(lmdbLeaseBackend(store), { minTtl: 1 });
  const membership = new Membership(store, 1n);
  const reports: string[] = [];
  let restored = 0;
  const tr = new SnapshotTransfer({
    log,
    memberId: 1n,
    store,
    snapshotter: new Snapshotter(snapDir),
    transport: t,
    lessor,
    membership,
    appliedState: () => ({
      index: applied(),
      term: 3,
      confState: {
        voters: [1n, 2n, 3n],
        learners: [],
        votersOutgoing: [],
        learnersNext: [],
        autoLeave: false,
      },
    }),
    v2Data: () => v2StoreSnapshot(membership.all(), membership.removedIds(), '3.4.0'),
    reportSnapshot: (id, ok) => reports.push(`${id}:${ok}`),
    onRestored: () => restored++,
  });
  return { store, snapDir, f, lessor, membership, tr, reports, restored: () => restored };
}

describe('SnapshotTransfer', () => {
  test('send: a MsgSnap goes out merged (current applied state) with a db of the backend; others as they are', async () => {
    let applied = 0;
    const s = setup(() => applied);
    s.store.applyBatch(7, () => {
      member(s.store, 1n, 'http://a:1', 'a');
      member(s.store, 2n, 'http://b:2');
      const tw = s.store.txnWrite();
      tw.put(B('k'), B('v'), 0n);
      tw.end();
    });
    applied = 7;
    s.membership.reload();
    const stale = {
      type: MessageType.MsgSnap,
      to: 2n,
      from: 1n,
      snapshot: { metadata: { index: 3, term: 1 }, data: Buffer.alloc(0) },
    } as unknown as Message;
    const hb = { type: MessageType.MsgHeartbeat, to: 3n, from: 1n } as unknown as Message;
    s.tr.send([hb, stale]);
    assert.deepEqual(
      s.f.sent.map((m) => m.type),
      [MessageType.MsgHeartbeat],
    );
    await s.f.done;
    const [{ msg, db, size }] = s.f.snaps;
    assert.equal(msg.snapshot!.metadata!.index, 7);
    assert.equal(msg.snapshot!.metadata!.term, 3);
    assert.deepEqual(msg.snapshot!.metadata!.confState!.voters, [1n, 2n, 3n]);
    const v2 = JSON.parse(msg.snapshot!.data.toString());
    assert.equal(
      v2.Root.Children['0'].Children.members.Children['1'].Children.attributes.Value,
      '{"name":"a"}',
    );
    assert.equal(
      v2.Root.Children['0'].Children.members.Children['2'].Children.raftAttributes.Value,
      '{"peerURLs":["http://b:2"]}',
    );
    assert.equal(v2.Root.Children['0'].Children.version.Value, '3.4.0');
    assert.equal(db.length, size);
    const path = join(tmp(), 'got.db');
    (await import('node:fs')).writeFileSync(path, db);
    const r = BboltReader.open(path);
    const ci = [...r.items('meta')].find((i) => i.key.toString() === 'consistent_index')!.value;
    assert.equal(ci.readUInt32BE(4), 7);
    r.close();
    // the temporary copy is gone
    await new Promise((res) => setTimeout(res, 20));
    assert.deepEqual(readdirSync(s.snapDir), []);
    await s.store.close();
  });

  test('receive + applySnapshot: the db is saved as %016x.snap.db and swapped in; leases, members, peers follow', async () => {
    // the leader's backend: members 1, 2, 4 (3 removed), a lease with a key
    const leader = MvccStore.open({ dir: tmp() });
    leader.applyBatch(500, () => {
      member(leader, 1n, 'http://a:1');
      member(leader, 2n, 'http://b:2');
      member(leader, 4n, 'http://d:4');
      leader.bucket('members_removed').putSync(B('3'), B('removed'));
      lmdbLeaseBackend(leader).save({ id: 9n, ttl: 60, remainingTtl: 0 });
      const tw = leader.txnWrite();
      tw.put(B('leased'), B('x'), 9n);
      tw.end();
    });
    const src = join(tmp(), 'leader.db');
    await writeStoreSnapshot(leader, src);

    const s = setup(() => 0);
    s.store.applyBatch(10, () => {
      member(s.store, 1n, 'http://a:1');
      member(s.store, 2n, 'http://b:2');
      member(s.store, 3n, 'http://c:3');
    });
    s.membership.reload();
    const { createReadStream } = await import('node:fs');
    const msg = {
      type: MessageType.MsgSnap,
      snapshot: { metadata: { index: 500, term: 2 } },
    } as unknown as Message;
    await s.tr.receive(msg, createReadStream(src));
    const saved = join(s.snapDir, '00000000000001f4.snap.db');
    assert.ok(existsSync(saved));

    const info = s.tr.applySnapshot({ metadata: { index: 500, term: 2 }, data: Buffer.alloc(0) } as never, {
      snapshotIndex: 0,
      appliedIndex: 10,
    });
    assert.equal(info.consistentIndex, 500);
    assert.equal(s.store.consistentIndex, 500);
    assert.equal(s.store.range(B('leased'), undefined).kvs[0]?.value.toString(), 'x');
    assert.deepEqual(s.lessor.ids(), [9n]);
    assert.deepEqual([...s.lessor.lookup(9n)!.keys], ['leased']);
    assert.deepEqual(
      s.membership.all().map((m) => m.id),
      [1n, 2n, 4n],
    );
    assert.ok(s.membership.isRemoved(3n));
    assert.deepEqual(s.f.peers, ['add 4', 'remove 3']);
    assert.equal(s.restored(), 1);
    // at start, a backend at the snapshot's index needs nothing
    assert.equal(s.tr.recoverBackendFromSnapDb(500), undefined);
    await s.store.close();
    await leader.close();
  });

  test('recoverBackendFromSnapDb: a backend behind the snapshot is restored from the saved db', async () => {
    const leader = MvccStore.open({ dir: tmp() });
    leader.applyBatch(300, () => {
      const tw = leader.txnWrite();
      tw.put(B('a'), B('1'), 0n);
      tw.end();
    });
    const s = setup(() => 0);
    await writeStoreSnapshot(leader, join(s.snapDir, '000000000000012c.snap.db'));
    s.store.applyBatch(20, () => {});
    assert.equal(s.tr.recoverBackendFromSnapDb(100), undefined); // no db for index 100
    const info = s.tr.recoverBackendFromSnapDb(300);
    assert.equal(info?.consistentIndex, 300);
    assert.equal(s.store.range(B('a'), undefined).kvs.length, 1);
    await s.store.close();
    await leader.close();
  });
});
