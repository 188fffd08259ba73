// Member and cluster IDs derived exactly as etcd derives them, so the same flags give the same IDs
// on etcd and etcd-ts (clients and peers compare them).
import { createHash } from 'node:crypto';

/** sha1(sorted peer URLs concatenated + cluster token [+ unix seconds]), first 8 bytes big-endian. */
export function memberId(peerUrls: readonly string[], clusterToken: string, unixSeconds?: number): bigint {
  const sorted = [...peerUrls].sort();
  let text = sorted.join('') + clusterToken;
  if (unixSeconds !== undefined) text += String(unixSeconds);
  return createHash('sha1').update(text).digest().readBigUInt64BE(0);
}

/** sha1 of the sorted member IDs as 8-byte big-endian words, first 8 bytes big-endian. */
export function clusterId(memberIds: readonly bigint[]): bigint {
  const sorted = [...memberIds].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const buf = Buffer.alloc(8 * sorted.length);
  for (const [i, id] of sorted.entries()) buf.writeBigUInt64BE(id, 8 * i);
  return createHash('sha1').update(buf).digest().readBigUInt64BE(0);
}

/** etcd prints IDs as lowercase hex without leading zeros. */
export function idToHex(id: bigint): string {
  return id.toString(16);
}
