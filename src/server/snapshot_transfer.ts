// Raft snapshot catch-up with the backend, as etcd does it (etcdserver/snapshot_merge.go,
// rafthttp/snapshot_sender.go and http.go, etcdserver applySnapshot).
//
// Sending (leader): raft asks to send a MsgSnap when a follower needs entries it has compacted. The
// message raft made carries the last stored snapshot; it is replaced by a "merged" one made from the
// CURRENT applied state (index, its term, the ConfState), whose data is a v2-store JSON holding the
// membership (what etcd 3.4's v2store.Recovery and cluster.Recover read), and streamed over POST
// /raft/snapshot followed by a bbolt copy of the backend taken at that same applied index. A member
// added after the last stored snapshot is thereby in the ConfState it receives.
//
// Receiving (follower): the db is saved as member/snap/%016x.snap.db (fsynced) before raft sees the
// MsgSnap; once raft's Ready has persisted the snapshot, the backend is replaced by the db in place
// (MvccStore.restoreFromBbolt) and the state derived from it (leases, members, peers) reloaded. The db's
// consistent index decides which entries after the snapshot are still applied. If the process dies
// between the snapshot's WAL record and the restore, the next start finds the backend's consistent
// index below the snapshot's and restores from the same file (recoverBackendFromSnapDb).
import {
  closeSync,
  createReadStream,
  createWriteStream,
  existsSync,
  fsyncSync,
  openSync,
  renameSync,
  rmSync,
} from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { type ConfState, type Message, MessageType, type Snapshot } from '../gen/raftpb/raft.js';
import type { Lessor } from '../lease/lessor.js';
import { writeStoreSnapshot } from '../mvcc/snapshot.js';
import type { MvccStore, RestoreInfo } from '../mvcc/store.js';
import type { PeerTransport } from '../transport/index.js';
import { fsyncDir } from '../wal/fsutil.js';
import type { Snapshotter } from '../wal/index.js';
import type { Logger } from './logger.js';
import { idToHex } from './member_id.js';
import type { ClusterMember, Membership } from './membership.js';

export interface SnapshotTransferDeps {
  log: Logger;
  memberId: bigint;
  store: MvccStore;
  snapshotter: Snapshotter;
  transport: PeerTransport;
  lessor: Lessor;
  membership: Membership;
  /** The current applied index, its term and the ConfState after it. */
  appliedState(): { index: number; term: number; confState: ConfState };
  /** The v2-store JSON for a snapshot's data (v2StoreSnapshot of the current membership). */
  v2Data(): Buffer;
  /** raft's SnapshotStatus for a MsgSnap that failed before reaching the transport. */
  reportSnapshot(to: bigint, ok: boolean): void;
  /** After a restore: the server reloads what it caches from the backend (cluster version). */
  onRestored(): void;
}

const ZERO_TIME = '0001-01-01T00:00:00Z';

interface V2Node {
  Path: string;
  CreatedIndex: number;
  ModifiedIndex: number;
  ExpireTime: string;
  Value: string;
  Children: Record<string, V2Node> | null;
}

/**
 * A minimal etcd 3.4 v2 store, serialized as its Save() does (json.Marshal of the store): the
 * namespaces /0 and /1, the members under /0/members/<id>/{raftAttributes,attributes}, removed members
 * under /0/removed_members/<id>, the cluster version at /0/version. The watcher hub and stats are left
 * out, so Recovery (json.Unmarshal into the live store) keeps the receiver's own.
 */
