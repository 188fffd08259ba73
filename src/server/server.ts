// EtcdServer: one member. Wires the MVCC store, the apply pipeline and the request checks; the api
// layer translates wire calls into calls on this object. No process-wide state: a program may run
// several members side by side and stop each cleanly.
import { accessSync, constants as fsc, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { InternalRaftRequest } from '../gen/etcdserverpb/raft_internal.js';
import type {
  CompactionRequest,
  CompactionResponse,
  DeleteRangeRequest,
  DeleteRangeResponse,
  LeaseGrantRequest,
  LeaseGrantResponse,
  LeaseLeasesResponse,
  LeaseRevokeRequest,
  LeaseRevokeResponse,
  LeaseTimeToLiveRequest,
  LeaseTimeToLiveResponse,
  Member,
  PutRequest,
  PutResponse,
  RangeRequest,
  RangeResponse,
  ResponseHeader,
  StatusResponse,
  TxnRequest,
  TxnResponse,
} from '../gen/etcdserverpb/rpc.js';
import { Event_EventType } from '../gen/mvccpb/kv.js';
import { LeaseNotFoundError, LeaseTTLTooLargeError } from '../lease/errors.js';
import { Lessor, MAX_LEASE_TTL } from '../lease/lessor.js';
import { recoverDefrag } from '../mvcc/defrag.js';
import { MvccStore } from '../mvcc/store.js';
import { Applier } from './apply.js';
import { KvApplier } from './apply_kv.js';
import type { ServerConfig } from './config.js';
import { Errors } from './errors.js';
import { checkDeleteRequest, checkPutRequest, checkRangeRequest, checkTxnRequest } from './kv_validate.js';
import { lmdbLeaseBackend } from './lease_backend.js';
import { importBboltBackend } from './backend_import.js';
import { LocalCommitter } from './local_commit.js';
import type { Logger } from './logger.js';
import { Maintenance } from './maintenance.js';
import { clusterId, idToHex, memberId } from './member_id.js';
import { RequestIdGenerator } from './request_id.js';
import { SERVER_VERSION } from './version.js';

export class DataDirError extends Error {}

/** How often remaining lease TTLs are written through the log (and so survive a restart). */
const LEASE_CHECKPOINT_INTERVAL_MS = 5000;

export class EtcdServer {
  readonly memberId: bigint;
  readonly clusterId: bigint;
  /** Single member: the term a fresh etcd member reaches after electing itself. */
  readonly raftTerm = 2;
  readonly store: MvccStore;
  readonly lessor: Lessor;
  /** alarms, quota, snapshot, defrag, auto compaction, health (src/server/maintenance.ts) */
  readonly maintenance: Maintenance;
  private readonly kv: KvApplier;
  private readonly committer: LocalCommitter;
  private readonly ids: RequestIdGenerator;
  private readonly timers: NodeJS.Timeout[] = [];
  /** leases whose expiry revoke is in flight, so the expiry loop proposes each once */
  private readonly revoking = new Set<bigint>();
  private closed = false;

  private constructor(
    readonly config: ServerConfig,
    readonly log: Logger,
    store: MvccStore,
  ) {
    const ownPeerUrls = config.initialCluster.get(config.name) ?? [];
    this.memberId = memberId(ownPeerUrls, config.initialClusterToken);
    const allIds = [...config.initialCluster.values()].map((urls) =>
      memberId(urls, config.initialClusterToken),
    );
    this.clusterId = clusterId(allIds);
    this.store = store;
    // etcd's floor on lease TTLs: one and a half election timeouts, in whole seconds
    const minTtl = Math.ceil((1.5 * config.electionTimeoutMs) / 1000);
    this.lessor = new Lessor(lmdbLeaseBackend(store), { minTtl });
    for (const { key, lease } of store.leasedKeys()) this.lessor.setKeyLease(key.toString('latin1'), lease);
    store.onTxnApplied((_rev, events) => {
      for (const e of events) {
        const key = e.kv!.key.toString('latin1');
        this.lessor.setKeyLease(key, e.type === Event_EventType.PUT ? e.kv!.lease : 0n);
      }
    });
    const header = (revision: number) => this.header(revision);
    this.maintenance = new Maintenance({
      store,
      config,
      log,
      memberId: this.memberId,
      propose: (fields) => this.propose(fields),
      proposeNow: (fields) => this.propose(fields, true),
      compact: (revision) => this.compact({ revision, physical: false }),
      members: () => this.members(),
    });
    this.kv = new KvApplier(store, header, { leaseExists: (id) => this.lessor.lookup(id) !== undefined });
    this.committer = new LocalCommitter(store, new Applier(store, this.kv, this.lessor, header, this.maintenance));
    this.ids = new RequestIdGenerator(this.memberId, Date.now());
    // a single member is always the leader: it runs the lease clocks
    this.lessor.promote();
    this.timers.push(setInterval(() => this.revokeExpiredLeases(), 250));
    this.timers.push(setInterval(() => this.checkpointLeases(), LEASE_CHECKPOINT_INTERVAL_MS));
    for (const t of this.timers) t.unref();
    this.maintenance.start();
  }

  static open(config: ServerConfig, log: Logger): EtcdServer {
    if (config.initialCluster.size > 1) {
      // Without replication each member would serve its own diverging copy: refuse rather than pretend.
      throw new DataDirError(
        `--initial-cluster names ${config.initialCluster.size} members, but this build of etcd-ts runs single-member clusters only (raft replication is not wired in yet); start one member`,
      );
    }
    const memberDir = join(config.dataDir, 'member');
    try {
      mkdirSync(memberDir, { recursive: true, mode: 0o700 });
      accessSync(memberDir, fsc.W_OK | fsc.R_OK);
    } catch (err) {
      throw new DataDirError(
        `cannot use data directory ${config.dataDir}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}; check that the path is a directory this user can write, or pass another --data-dir`,
      );
    }
    const lmdbDir = join(memberDir, 'lmdb');
    try {
      // maintenance: finish an interrupted defrag; import a bbolt backend (etcd's, or a restored snapshot)
      const defrag = recoverDefrag(lmdbDir);
      if (defrag !== 'none') log.warn({ outcome: defrag }, 'recovered an interrupted defragmentation');
      const imported = importBboltBackend(memberDir, lmdbDir);
      if (imported) log.info(imported, 'imported the bbolt backend member/snap/db (renamed to db.imported)');
    } catch (err) {
      throw new DataDirError((err as Error).message);
    }
    let store: MvccStore;
    try {
      store = MvccStore.open({ dir: lmdbDir, noSync: config.unsafeNoFsync });
    } catch (err) {
      throw new DataDirError(
        `cannot open the backend in ${memberDir}: ${(err as Error).message}; the data directory may be damaged or in use by another etcd process`,
      );
    }
    const server = new EtcdServer(config, log, store);
    log.info(
      {
        'local-member-id': idToHex(server.memberId),
        'cluster-id': idToHex(server.clusterId),
        'data-dir': config.dataDir,
        'current-revision': store.currentRevision,
        'consistent-index': store.consistentIndex,
      },
      'opened backend and recovered the key index',
    );
    return server;
  }

  header(revision: number): ResponseHeader {
    return { clusterId: this.clusterId, memberId: this.memberId, revision, raftTerm: this.raftTerm };
  }

  get appliedIndex(): number {
    return this.committer.appliedIndex;
  }

  // ---- KV ----

  range(req: RangeRequest): RangeResponse {
    checkRangeRequest(req);
    // Every acknowledged write is applied before its caller hears back, so local state is linearizable.
    return this.kv.range(req);
  }

  async put(req: PutRequest): Promise<PutResponse> {
    checkPutRequest(req);
    await this.maintenance.checkQuota({ put: req });
    return (await this.propose({ put: req })) as PutResponse;
  }

  async deleteRange(req: DeleteRangeRequest): Promise<DeleteRangeResponse> {
    checkDeleteRequest(req);
    return (await this.propose({ deleteRange: req })) as DeleteRangeResponse;
  }

  async txn(req: TxnRequest): Promise<TxnResponse> {
    checkTxnRequest(req, this.config.maxTxnOps);
    await this.maintenance.checkQuota({ txn: req });
    return (await this.propose({ txn: req })) as TxnResponse;
  }

  async compact(req: CompactionRequest): Promise<CompactionResponse> {
    const result = (await this.propose({ compaction: req })) as {
      response: CompactionResponse;
      done: Promise<void>;
    };
    if (req.physical) await result.done;
    return result.response;
  }

  private propose(fields: Partial<InternalRaftRequest>, ignoreWriteGate = false): Promise<unknown> {
    if (this.closed) return Promise.reject(Errors.stopped);
    const gate = ignoreWriteGate ? undefined : this.maintenance.writeGate; // paused by a defrag
    if (gate) return gate.then(() => this.propose(fields));
    const req = InternalRaftRequest.fromPartial({ header: { ID: this.ids.generate() } });
    Object.assign(req, fields);
    // etcd measures the encoded raft request against --max-request-bytes
    const size = InternalRaftRequest.encode(req).finish().length;
    if (size > this.config.maxRequestBytes) return Promise.reject(Errors.requestTooLarge);
    return this.committer.propose(req);
  }

  // ---- Lease ----

  async leaseGrant(req: LeaseGrantRequest): Promise<LeaseGrantResponse> {
    if (req.TTL > MAX_LEASE_TTL) throw new LeaseTTLTooLargeError();
    await this.maintenance.checkQuota({ leaseGrant: req });
    const ID = req.ID !== 0n ? req.ID : this.ids.generate() & 0x7fffffffffffffffn;
    return (await this.propose({ leaseGrant: { ID, TTL: req.TTL } })) as LeaseGrantResponse;
  }

  async leaseRevoke(req: LeaseRevokeRequest): Promise<LeaseRevokeResponse> {
    return (await this.propose({ leaseRevoke: req })) as LeaseRevokeResponse;
  }

  /** A keepalive: resets the lease's clock (leader only). Returns the granted TTL, 0 if the lease is gone. */
  leaseRenew(id: bigint): number {
    try {
      return this.lessor.renew(id);
    } catch (err) {
      if (err instanceof LeaseNotFoundError) return 0;
      throw err;
    }
  }

  leaseTimeToLive(req: LeaseTimeToLiveRequest): LeaseTimeToLiveResponse {
    const header = this.header(this.store.currentRevision);
    const l = this.lessor.lookup(req.ID);
    if (l === undefined) return { header, ID: req.ID, TTL: -1, grantedTTL: 0, keys: [] };
    // etcd truncates: a 10 s lease shows 9 s remaining a moment after its grant
    const ttl = Math.floor(this.lessor.remainingMs(l) / 1000);
    const keys = req.keys ? [...l.keys].sort().map((k) => Buffer.from(k, 'latin1')) : [];
    return { header, ID: l.id, TTL: ttl, grantedTTL: l.ttl, keys };
  }

  leaseLeases(): LeaseLeasesResponse {
    return {
      header: this.header(this.store.currentRevision),
      leases: this.lessor.ids().map((ID) => ({ ID })),
    };
  }

  private revokeExpiredLeases(): void {
    if (this.closed) return;
    for (const id of this.lessor.expired()) {
      if (this.revoking.has(id)) continue;
      this.revoking.add(id);
      this.propose({ leaseRevoke: { ID: id } })
        .catch((err) => {
          if (!(err instanceof LeaseNotFoundError)) {
            this.log.warn(
              { 'lease-id': id.toString(16), error: String(err) },
              'failed to revoke an expired lease',
            );
          }
        })
        .finally(() => this.revoking.delete(id));
    }
  }

  /** Persists remaining TTLs through the log, so a restart does not hand every lease a fresh TTL. */
  private checkpointLeases(): void {
    if (this.closed) return;
    const checkpoints = this.lessor
      .checkpointCandidates()
      .map((c) => ({ ID: c.id, remainingTTL: c.remainingTtl }));
    if (checkpoints.length === 0) return;
    this.propose({ leaseCheckpoint: { checkpoints } }).catch(() => {});
  }

  // ---- Cluster / Maintenance ----

  members(): Member[] {
    const urls = this.config.initialCluster.get(this.config.name) ?? [];
    return [
      {
        ID: this.memberId,
        name: this.config.name,
        peerURLs: urls,
        clientURLs: this.config.advertiseClientUrls.map((u) => `${u.protocol}//${u.host}`),
        isLearner: false,
      },
    ];
  }

  status(): StatusResponse {
    return {
      header: this.header(this.store.currentRevision),
      version: SERVER_VERSION,
      dbSize: this.store.dbSize(),
      leader: this.memberId,
      raftIndex: this.appliedIndex,
      raftTerm: this.raftTerm,
      raftAppliedIndex: this.appliedIndex,
      errors: this.maintenance.statusErrors(),
      dbSizeInUse: this.store.dbSizeInUse(),
      isLearner: false,
    };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const t of this.timers) clearInterval(t);
    this.maintenance.stop();
    this.committer.stop();
    this.store.close();
  }
}
