// EtcdServer: one member. Wires the MVCC store, the apply pipeline and the request checks; the api
// layer translates wire calls into calls on this object. No process-wide state: a program may run
// several members side by side and stop each cleanly.
import { accessSync, constants as fsc, mkdirSync } from 'node:fs';
import { join } from 'node:path';
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
import { InternalRaftRequest } from '../gen/etcdserverpb/raft_internal.js';
import { MvccStore } from '../mvcc/store.js';
import { Applier } from './apply.js';
import { KvApplier } from './apply_kv.js';
import type { ServerConfig } from './config.js';
import { Errors } from './errors.js';
import { checkDeleteRequest, checkPutRequest, checkRangeRequest, checkTxnRequest } from './kv_validate.js';
import { LocalCommitter } from './local_commit.js';
import type { Logger } from './logger.js';
import { clusterId, idToHex, memberId } from './member_id.js';
import { RequestIdGenerator } from './request_id.js';
import { SERVER_VERSION } from './version.js';

export class DataDirError extends Error {}

export class EtcdServer {
  readonly memberId: bigint;
  readonly clusterId: bigint;
  /** Single member: the term a fresh etcd member reaches after electing itself. */
  readonly raftTerm = 2;
  readonly store: MvccStore;
  private readonly kv: KvApplier;
  private readonly committer: LocalCommitter;
  private readonly ids: RequestIdGenerator;
  private closed = false;

  private constructor(
    readonly config: ServerConfig,
    readonly log: Logger,
    store: MvccStore,
  ) {
    const ownPeerUrls = config.initialCluster.get(config.name) ?? [];
    this.memberId = memberId(ownPeerUrls, config.initialClusterToken);
    const allIds = [...config.initialCluster.values()].map((urls) => memberId(urls, config.initialClusterToken));
    this.clusterId = clusterId(allIds);
    this.store = store;
    this.kv = new KvApplier(store, (revision) => this.header(revision));
    this.committer = new LocalCommitter(store, new Applier(this.kv));
    this.ids = new RequestIdGenerator(this.memberId, Date.now());
  }

  static open(config: ServerConfig, log: Logger): EtcdServer {
    const memberDir = join(config.dataDir, 'member');
    try {
      mkdirSync(memberDir, { recursive: true, mode: 0o700 });
      accessSync(memberDir, fsc.W_OK | fsc.R_OK);
    } catch (err) {
      throw new DataDirError(
        `cannot use data directory ${config.dataDir}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}; check that the path is a directory this user can write, or pass another --data-dir`,
      );
    }
    let store: MvccStore;
    try {
      store = MvccStore.open({ dir: join(memberDir, 'lmdb'), noSync: config.unsafeNoFsync });
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
    return (await this.propose({ put: req })) as PutResponse;
  }

  async deleteRange(req: DeleteRangeRequest): Promise<DeleteRangeResponse> {
    checkDeleteRequest(req);
    return (await this.propose({ deleteRange: req })) as DeleteRangeResponse;
  }

  async txn(req: TxnRequest): Promise<TxnResponse> {
    checkTxnRequest(req, this.config.maxTxnOps);
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

  private propose(fields: Partial<InternalRaftRequest>): Promise<unknown> {
    if (this.closed) return Promise.reject(Errors.stopped);
    const req = InternalRaftRequest.fromPartial({ header: { ID: this.ids.generate() } });
    Object.assign(req, fields);
    // etcd measures the encoded raft request against --max-request-bytes
    const size = InternalRaftRequest.encode(req).finish().length;
    if (size > this.config.maxRequestBytes) return Promise.reject(Errors.requestTooLarge);
    return this.committer.propose(req);
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
      errors: [],
      dbSizeInUse: this.store.dbSizeInUse(),
      isLearner: false,
    };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.committer.stop();
    this.store.close();
  }
}
