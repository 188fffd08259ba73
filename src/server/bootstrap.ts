// Decides who this member is and what raft log it starts from:
//  - restart: a WAL exists, so the data dir wins and the --initial-* flags are ignored (as in etcd);
//  - new cluster: member and cluster IDs from --initial-cluster and its token; the initial members
//    become the first (conf change) entries of the log;
//  - join an existing cluster (--initial-cluster-state existing): ask the listed peers for the
//    cluster's membership, find ourselves in it by our peer URLs, and start with an empty log.
import { mkdirSync } from 'node:fs';
import { Metadata } from '../gen/etcdserverpb/etcdserver.js';
import type { Snapshot } from '../gen/raftpb/raft.js';
import { MemoryStorage } from '../raft/index.js';
import { fetchMembers, type PeerDialer, type PeerMember } from '../transport/index.js';
import {
  encodeMetadata,
  SnapError,
  Snapshotter,
  snapDir,
  validSnapshotEntries,
  Wal,
  walDir,
  walExists,
} from '../wal/index.js';
import type { ServerConfig } from './config.js';
import type { Logger } from './logger.js';
import { clusterId, idToHex, memberId } from './member_id.js';
import { type ClusterMember, memberToJson } from './membership.js';

export class BootstrapError extends Error {}

export interface Bootstrapped {
  memberId: bigint;
  clusterId: bigint;
  wal: Wal;
  snapshotter: Snapshotter;
  storage: MemoryStorage;
  snapshot: Snapshot | undefined;
  /** brand-new cluster: these members must be bootstrapped into the raft log */
  initialMembers: ClusterMember[] | undefined;
  /** joining an existing cluster: its members as the peers told us */
  existingMembers: ClusterMember[] | undefined;
  restarted: boolean;
}

export async function bootstrap(cfg: ServerConfig, log: Logger, dialer?: PeerDialer): Promise<Bootstrapped> {
  const wdir = walDir(cfg.dataDir);
  const sdir = snapDir(cfg.dataDir);
  mkdirSync(sdir, { recursive: true, mode: 0o700 });
  const snapshotter = new Snapshotter(sdir, log);
  const walOpts = { unsafeNoFsync: cfg.unsafeNoFsync, logger: log };

  if (walExists(wdir)) {
    const walSnaps = validSnapshotEntries(wdir);
    let snapshot: Snapshot | undefined;
    try {
      snapshot = snapshotter.loadNewestAvailable(walSnaps);
    } catch (err) {
      if (!(err instanceof SnapError && err.code === 'NO_SNAPSHOT')) throw err;
    }
    const marker = snapshot?.metadata
      ? { index: snapshot.metadata.index, term: snapshot.metadata.term }
      : { index: 0, term: 0 };
    const wal = Wal.open(wdir, marker, walOpts);
    const { metadata, hardState, entries } = wal.readAll();
    const meta = Metadata.decode(metadata);
    const storage = new MemoryStorage();
    if (snapshot) storage.applySnapshot(snapshot);
    storage.setHardState(hardState);
    storage.append(entries);
    log.info(
      {
        'local-member-id': idToHex(meta.NodeID),
        'cluster-id': idToHex(meta.ClusterID),
        commit: hardState.commit,
        'last-index': storage.lastIndex(),
      },
      'restarting local member',
    );
    return {
      memberId: meta.NodeID,
      clusterId: meta.ClusterID,
      wal,
      snapshotter,
      storage,
      snapshot,
      initialMembers: undefined,
      existingMembers: undefined,
      restarted: true,
    };
  }

  const token = cfg.initialClusterToken;
  const ownPeerUrls = cfg.initialCluster.get(cfg.name) ?? [];
  if (cfg.initialClusterState === 'existing') {
    const { cid, members } = await fetchRemoteCluster(cfg, log, dialer);
    const sorted = [...ownPeerUrls].sort().join(',');
    const me = members.find((m) => [...m.peerURLs].sort().join(',') === sorted);
    if (me === undefined) {
      throw new BootstrapError(
        `the existing cluster has no member with this member's peer URLs (${ownPeerUrls.join(',')}); add it first with \`etcdctl member add ${cfg.name} --peer-urls=${ownPeerUrls.join(',')}\``,
      );
    }
    const wal = Wal.create(wdir, encodeMetadata({ NodeID: me.id, ClusterID: cid }), walOpts);
    return {
      memberId: me.id,
      clusterId: cid,
      wal,
      snapshotter,
      storage: new MemoryStorage(),
      snapshot: undefined,
      initialMembers: undefined,
      existingMembers: members.map((m) => ({
        id: m.id,
        name: m.name,
        peerURLs: m.peerURLs,
        clientURLs: m.clientURLs,
        isLearner: m.isLearner === true,
      })),
      restarted: false,
    };
  }

  const initialMembers: ClusterMember[] = [...cfg.initialCluster.entries()].map(([name, urls]) => ({
    id: memberId(urls, token),
    name,
    peerURLs: [...urls].sort(),
    clientURLs: [],
    isLearner: false,
  }));
  const ids = new Set(initialMembers.map((m) => m.id));
  if (ids.size !== initialMembers.length) {
    throw new BootstrapError(
      '--initial-cluster lists the same peer URLs for two members; give each member its own URLs',
    );
  }
  const id = memberId(ownPeerUrls, token);
  const cid = clusterId(initialMembers.map((m) => m.id));
  const wal = Wal.create(wdir, encodeMetadata({ NodeID: id, ClusterID: cid }), walOpts);
  log.info(
    {
      'local-member-id': idToHex(id),
      'cluster-id': idToHex(cid),
      'initial-cluster': initialMembers.map((m) => memberToJson(m, false)),
    },
    'starting a new member of a new cluster',
  );
  return {
    memberId: id,
    clusterId: cid,
    wal,
    snapshotter,
    storage: new MemoryStorage(),
    snapshot: undefined,
    initialMembers,
    existingMembers: undefined,
    restarted: false,
  };
}

/** Asks the other members listed in --initial-cluster for the cluster's membership. */
async function fetchRemoteCluster(
  cfg: ServerConfig,
  log: Logger,
  dialer: PeerDialer | undefined,
): Promise<{ cid: bigint; members: PeerMember[] }> {
  const errors: string[] = [];
  for (const [name, urls] of cfg.initialCluster) {
    if (name === cfg.name) continue;
    for (const url of urls) {
      try {
        const { clusterId: cid, members } = await fetchMembers(url, AbortSignal.timeout(2000), dialer);
        return { cid, members };
      } catch (err) {
        errors.push(`${url}: ${(err as Error).message}`);
        log.warn(
          { 'remote-peer-url': url, error: (err as Error).message },
          'failed to get cluster members from peer',
        );
      }
    }
  }
  throw new BootstrapError(
    `cannot fetch cluster info from the peer URLs in --initial-cluster (${errors.join('; ') || 'no other members listed'}); check that the existing members are running and reachable`,
  );
}