export function v2StoreSnapshot(
  members: readonly ClusterMember[],
  removed: readonly bigint[],
  clusterVersion: string | undefined,
): Buffer {
  let idx = 0;
  const kv = (path: string, value: string): V2Node => {
    idx++;
    return {
      Path: path,
      CreatedIndex: idx,
      ModifiedIndex: idx,
      ExpireTime: ZERO_TIME,
      Value: value,
      Children: null,
    };
  };
  const dir = (path: string): V2Node => {
    idx++;
    return {
      Path: path,
      CreatedIndex: idx,
      ModifiedIndex: idx,
      ExpireTime: ZERO_TIME,
      Value: '',
      Children: {},
    };
  };
  const root: V2Node = {
    Path: '/',
    CreatedIndex: 0,
    ModifiedIndex: 0,
    ExpireTime: ZERO_TIME,
    Value: '',
    Children: {},
  };
  const ns0 = dir('/0');
  const ns1 = dir('/1');
  root.Children!['0'] = ns0;
  root.Children!['1'] = ns1;
  const membersDir = dir('/0/members');
  ns0.Children!.members = membersDir;
  for (const m of members) {
    const id = m.id.toString(16);
    const md = dir(`/0/members/${id}`);
    membersDir.Children![id] = md;
    const raft = `{"peerURLs":${JSON.stringify(m.peerURLs)}${m.isLearner ? ',"isLearner":true' : ''}}`;
    md.Children!.raftAttributes = kv(`/0/members/${id}/raftAttributes`, raft);
    if (m.name !== '' || m.clientURLs.length > 0) {
      const parts: string[] = [];
      if (m.name !== '') parts.push(`"name":${JSON.stringify(m.name)}`);
      if (m.clientURLs.length > 0) parts.push(`"clientURLs":${JSON.stringify(m.clientURLs)}`);
      md.Children!.attributes = kv(`/0/members/${id}/attributes`, `{${parts.join(',')}}`);
    }
  }
  if (removed.length > 0) {
    const rd = dir('/0/removed_members');
    ns0.Children!.removed_members = rd;
    for (const r of removed) {
      const id = r.toString(16);
      rd.Children![id] = kv(`/0/removed_members/${id}`, '');
    }
  }
  if (clusterVersion !== undefined) ns0.Children!.version = kv('/0/version', clusterVersion);
  return Buffer.from(JSON.stringify({ Root: root, CurrentIndex: idx, CurrentVersion: 2 }));
}

export class SnapshotTransfer {
  private seq = 0;
  /** followers a merged snapshot is being prepared or streamed for */
  private readonly inFlight = new Set<bigint>();

  constructor(private readonly d: SnapshotTransferDeps) {}

  /** The transport's send, with every MsgSnap replaced by a merged snapshot streamed with the backend. */
  send(msgs: readonly Message[]): void {
    let others: Message[] | undefined;
    for (let i = 0; i < msgs.length; i++) {
      const m = msgs[i]!;
      if (m.type !== MessageType.MsgSnap) {
        others?.push(m);
        continue;
      }
      if (others === undefined) others = msgs.slice(0, i);
      this.sendMerged(m);
    }
    this.d.transport.send(others ?? msgs);
  }

  private sendMerged(m: Message): void {
    const log = this.d.log;
    const to = m.to;
    if (this.inFlight.has(to)) return; // raft waits for the report of the one in flight
    let snapshot: Snapshot;
    try {
      const st = this.d.appliedState();
      snapshot = {
        metadata: { index: st.index, term: st.term, confState: st.confState },
        data: this.d.v2Data(),
      };
    } catch (err) {
      log.warn({ 'remote-peer-id': idToHex(to), error: String(err) }, 'failed to create a merged snapshot');
      this.d.reportSnapshot(to, false);
      return;
    }
    const index = snapshot.metadata!.index;
    const path = join(this.d.snapshotter.dir, `db.tmp.send-${process.pid}-${++this.seq}`);
    this.inFlight.add(to);
    // the read transaction of the copy is taken now, synchronously: the db is the state at `index`
    const written = writeStoreSnapshot(this.d.store, path);
    written
      .then((info) => {
        if (info.consistentIndex < index) {
          throw new Error(
            `backend consistent index ${info.consistentIndex} is behind the applied index ${index}`,
          );
        }
        const msg: Message = { ...m, snapshot };
        log.info(
          {
            'from-id': idToHex(this.d.memberId),
            'to-id': idToHex(to),
            'snapshot-index': index,
            'snapshot-term': snapshot.metadata!.term,
            bytes: info.size,
          },
          'sending merged snapshot',
        );
        const db = createReadStream(path);
        db.once('close', () => {
          rmSync(path, { force: true });
          this.inFlight.delete(to);
        });
        this.d.transport.sendSnapshot(msg, db, info.size);
      })
      .catch((err: unknown) => {
        rmSync(path, { force: true });
        rmSync(`${path}.part`, { force: true });
        this.inFlight.delete(to);
        log.warn({ 'remote-peer-id': idToHex(to), error: String(err) }, 'failed to create a merged snapshot');
        this.d.reportSnapshot(to, false);
      });
  }

