// EtcdServer: one member. Wires the MVCC store, the apply pipeline and the request checks; the api
// layer translates wire calls into calls on this object. No process-wide state: a program may run
// several members side by side and stop each cleanly.
import { accessSync, existsSync, constants as fsc, mkdirSync } from 'node:fs';
import { join, resolve, sep } from 'node:path';
import { type Request as V2Request, Request as V2RequestCodec } from '../gen/etcdserverpb/etcdserver.js';
import { InternalRaftRequest } from '../gen/etcdserverpb/raft_internal.js';
import type {
  CompactionRequest,
  CompactionResponse,
  DeleteRangeRequest,
  DeleteRangeResponse,
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
import {
  ConfChange,
  ConfChangeType,
  ConfChangeV2,
  type Entry,
  EntryType,
  type Message,
  type Snapshot,
} from '../gen/raftpb/raft.js';
import { Lessor } from '../lease/lessor.js';
import { recoverDefrag } from '../mvcc/defrag.js';
import { MvccStore } from '../mvcc/store.js';
import { encodeToBuffer } from '../pb/encode.js';
import { type SoftState, StateType } from '../raft/index.js';
import {
  createPeerEndpointsHandler,
  PeerDialer,
  PeerHttpError,
  PeerServer,
  PeerTransport,
} from '../transport/index.js';
import { type LoadedTls, TlsConfigError } from '../transport/tls/index.js';
import { Applier } from './apply.js';
import { KvApplier } from './apply_kv.js';
import { importBboltBackend } from './backend_import.js';
import { BootstrapError, type Bootstrapped, bootstrap } from './bootstrap.js';
import type { ServerConfig } from './config.js';
import { Errors } from './errors.js';
import { checkDeleteRequest, checkPutRequest, checkRangeRequest, checkTxnRequest } from './kv_validate.js';
import { lmdbLeaseBackend } from './lease_backend.js';
import { Leases } from './leases.js';
import type { Logger } from './logger.js';
import { Maintenance } from './maintenance.js';
import { idToHex } from './member_id.js';
import { type ClusterMember, Membership, memberFromJson, memberToJson } from './membership.js';
import { RaftNode } from './raft_node.js';
import { LinearizableReads } from './read_index.js';
import { Reconfiguration } from './reconfig.js';
import { RequestIdGenerator } from './request_id.js';
import { SnapshotTransfer, v2StoreSnapshot } from './snapshot_transfer.js';
import { loadPeerTls, TlsSetupError } from './tls_setup.js';
import { CAPABILITY_VERSION, CLUSTER_VERSION, SERVER_VERSION } from './version.js';
import { WaitRegistry } from './wait.js';

export class DataDirError extends Error {}

/** How often remaining lease TTLs are written through the log (and so survive a restart). */
const CLUSTER_BUCKET = 'cluster';
const CLUSTER_VERSION_KEY = Buffer.from('clusterVersion');

/**
 * mkdir -p, one level at a time. (Node's recursive mkdirSync can spin forever on paths whose parent
 * can never be created, e.g. under /proc; a user's typo must get an error, not a hung process.)
 */
function makeDirs(dir: string): void {
  const parts = resolve(dir).split(sep);
  let path = parts[0] === '' ? sep : parts[0]!;
  for (const part of parts.slice(1)) {
    if (part === '') continue;
    path = join(path, part);
    if (existsSync(path)) continue;
    mkdirSync(path, { mode: 0o700 });
  }
}

export class EtcdServer {
  readonly memberId: bigint;
  readonly clusterId: bigint;
  readonly store: MvccStore;
  readonly membership: Membership;
  readonly raft: RaftNode;
  readonly transport: PeerTransport;
  /** MsgSnap with the backend: merged snapshots out, received backends in (snapshot_transfer.ts) */
  private readonly snapTransfer: SnapshotTransfer;
  private peerServers: PeerServer[] = [];
  readonly lessor: Lessor;
  /** the Lease RPCs, keepalive forwarding, expiry and TTL checkpoints (leases.ts) */
  readonly leases: Leases;
  /** alarms, quota, snapshot, defrag, auto compaction, health (src/server/maintenance.ts) */
  readonly maintenance: Maintenance;
  private readonly kv: KvApplier;
  private readonly applier: Applier;
  private readonly wait = new WaitRegistry();
  private readonly ids: RequestIdGenerator;
  private applied: number;
  private snapshotIndex: number;
  private clusterVersion: string | undefined;
  /** linearizable reads: ReadIndex rounds shared by the reads that arrive meanwhile */
  private readonly reads: LinearizableReads;
  private published = false;
  private readonly readyWaiters: Array<() => void> = [];
  private boot: Bootstrapped | undefined;
  /** callers waiting for a leader to be known */
  private leaderWaiters: Array<() => void> = [];
  /** a lone voter campaigns as soon as its bootstrap entries are applied */
  private campaignAfterApply = false;
  /** a snapshot is waiting for the backend sync */
  private snapshotting = false;
  /** our own removal was applied: stop once this batch's callers have their answers */
  private removedSelf = false;
  private readonly closeListeners: Array<() => void> = [];
  /** member add/remove/update/promote and leader moves (reconfig.ts) */
  readonly reconfig: Reconfiguration;
  private closed = false;

  private constructor(
    readonly config: ServerConfig,
    readonly log: Logger,
    store: MvccStore,
    boot: Bootstrapped,
    private readonly peerTls: { tls: LoadedTls | undefined; dialer: PeerDialer },
  ) {
    this.memberId = boot.memberId;
    this.clusterId = boot.clusterId;
    this.store = store;
    this.membership = new Membership(store, boot.clusterId);
    const cv = store.bucket(CLUSTER_BUCKET).get(CLUSTER_VERSION_KEY);
    this.clusterVersion = cv ? cv.toString() : undefined;
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
      hasLeader: () => this.raft?.lead !== undefined && this.raft.lead !== 0n,
    });
    this.kv = new KvApplier(store, header, { leaseExists: (id) => this.lessor.lookup(id) !== undefined });
    this.applier = new Applier(store, this.kv, this.lessor, header, this.maintenance);
    this.ids = new RequestIdGenerator(this.memberId, Date.now());
    this.leases = new Leases({
      lessor: this.lessor,
      log,
      propose: (fields) => this.propose(fields),
      checkQuota: (req) => this.maintenance.checkQuota(req),
      isLeader: () => this.raft.isLeader(),
      leaderPeerUrl: () => this.leaderPeerUrl(),
      dialer: peerTls.dialer,
      header: () => this.header(this.store.currentRevision),
      newId: () => this.ids.generate(),
      timeoutMs: () => this.requestTimeoutMs(),
    });
    this.reads = new LinearizableReads({
      readIndex: (ctx) => this.raft.readIndex(ctx),
      leaderKnown: () => this.raft.lead !== 0n,
      waitForLeader: () => this.waitForLeader(),
      newId: () => this.ids.generate(),
      applied: () => this.applied,
      timeoutMs: () => this.requestTimeoutMs(),
    });
    // Raft re-delivers every committed entry after the last snapshot (conf changes rebuild its
    // configuration); the backend skips the ones its consistent index says it already holds.
    this.snapshotIndex = boot.snapshot?.metadata?.index ?? 0;
    this.applied = this.snapshotIndex;
    const tickMs = config.heartbeatIntervalMs;
    this.raft = new RaftNode({
      id: this.memberId,
      electionTick: Math.max(2, Math.round(config.electionTimeoutMs / tickMs)),
      heartbeatTick: 1,
      tickMs,
      preVote: config.preVote,
      applied: this.snapshotIndex,
      storage: boot.storage,
      wal: boot.wal,
      snapshotter: boot.snapshotter,
      logger: log,
    });
    if (boot.initialMembers) {
      this.raft.node.bootstrap(
        boot.initialMembers.map((m) => ({ id: m.id, context: Buffer.from(memberToJson(m)) })),
      );
    }
    if (boot.existingMembers) {
      // joining: know the peers before the leader's log (or snapshot) tells us about them
      for (const m of boot.existingMembers) if (!this.membership.get(m.id)) this.membership.add(m);
    }
    this.transport = new PeerTransport({
      localId: this.memberId,
      clusterId: this.clusterId,
      logger: log,
      dialer: peerTls.dialer,
      peerUrls: config.initialAdvertisePeerUrls.map((u) => `${u.protocol}//${u.host}`),
      handler: {
        process: (m: Message) => {
          this.raft.step(m);
        },
        isIdRemoved: (id) => this.membership.isRemoved(id),
        reportUnreachable: (id) => this.raft.reportUnreachable(id),
        reportSnapshot: (id, ok) => this.raft.reportSnapshot(id, ok),
        receiveSnapshot: (msg, db) => this.snapTransfer.receive(msg, db),
        reportCriticalError: (err) => {
          log.error({ error: err.message }, 'the cluster removed this member; stopping');
          // our removal committed (that is what the peer says): a caller waiting for it has its answer
          this.reconfig.answerSelfRemoval();
          // let an in-flight apply of our own removal answer its caller first
          setTimeout(() => this.close(), 1000).unref();
        },
      },
    });
    for (const m of this.membership.all()) {
      if (m.id !== this.memberId) this.transport.addPeer(m.id, m.peerURLs);
    }
    this.reconfig = new Reconfiguration({
      memberId: this.memberId,
      membership: this.membership,
      raft: this.raft,
      wait: this.wait,
      strictReconfigCheck: config.strictReconfigCheck,
      heartbeatMs: config.heartbeatIntervalMs,
      activeSince: (id) => this.transport.activeSince(id),
      waitForLeader: () => this.waitForLeader(),
      newId: () => this.ids.generate(),
      timeoutMs: () => this.requestTimeoutMs(),
      members: () => this.members(),
    });
    this.snapTransfer = new SnapshotTransfer({
      log,
      memberId: this.memberId,
      store,
      snapshotter: boot.snapshotter,
      transport: this.transport,
      lessor: this.lessor,
      membership: this.membership,
      appliedState: () => ({
        index: this.applied,
        term: this.raft.storage.term(this.applied),
        confState: this.raft.node.raft.prs.confState(),
      }),
      v2Data: () => this.v2Data(),
      reportSnapshot: (id, ok) => this.raft.reportSnapshot(id, ok),
      onRestored: () => {
        this.maintenance.alarms.invalidate();
        const v = store.bucket(CLUSTER_BUCKET).get(CLUSTER_VERSION_KEY);
        if (v === undefined) return;
        const first = this.clusterVersion === undefined;
        this.clusterVersion = v.toString();
        // a member that joined by snapshot learns the cluster version here (etcd logs it at recovery)
        if (first)
          this.log.info({ 'cluster-version': CAPABILITY_VERSION }, 'enabled capabilities for version');
      },
    });
    // a leader's snapshot whose backend restore was interrupted by a crash: finish it
    this.snapTransfer.recoverBackendFromSnapDb(this.snapshotIndex);
    this.leases.start();
    this.maintenance.start();
  }

  static async start(config: ServerConfig, log: Logger): Promise<EtcdServer> {
    const memberDir = join(config.dataDir, 'member');
    try {
      makeDirs(memberDir);
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
    // a failed backend commit loses that batch from disk: stop (the WAL replays it at the next start)
    let backendFailed = (_err: Error) => {};
    try {
      // the WAL makes every applied entry durable; the backend replays from its consistent index
      store = MvccStore.open({
        dir: lmdbDir,
        noSync: true,
        batch: {
          intervalMs: config.backendBatchIntervalMs,
          limit: config.backendBatchLimit,
          onCommitError: (err) => backendFailed(err),
        },
      });
    } catch (err) {
      throw new DataDirError(
        `cannot open the backend in ${memberDir}: ${(err as Error).message}; the data directory may be damaged or in use by another etcd process`,
      );
    }
    // peer TLS before bootstrap: joining asks the existing members over (maybe https) peer URLs
    let tls: LoadedTls | undefined;
    try {
      tls = await loadPeerTls(config, log);
    } catch (err) {
      store.close();
      if (err instanceof TlsConfigError || err instanceof TlsSetupError) throw new DataDirError(err.message);
      throw err;
    }
    const peerTls = { tls, dialer: new PeerDialer(tls?.clientOptions()) };
    let boot: Bootstrapped;
    try {
      boot = await bootstrap(config, log, peerTls.dialer);
    } catch (err) {
      store.close();
      if (err instanceof BootstrapError) throw new DataDirError(err.message);
      throw new DataDirError(`cannot open the raft log in ${memberDir}: ${(err as Error).message}`);
    }
    const server = new EtcdServer(config, log, store, boot, peerTls);
    backendFailed = (err) => {
      log.fatal({ error: err.message }, 'failed to commit the backend; stopping');
      server.close();
    };
    try {
      await server.startPeerListeners();
    } catch (err) {
      server.close();
      throw new DataDirError(`cannot listen for peers: ${(err as Error).message}`);
    }
    server.boot = boot;
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
    return { clusterId: this.clusterId, memberId: this.memberId, revision, raftTerm: this.raft.term };
  }

  get appliedIndex(): number {
    return this.applied;
  }

  get raftTerm(): number {
    return this.raft.term;
  }

  // ---- startup ----

  private async startPeerListeners(): Promise<void> {
    const endpoints = createPeerEndpointsHandler({
      clusterId: () => this.clusterId,
      members: () => this.membership.all(),
      clusterVersion: () => this.clusterVersion,
      renewLease: async (id) => {
        if (!this.raft.isLeader()) throw new PeerHttpError(500, 'not leader');
        const ttl = this.leases.renewLocal(id);
        if (ttl === 0) throw new PeerHttpError(404, 'lease not found');
        return ttl;
      },
      leaseTimeToLive: async (id, keys) => {
        const r = this.leases.timeToLiveLocal({ ID: id, keys });
        if (r.TTL === -1) throw new PeerHttpError(404, 'lease not found');
        return r;
      },
    });
    for (const url of this.config.listenPeerUrls) {
      if (url.protocol !== 'http:' && url.protocol !== 'https:') {
        this.log.warn(
          { url: url.toString() },
          'unix peer URLs are not served yet; not listening on this peer URL',
        );
        continue;
      }
      const host = url.hostname === 'localhost' ? '127.0.0.1' : url.hostname;
      const srv = await PeerServer.listen({
        listenUrl: `${url.protocol}//${host.includes(':') ? `[${host}]` : host}:${url.port}`,
        handlers: [this.transport.handler(), endpoints],
        tls: url.protocol === 'https:' ? this.peerTls.tls : undefined,
        logger: this.log,
      });
      this.peerServers.push(srv);
      this.log.info({ address: srv.url }, 'serving peer traffic');
    }
  }

  /** Starts raft: elections, replication, applying. Call once clients can connect. */
  run(): void {
    const boot = this.boot;
    if (boot === undefined) throw new Error('EtcdServer.run called twice');
    this.boot = undefined;
    this.raft.start({
      send: (msgs) => this.snapTransfer.send(msgs),
      apply: (entries) => this.applyEntries(entries),
      onSoftState: (ss) => this.onSoftState(ss),
      onReadStates: (rs) => this.reads.onReadStates(rs),
      onSnapshot: (snap) => this.onSnapshot(snap),
      onFatal: () => this.close(),
    });
    if (this.clusterVersion !== undefined) {
      this.log.info({ 'cluster-version': CAPABILITY_VERSION }, 'enabled capabilities for version');
    }
    const voters = boot.initialMembers ?? this.membership.voters();
    // a lone voter need not wait out an election timeout; raft lets it campaign once its
    // configuration entries are applied
    if (voters.length === 1 && voters[0]!.id === this.memberId) {
      this.campaignAfterApply = true;
      this.raft.campaign();
    } else this.raft.advanceTicksForElection();
    void this.publish();
  }

  /** Resolves once this member has published its name and client URLs through raft (etcd's ReadyNotify). */
  ready(): Promise<void> {
    if (this.published) return Promise.resolve();
    return new Promise((resolve) => this.readyWaiters.push(resolve));
  }

  /** Publishes this member's attributes through the log, retrying until it commits (etcd's publish). */
  private async publish(): Promise<void> {
    const attrs = `{"name":${JSON.stringify(this.config.name)},"clientURLs":${JSON.stringify(this.config.advertiseClientUrls.map((u) => `${u.protocol}//${u.host}`))}}`;
    while (!this.closed && !this.published) {
      const req: V2Request = {
        ID: this.ids.generate(),
        Method: 'PUT',
        Path: `/0/members/${idToHex(this.memberId)}/attributes`,
        Val: attrs,
        Dir: false,
        PrevValue: '',
        PrevIndex: 0n,
        PrevExist: false,
        Expiration: 0n,
        Wait: false,
        Since: 0n,
        Recursive: false,
        Sorted: false,
        Quorum: false,
        Time: 0n,
        Stream: false,
        Refresh: false,
      };
      try {
        await this.proposeRaw(
          req.ID,
          InternalRaftRequest.encode(InternalRaftRequest.fromPartial({ v2: req })).finish(),
        );
        this.published = true;
        this.log.info(
          {
            'local-member-id': idToHex(this.memberId),
            'local-member-attributes': `{Name:${this.config.name} ClientURLs:[${this.config.advertiseClientUrls.map((u) => `${u.protocol}//${u.host}`).join(' ')}]}`,
            'request-path': `/0/members/${idToHex(this.memberId)}/attributes`,
            'cluster-id': idToHex(this.clusterId),
          },
          'published local member to cluster through raft',
        );
        for (const w of this.readyWaiters.splice(0)) w();
      } catch (err) {
        if (this.closed) return;
        this.log.debug({ error: String(err) }, 'failed to publish local member; retrying');
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  }

  // ---- raft glue ----

  private onSoftState(ss: SoftState): void {
    const leader = ss.raftState === StateType.Leader;
    this.maintenance.setLeader(leader);
    if (leader && !this.lessor.isPrimary) {
      // a new leader gives every lease one election timeout of grace, as etcd does
      this.lessor.promote(this.config.electionTimeoutMs);
      this.log.info(
        { 'local-member-id': idToHex(this.memberId), term: this.raft.term },
        'became leader and won election',
      );
      if (this.clusterVersion === undefined) void this.setClusterVersion();
    } else if (!leader && this.lessor.isPrimary) {
      this.lessor.demote();
    }
    if (ss.lead === 0n) this.log.info({ term: this.raft.term }, 'raft lost its leader');
    else {
      this.log.info({ leader: idToHex(ss.lead), term: this.raft.term }, 'raft elected leader');
      for (const w of this.leaderWaiters.splice(0)) w();
    }
  }

  private async setClusterVersion(): Promise<void> {
    const req = {
      ID: this.ids.generate(),
      Method: 'PUT',
      Path: '/0/version',
      Val: CLUSTER_VERSION,
    } as V2Request;
    const full = InternalRaftRequest.fromPartial({ v2: req });
    try {
      await this.proposeRaw(req.ID, InternalRaftRequest.encode(full).finish());
    } catch {
      // a later leader sets it
    }
  }

  private applyEntries(entries: Entry[]): void {
    const results: Array<[bigint, unknown]> = [];
    const last = entries[entries.length - 1]!.index;
    let snapshotNeeded = false;
    const backendHas = this.store.consistentIndex;
    const apply = () => {
      for (const e of entries) {
        if (e.index <= this.applied) continue;
        const fresh = e.index > backendHas; // the backend does not hold this entry's effects yet
        if (e.type === EntryType.EntryNormal) {
          if (fresh && e.data.length > 0) this.applyNormal(e, results);
        } else if (e.type === EntryType.EntryConfChange) {
          const cc = ConfChange.decode(e.data);
          if (fresh) this.applyConfChange(cc.type, cc.nodeId, cc.context);
          this.raft.node.applyConfChange(cc);
          results.push([cc.id, this.membership.all()]);
        } else if (e.type === EntryType.EntryConfChangeV2) {
          const cc = ConfChangeV2.decode(e.data);
          if (fresh) for (const c of cc.changes) this.applyConfChange(c.type, c.nodeId, cc.context);
          this.raft.node.applyConfChange(cc);
        }
        this.applied = e.index;
      }
    };
    if (last > backendHas) this.store.applyBatch(last, apply);
    else apply(); // replaying what the backend already holds: only raft's configuration is rebuilt
    this.applied = Math.max(this.applied, last);
    for (const [id, r] of results) this.wait.trigger(id, r);
    if (this.removedSelf) {
      this.log.warn(
        { 'local-member-id': idToHex(this.memberId) },
        'the member has been permanently removed from the cluster',
      );
      setTimeout(() => this.close(), 100).unref();
    }
    this.reads.onApplied(this.applied);
    if (this.campaignAfterApply && this.raft.lead === 0n) {
      this.campaignAfterApply = false;
      // after this Ready is advanced: raft refuses to campaign while configuration entries are unapplied
      setImmediate(() => this.raft.campaign());
    }
    if (this.applied - this.snapshotIndex > this.config.snapshotCount) snapshotNeeded = true;
    if (snapshotNeeded) this.takeSnapshot();
  }

  private applyNormal(e: Entry, results: Array<[bigint, unknown]>): void {
    let req: InternalRaftRequest;
    try {
      req = InternalRaftRequest.decode(e.data);
    } catch {
      // etcd 3.4 members propose some v2 requests (member attributes) as a bare etcdserverpb.Request
      let v2: V2Request;
      try {
        v2 = V2RequestCodec.decode(e.data);
      } catch (err) {
        this.log.error({ index: e.index, error: String(err) }, 'skipping an undecodable raft entry');
        return;
      }
      this.applyV2(v2);
      results.push([v2.ID, undefined]);
      return;
    }
    if (req.v2 !== undefined) {
      this.applyV2(req.v2);
      results.push([req.v2.ID, undefined]);
      return;
    }
    const id = req.header?.ID ?? req.ID;
    results.push([id, this.applier.apply(req)]);
  }

  /** The few v2-store requests etcd 3.4 still replicates: member attributes and the cluster version. */
  private applyV2(r: V2Request): void {
    if (r.Method !== 'PUT') return;
    const attrs = /^\/0\/members\/([0-9a-f]+)\/attributes$/.exec(r.Path);
    if (attrs) {
      const id = BigInt(`0x${attrs[1]}`);
      try {
        const a = JSON.parse(r.Val) as { name?: string; clientURLs?: string[] };
        this.membership.setAttributes(id, a.name ?? '', a.clientURLs ?? []);
      } catch {
        this.log.warn({ path: r.Path }, 'ignoring malformed member attributes');
      }
      return;
    }
    if (r.Path === '/0/version') {
      const first = this.clusterVersion === undefined;
      this.clusterVersion = r.Val;
      this.store.bucket(CLUSTER_BUCKET).putSync(CLUSTER_VERSION_KEY, Buffer.from(r.Val));
      if (first) {
        this.log.info({ 'cluster-version': CAPABILITY_VERSION }, 'set the initial cluster version');
        this.log.info({ 'cluster-version': CAPABILITY_VERSION }, 'enabled capabilities for version');
      }
    }
  }

  private applyConfChange(type: ConfChangeType, nodeId: bigint, context: Buffer): void {
    switch (type) {
      case ConfChangeType.ConfChangeAddNode:
      case ConfChangeType.ConfChangeAddLearnerNode: {
        const existing = this.membership.get(nodeId);
        if (existing && type === ConfChangeType.ConfChangeAddNode && existing.isLearner) {
          this.membership.promote(nodeId);
          break;
        }
        let m: ClusterMember;
        try {
          m = memberFromJson(context.toString());
        } catch {
          m = { id: nodeId, name: '', peerURLs: [], clientURLs: [], isLearner: false };
        }
        m.isLearner = type === ConfChangeType.ConfChangeAddLearnerNode;
        if (existing) {
          m.name = existing.name || m.name;
          m.clientURLs = existing.clientURLs.length > 0 ? existing.clientURLs : m.clientURLs;
        }
        this.membership.add(m);
        if (nodeId !== this.memberId) this.transport.addPeer(nodeId, m.peerURLs);
        break;
      }
      case ConfChangeType.ConfChangeRemoveNode:
        this.membership.remove(nodeId);
        if (nodeId !== this.memberId) this.transport.removePeer(nodeId);
        else this.removedSelf = true;
        break;
      case ConfChangeType.ConfChangeUpdateNode: {
        try {
          const m = memberFromJson(context.toString());
          this.membership.updatePeerURLs(nodeId, m.peerURLs);
          if (nodeId !== this.memberId) this.transport.updatePeer(nodeId, m.peerURLs);
        } catch {
          this.log.warn({ node: idToHex(nodeId) }, 'ignoring a member update without valid context');
        }
        break;
      }
    }
  }

  private onSnapshot(snap: Snapshot): void {
    // A leader's snapshot: the backend arrived with it (receiveSnapshot); swap it in, then go on
    // applying from the snapshot's index (the db's consistent index skips what it already holds).
    try {
      this.snapTransfer.applySnapshot(snap, {
        snapshotIndex: this.snapshotIndex,
        appliedIndex: this.applied,
      });
    } catch (err) {
      this.log.error(
        { error: String(err) },
        'failed to restore the backend from the leader snapshot; stopping',
      );
      this.close();
      throw err;
    }
    this.applied = Math.max(this.applied, snap.metadata!.index);
    this.snapshotIndex = snap.metadata!.index;
  }

  /** A snapshot's data: etcd 3.4's v2 store (members, cluster version), which etcd members recover from. */
  private v2Data(): Buffer {
    return v2StoreSnapshot(this.membership.all(), this.membership.removedIds(), this.clusterVersion);
  }

  /**
   * Saves a raft snapshot at the applied index and compacts the raft log. The backend runs without
   * fsync (the WAL is the durable record), so it is synced first: once the snapshot lets old WAL
   * segments go, the backend must hold everything up to the snapshot index even after a power loss.
   */
  private takeSnapshot(): void {
    if (this.snapshotting) return;
    this.snapshotting = true;
    const index = this.applied;
    try {
      this.store.commit();
    } catch (err) {
      this.snapshotting = false;
      this.log.warn({ error: String(err) }, 'failed to commit the backend; snapshot postponed');
      return;
    }
    // lmdb-js has env.sync (mdb_env_sync off the event loop) without a type declaration
    (this.store.env as unknown as { sync(cb: (err?: Error) => void): void }).sync((err?: Error) => {
      this.snapshotting = false;
      if (this.closed) return;
      if (err) {
        this.log.warn({ error: String(err) }, 'failed to sync the backend; snapshot postponed');
        return;
      }
      try {
        this.raft.snapshot(index, this.v2Data(), this.config.snapshotCatchUpEntries);
        this.snapshotIndex = index;
        this.log.info({ index }, 'saved raft snapshot and compacted the raft log');
      } catch (e) {
        this.log.warn({ error: String(e) }, 'failed to save a raft snapshot');
      }
    });
  }

  /** Resolves when a read may be served locally and see every write committed before it was asked. */
  linearizableReadNotify(): Promise<void> {
    return this.reads.notify();
  }

  private requestTimeoutMs(): number {
    return 5000 + 2 * this.config.electionTimeoutMs;
  }

  // ---- KV ----

  /** A read: linearizable unless `serializable` (then answered from this member's state at once). */
  range(req: RangeRequest): RangeResponse | Promise<RangeResponse> {
    checkRangeRequest(req);
    if (req.serializable) return this.kv.range(req);
    return this.linearizableReadNotify().then(() => this.kv.range(req));
  }

  /** A read from this member's state, whatever raft says (health checks, internal use). */
  rangeLocal(req: RangeRequest): RangeResponse {
    checkRangeRequest(req);
    return this.kv.range(req);
  }

  put(req: PutRequest): Promise<PutResponse> {
    try {
      checkPutRequest(req);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.proposeUnderQuota({ put: req }) as Promise<PutResponse>;
  }

  async deleteRange(req: DeleteRangeRequest): Promise<DeleteRangeResponse> {
    checkDeleteRequest(req);
    return (await this.propose({ deleteRange: req })) as DeleteRangeResponse;
  }

  txn(req: TxnRequest): Promise<TxnResponse> {
    try {
      checkTxnRequest(req, this.config.maxTxnOps);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.proposeUnderQuota({ txn: req }) as Promise<TxnResponse>;
  }

  /** Proposes a request that grows the store once the quota admits it (etcd refuses it otherwise). */
  private proposeUnderQuota(fields: { put: PutRequest } | { txn: TxnRequest }): Promise<unknown> {
    const refused = this.maintenance.checkQuota(fields);
    if (refused !== undefined) return refused.then(() => this.propose(fields));
    return this.propose(fields);
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
    const id = this.ids.generate();
    const req = InternalRaftRequest.fromPartial({ header: { ID: id } });
    Object.assign(req, fields);
    const data = encodeToBuffer(InternalRaftRequest, req);
    // etcd measures the encoded raft request against --max-request-bytes
    if (data.length > this.config.maxRequestBytes) return Promise.reject(Errors.requestTooLarge);
    return this.proposeRaw(id, data);
  }

  /** Resolves once a leader is known; rejects with "no leader" after the request timeout. */
  private waitForLeader(): Promise<void> {
    if (this.raft.lead !== 0n) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.leaderWaiters = this.leaderWaiters.filter((w) => w !== done);
        reject(Errors.noLeader);
      }, this.requestTimeoutMs());
      timer.unref();
      const done = () => {
        clearTimeout(timer);
        resolve();
      };
      this.leaderWaiters.push(done);
    });
  }

  /** Proposes encoded entry data and waits for its apply result (or a timeout, or a refusal). */
  private proposeRaw(id: bigint, data: Uint8Array): Promise<unknown> {
    if (this.closed) return Promise.reject(Errors.stopped);
    if (this.raft.lead === 0n) return this.waitForLeader().then(() => this.proposeRaw(id, data));
    const result = this.wait.register(id, this.requestTimeoutMs(), Errors.timeout);
    // copy: the encoder's output views a larger scratch buffer, and the raft log keeps entries
    // until the next snapshot (a view would pin about 1 KiB per entry)
    this.raft.propose(Buffer.from(data), (err) => {
      this.wait.trigger(
        id,
        this.raft.lead === 0n ? Errors.noLeader : err instanceof Error ? Errors.leaderChanged : err,
      );
    });
    return result;
  }

  // ---- Lease ----

  leaderPeerUrl(): string {
    const lead = this.raft.lead;
    if (lead === 0n) throw Errors.noLeader;
    const url = this.membership.get(lead)?.peerURLs[0];
    if (url === undefined) throw Errors.noLeader;
    return url;
  }
  // ---- Cluster / Maintenance ----

  members(): Member[] {
    return this.membership.all().map((m) => this.membership.toWire(m));
  }

  status(): StatusResponse {
    return {
      header: this.header(this.store.currentRevision),
      version: SERVER_VERSION,
      dbSize: this.store.dbSize(),
      leader: this.raft.lead,
      raftIndex: this.raft.commitIndex,
      raftTerm: this.raft.term,
      raftAppliedIndex: this.appliedIndex,
      errors: this.maintenance.statusErrors(),
      dbSizeInUse: this.store.dbSizeInUse(),
      isLearner: this.membership.get(this.memberId)?.isLearner ?? false,
    };
  }

  /** Called once the server has stopped, for whatever reason (shutdown, removal, a fatal error). */
  onClose(cb: () => void): void {
    if (this.closed) cb();
    else this.closeListeners.push(cb);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const cb of this.closeListeners.splice(0)) queueMicrotask(cb);
    this.leases.stop();
    this.maintenance.stop();
    this.raft.stop();
    this.wait.failAll(Errors.stopped);
    this.reads.failAll(Errors.stopped);
    void this.transport.stop();
    for (const p of this.peerServers) void p.close();
    this.store.close();
  }
}
