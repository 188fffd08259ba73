// Everything a member needs to start, already validated (the CLI turns flags into this).
import { emptyTlsInfo, type TlsInfo } from '../transport/tls/index.js';

export interface ServerConfig {
  name: string;
  dataDir: string;
  listenClientUrls: URL[];
  advertiseClientUrls: URL[];
  listenPeerUrls: URL[];
  initialAdvertisePeerUrls: URL[];
  /** name -> peer URLs, from --initial-cluster */
  initialCluster: Map<string, string[]>;
  initialClusterState: 'new' | 'existing';
  initialClusterToken: string;
  maxRequestBytes: number;
  maxTxnOps: number;
  /** 0 means etcd's default of 2 GiB */
  quotaBackendBytes: number;
  /** --backend-batch-interval: longest a backend write waits for its commit (etcd's default 100 ms) */
  backendBatchIntervalMs: number;
  /** --backend-batch-limit: writes per backend commit at most (etcd's default 10000) */
  backendBatchLimit: number;
  snapshotCount: number;
  /** raft log entries kept after a snapshot, so slightly lagging followers catch up from the log (etcd 3.5's --experimental-snapshot-catchup-entries) */
  snapshotCatchUpEntries: number;
  heartbeatIntervalMs: number;
  electionTimeoutMs: number;
  maxConcurrentStreams: number;
  strictReconfigCheck: boolean;
  /** raft PreVote (thesis §9.6): a partitioned member rejoining does not disrupt the leader */
  preVote: boolean;
  logLevel: 'debug' | 'info' | 'warn' | 'error' | 'panic' | 'fatal';
  /** --auto-compaction-mode: how --auto-compaction-retention is read */
  autoCompactionMode: 'periodic' | 'revision';
  /** --auto-compaction-retention as given ("0" disables; hours or a Go duration, or a revision count) */
  autoCompactionRetention: string;
  /** --experimental-auto-disarm-nospace: clear NOSPACE by itself once the backend is back under the quota */
  autoDisarmNoSpace: boolean;
  /** Skip fsync: only for tests and benchmarks that say so; an acknowledged write may then be lost on power failure. */
  unsafeNoFsync: boolean;
  /** Client port TLS (--cert-file, --key-file, --trusted-ca-file, ...): used by https client URLs. */
  clientTls: TlsInfo;
  /** Peer TLS (--peer-cert-file, ...): used by https peer URLs, and for dialing https peers. */
  peerTls: TlsInfo;
  /** --auto-tls: a self-signed client cert in <data-dir>/fixtures/client when no cert files are given */
  clientAutoTls: boolean;
  /** --peer-auto-tls: the same for peers, in <data-dir>/fixtures/peer */
  peerAutoTls: boolean;
  /** --self-signed-cert-validity, in years */
  selfSignedCertValidity: number;
}

export const DEFAULT_QUOTA_BYTES = 2 * 1024 * 1024 * 1024;
/** gRPC overhead etcd allows on top of --max-request-bytes before the transport refuses a message. */
export const GRPC_OVERHEAD_BYTES = 512 * 1024;

export function defaultConfig(): ServerConfig {
  return {
    name: 'default',
    dataDir: 'default.etcd',
    listenClientUrls: [new URL('http://localhost:2379')],
    advertiseClientUrls: [new URL('http://localhost:2379')],
    listenPeerUrls: [new URL('http://localhost:2380')],
    initialAdvertisePeerUrls: [new URL('http://localhost:2380')],
    initialCluster: new Map([['default', ['http://localhost:2380']]]),
    initialClusterState: 'new',
    initialClusterToken: 'etcd-cluster',
    maxRequestBytes: 1.5 * 1024 * 1024,
    maxTxnOps: 128,
    quotaBackendBytes: 0,
    backendBatchIntervalMs: 100,
    backendBatchLimit: 10_000,
    snapshotCount: 100_000,
    snapshotCatchUpEntries: 5000,
    heartbeatIntervalMs: 100,
    electionTimeoutMs: 1000,
    maxConcurrentStreams: 2 ** 32 - 1,
    strictReconfigCheck: true,
    preVote: false,
    logLevel: 'info',
    unsafeNoFsync: false,
    autoCompactionMode: 'periodic',
    autoCompactionRetention: '0',
    autoDisarmNoSpace: false,
    clientTls: emptyTlsInfo(),
    peerTls: emptyTlsInfo(),
    clientAutoTls: false,
    peerAutoTls: false,
    selfSignedCertValidity: 1,
  };
}