  /** RaftHandler.receiveSnapshot: saves the db as %016x.snap.db (fsynced), as etcd's SaveDBFrom. */
  async receive(msg: Message, db: NodeJS.ReadableStream): Promise<void> {
    const index = msg.snapshot?.metadata?.index ?? 0;
    const dir = this.d.snapshotter.dir;
    const tmp = join(dir, `db.tmp.recv-${process.pid}-${++this.seq}`);
    try {
      await pipeline(db, createWriteStream(tmp, { mode: 0o600 }));
      const fd = openSync(tmp, 'r+');
      try {
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      const path = this.d.snapshotter.dbFilePath(index);
      renameSync(tmp, path);
      fsyncDir(dir);
      this.d.log.info({ path, 'snapshot-index': index }, 'saved database snapshot to disk');
    } catch (err) {
      rmSync(tmp, { force: true });
      throw err;
    }
  }

  /**
   * raft_node's onSnapshot: the leader's snapshot is persisted; replace the backend with the db that came
   * with it and reload what is derived from the backend. Throws if the db is missing or unreadable (the
   * member cannot go on without it).
   */
  applySnapshot(snap: Snapshot, current: { snapshotIndex: number; appliedIndex: number }): RestoreInfo {
    const log = this.d.log;
    const md = snap.metadata!;
    const fields = {
      'current-snapshot-index': current.snapshotIndex,
      'current-applied-index': current.appliedIndex,
      'incoming-leader-snapshot-index': md.index,
      'incoming-leader-snapshot-term': md.term,
    };
    log.info(fields, 'applying snapshot');
    const path = this.d.snapshotter.dbFilePath(md.index);
    if (!existsSync(path)) {
      throw new Error(
        `failed to open snapshot backend: ${path} does not exist (the leader sent no database)`,
      );
    }
    const info = this.restore(path);
    this.d.snapshotter.releaseSnapDBs(snap);
    log.info(
      { ...fields, 'consistent-index': info.consistentIndex, revision: info.revision },
      'applied snapshot',
    );
    return info;
  }

  /**
   * At start: a snapshot from the leader whose backend restore did not happen (the process died after
   * the snapshot's WAL record): restore it from its saved db. Returns undefined when nothing is to do.
   */
  recoverBackendFromSnapDb(snapshotIndex: number): RestoreInfo | undefined {
    if (snapshotIndex === 0 || this.d.store.consistentIndex >= snapshotIndex) return undefined;
    const path = this.d.snapshotter.dbFilePath(snapshotIndex);
    if (!existsSync(path)) return undefined;
    this.d.log.info(
      { 'snapshot-index': snapshotIndex, 'consistent-index': this.d.store.consistentIndex, path },
      'backend is behind the snapshot: restoring it from the received database snapshot',
    );
    return this.restore(path);
  }

  private restore(path: string): RestoreInfo {
    const log = this.d.log;
    const before = new Map(this.d.membership.all().map((m) => [m.id, m] as const));
    log.info({}, 'restoring mvcc store');
    const info = this.d.store.restoreFromBbolt(path);
    log.info({ 'consistent-index': info.consistentIndex, revision: info.revision }, 'restored mvcc store');
    // leases (then their keys, as etcd recovers the lessor before the kv attaches keys)
    this.d.lessor.reload();
    for (const { key, lease } of this.d.store.leasedKeys())
      this.d.lessor.setKeyLease(key.toString('latin1'), lease);
    log.info({ leases: this.d.lessor.size }, 'restored lease store');
    // members, then the peers the transport talks to
    this.d.membership.reload();
    const t = this.d.transport;
    for (const m of this.d.membership.all()) {
      if (m.id === this.d.memberId) continue;
      const prev = before.get(m.id);
      if (prev === undefined) t.addPeer(m.id, m.peerURLs);
      else if (prev.peerURLs.join(',') !== m.peerURLs.join(',')) t.updatePeer(m.id, m.peerURLs);
    }
    for (const id of before.keys()) {
      if (id !== this.d.memberId && this.d.membership.get(id) === undefined) t.removePeer(id);
    }
    log.info(
      { members: this.d.membership.all().map((m) => idToHex(m.id)) },
      'restored cluster configuration',
    );
    this.d.onRestored();
    return info;
  }
}
