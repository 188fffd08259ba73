// Facts of etcd 3.4's peer protocol (rafthttp): URL paths, header names, content types, stream
// types, status texts and timing. Every other file in src/transport takes them from here.

export const RAFT_PREFIX = '/raft';
export const PROBING_PATH = '/raft/probing';
export const STREAM_PREFIX = '/raft/stream';
export const SNAPSHOT_PATH = '/raft/snapshot';

/** The two long-lived streams. Note: etcd's msgappv2 stream lives under /raft/stream/msgapp/<id>. */
export type StreamType = 'msgappv2' | 'message';
export const STREAM_TYPES: readonly StreamType[] = ['msgappv2', 'message'];

export function streamEndpoint(t: StreamType): string {
  return t === 'msgappv2' ? `${STREAM_PREFIX}/msgapp` : `${STREAM_PREFIX}/message`;
}

/** etcd's display names, used in its log lines ("stream MsgApp v2", "stream Message"). */
export function streamName(t: StreamType): string {
  return t === 'msgappv2' ? 'stream MsgApp v2' : 'stream Message';
}

export const HDR_SERVER_FROM = 'x-server-from';
export const HDR_SERVER_VERSION = 'x-server-version';
export const HDR_MIN_CLUSTER_VERSION = 'x-min-cluster-version';
export const HDR_CLUSTER_ID = 'x-etcd-cluster-id';
export const HDR_RAFT_TO = 'x-raft-to';
export const HDR_PEER_URLS = 'x-peerurls';

/** Canonical (Go) spellings for the headers we send, so a packet capture looks like etcd's. */
export const OUT_HDR = {
  serverFrom: 'X-Server-From',
  serverVersion: 'X-Server-Version',
  minClusterVersion: 'X-Min-Cluster-Version',
  clusterId: 'X-Etcd-Cluster-ID',
  raftTo: 'X-Raft-To',
  peerUrls: 'X-PeerURLs',
} as const;

export const CT_PROTOBUF = 'application/protobuf';
export const CT_OCTET_STREAM = 'application/octet-stream';

/** The versions we announce: a 3.4 member, compatible with clusters from 3.0 on. */
export const DEFAULT_SERVER_VERSION = '3.4.23';
export const DEFAULT_MIN_CLUSTER_VERSION = '3.0.0';

/** Body texts etcd writes (http.Error adds the newline) and matches on. */
export const ERR_INCOMPATIBLE_VERSION = 'incompatible version';
export const ERR_CLUSTER_ID_MISMATCH = 'cluster ID mismatch';
export const ERR_MEMBER_REMOVED = 'the member has been permanently removed from the cluster';
export const ERR_REMOVED_MEMBER_BODY = 'removed member';
export const ERR_REMOVED_MEMBER_PROCESS = 'cannot process message from removed member';

/** Timing, as etcd's: read/write timeouts of stream connections, link heartbeats at a third of it. */
export const CONN_READ_TIMEOUT_MS = 5000;
export const CONN_WRITE_TIMEOUT_MS = 5000;
export const LINK_HEARTBEAT_MS = Math.floor(CONN_READ_TIMEOUT_MS / 3);
export const DEFAULT_DIAL_TIMEOUT_MS = 1000;
export const SNAP_RESPONSE_READ_TIMEOUT_MS = 5000;

/** Queue sizes: etcd drops (and reports the peer unreachable) past these. */
export const STREAM_BUF_SIZE = 4096;
export const PIPELINE_BUF_SIZE = 64;
export const CONN_PER_PIPELINE = 4;

/** Largest message a stream accepts (etcd: 512 MB). */
export const READ_BYTES_LIMIT = 512 * 1024 * 1024;

/** Stream dial retry: etcd retries every 100 ms; we back off from there to a ceiling. */
export const DIAL_RETRY_BASE_MS = 100;
export const DIAL_RETRY_MAX_MS = 1000;
/** How often an unreachable peer is logged again while it stays unreachable. */
export const UNREACHABLE_LOG_INTERVAL_MS = 5000;

/** etcd prints member and cluster IDs as lowercase hex without leading zeros. */
export function idHex(id: bigint): string {
  return id.toString(16);
}

/** Parses an ID as etcd's types.IDFromString does (hex); undefined when it is not one. */
export function parseIdHex(s: string): bigint | undefined {
  if (!/^[0-9a-fA-F]{1,16}$/.test(s)) return undefined;
  return BigInt(`0x${s}`);
}
