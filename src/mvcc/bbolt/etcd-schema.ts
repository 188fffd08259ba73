// etcd's backend schema (bucket names, key and value encodings) as etcd 3.4 writes it into bbolt.
//
// Sources (etcd 3.4.23): mvcc/kvstore.go, mvcc/revision.go, lease/lessor.go, auth/store.go,
// etcdserver/api/membership/store.go + member.go, etcdserver/api/v3alarm/alarms.go; 3.5 adds
// meta "term" and "confState" (server/storage/schema).

import type { BucketInput, KeyValuePair } from './writer.js';

/** Bucket names. bbolt orders them bytewise: alarm auth authRoles authUsers cluster key lease members members_removed meta. */
export const ETCD_BUCKETS = {
  key: 'key',
  meta: 'meta',
  lease: 'lease',
  auth: 'auth',
  authUsers: 'authUsers',
  authRoles: 'authRoles',
  members: 'members',
  membersRemoved: 'members_removed',
  alarm: 'alarm',
  cluster: 'cluster',
} as const;

/** Keys of the `meta` bucket. */
export const META_KEYS = {
  /** 8-byte big-endian index of the last applied raft entry. */
  consistentIndex: 'consistent_index',
  /** Revision key bytes (17) of a compaction that was scheduled. */
  scheduledCompactRev: 'scheduledCompactRev',
  /** Revision key bytes (17) of the last finished compaction. */
  finishedCompactRev: 'finishedCompactRev',
  /** 3.5+: 8-byte big-endian raft term of the consistent index. */
  term: 'term',
  /** 3.5+: JSON raftpb.ConfState. */
  confState: 'confState',
} as const;

/** Keys of the `auth` bucket. */
export const AUTH_KEYS = {
  /** One byte: 1 enabled, 0 disabled. */
  authEnabled: 'authEnabled',
  /** 8-byte big-endian auth revision. */
  authRevision: 'authRevision',
} as const;

/** Key of the `cluster` bucket: value is the semver string, e.g. "3.4.0". */
export const CLUSTER_VERSION_KEY = 'clusterVersion';

/** Value etcd stores under a removed member's id in `members_removed`. */
export const MEMBER_REMOVED_VALUE = 'removed';

export const REVISION_KEY_SIZE = 17;
export const TOMBSTONE_REVISION_KEY_SIZE = 18;
const TOMBSTONE = 0x74; // 't'

export interface Revision {
  main: bigint;
  sub: bigint;
  tombstone: boolean;
}

/** Revision key: 8-byte BE main, '_', 8-byte BE sub, and a trailing 't' for a tombstone (delete). */
export function encodeRevisionKey(
  main: bigint | number,
  sub: bigint | number = 0,
  tombstone = false,
): Buffer {
  const b = Buffer.alloc(tombstone ? TOMBSTONE_REVISION_KEY_SIZE : REVISION_KEY_SIZE);
  b.writeBigInt64BE(BigInt(main), 0);
  b[8] = 0x5f; // '_'
  b.writeBigInt64BE(BigInt(sub), 9);
  if (tombstone) b[17] = TOMBSTONE;
  return b;
}

export function decodeRevisionKey(key: Uint8Array): Revision {
  const b = Buffer.from(key.buffer, key.byteOffset, key.byteLength);
  if ((b.length !== REVISION_KEY_SIZE && b.length !== TOMBSTONE_REVISION_KEY_SIZE) || b[8] !== 0x5f) {
    throw new Error(`etcd: bad revision key ${b.toString('hex')}`);
  }
  if (b.length === TOMBSTONE_REVISION_KEY_SIZE && b[17] !== TOMBSTONE) {
    throw new Error(`etcd: bad tombstone marker in ${b.toString('hex')}`);
  }
  return {
    main: b.readBigInt64BE(0),
    sub: b.readBigInt64BE(9),
    tombstone: b.length === TOMBSTONE_REVISION_KEY_SIZE,
  };
}

export function encodeUint64BE(n: bigint | number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(n));
  return b;
}

export function decodeUint64BE(b: Uint8Array): bigint {
  if (b.byteLength !== 8) throw new Error(`etcd: expected 8 bytes, got ${b.byteLength}`);
  return Buffer.from(b.buffer, b.byteOffset, 8).readBigUInt64BE(0);
}

/** Lease bucket key: the lease id as 8-byte big-endian int64. Value: encoded leasepb.Lease. */
export function encodeLeaseKey(id: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigInt64BE(BigInt.asIntN(64, id));
  return b;
}

export function decodeLeaseKey(b: Uint8Array): bigint {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).readBigInt64BE(0);
}

/** Member ids are keys in lowercase hex without padding (types.ID.String()). */
export function encodeMemberKey(id: bigint): Buffer {
  return Buffer.from(BigInt.asUintN(64, id).toString(16));
}

export function decodeMemberKey(b: Uint8Array): bigint {
  return BigInt(`0x${Buffer.from(b).toString('latin1')}`);
}

export interface EtcdMember {
  id: bigint;
  name?: string;
  peerURLs: string[];
  clientURLs?: string[];
  isLearner?: boolean;
}

/**
 * The `members` bucket value: Go's json.Marshal of membership.Member, i.e. the fields
 * {"id":<uint64 number>,"peerURLs":[..],"isLearner":true?,"name":".."?,"clientURLs":[..]?}
 * (omitempty on isLearner, name and clientURLs). The id is a JSON number above 2^53, so it is
 * spliced in as text rather than going through a JS number.
 */
export function encodeMemberValue(m: EtcdMember): Buffer {
  let s = `{"id":${BigInt.asUintN(64, m.id).toString()},"peerURLs":${JSON.stringify(m.peerURLs)}`;
  if (m.isLearner) s += ',"isLearner":true';
  if (m.name) s += `,"name":${JSON.stringify(m.name)}`;
  if (m.clientURLs && m.clientURLs.length > 0) s += `,"clientURLs":${JSON.stringify(m.clientURLs)}`;
  return Buffer.from(`${s}}`);
}

export function decodeMemberValue(b: Uint8Array): EtcdMember {
  const text = Buffer.from(b).toString('utf8');
  const obj = JSON.parse(text) as {
    peerURLs?: string[];
    name?: string;
    clientURLs?: string[];
    isLearner?: boolean;
  };
  const id = /"id"\s*:\s*(\d+)/.exec(text);
  if (!id) throw new Error(`etcd: member without id: ${text}`);
  return {
    id: BigInt(id[1]!),
    peerURLs: obj.peerURLs ?? [],
    ...(obj.name ? { name: obj.name } : {}),
    ...(obj.clientURLs ? { clientURLs: obj.clientURLs } : {}),
    ...(obj.isLearner ? { isLearner: true } : {}),
  };
}

/**
 * A bucket from an ordered pair source; convenience for callers that already hold sorted pairs.
 * For the `key` bucket the pairs must be in revision order (which revision keys make byte order).
 */
export function bucket(
  name: string,
  entries: Iterable<KeyValuePair> | AsyncIterable<KeyValuePair>,
): BucketInput {
  return { name, entries };
}

/**
 * The buckets etcd 3.4 creates on a fresh backend. A db missing one of them is still accepted by
 * etcd (it creates buckets at start), but `etcdctl snapshot status` and etcd's hash expect every
 * top-level entry to be a bucket.
 */
export const ETCD_34_BUCKET_NAMES: readonly string[] = Object.values(ETCD_BUCKETS)
  .slice()
  .sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
