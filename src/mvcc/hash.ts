// Hash and HashKV as etcd defines them, so members of a mixed etcd/etcd-ts cluster agree:
// CRC-32C (Castagnoli) over raw bucket bytes.
//
// hash():  for every bucket in name order, the bucket name, then each key and value in key order,
//          skipping meta/consistent_index (it differs between members).
// hashKV(rev): the name "key", then each revision key and value of the key bucket with main revision <= rev,
//          where revisions at or below the compaction point are only counted if compaction at rev would
//          keep them (they may still be on disk while a compaction is under way); when nothing would be
//          kept, nothing is skipped (etcd's rule, kept for agreement).

import { crc32c } from '@node-rs/crc32';
import { type Backend, CONSISTENT_INDEX_KEY, KEY_BUCKET, META_BUCKET } from './backend.js';
import { bytesToRev, type RevisionSet, revToBytes } from './revision.js';

export function hashBackend(b: Backend): number {
  let h = 0;
  for (const name of b.bucketNames()) {
    const bucket = b.bucket(name);
    h = crc32c(Buffer.from(name, 'latin1'), h);
    const isMeta = name === META_BUCKET;
    for (const { key, value } of bucket.getRange({})) {
      if (isMeta && CONSISTENT_INDEX_KEY.equals(key)) continue;
      h = crc32c(key, h);
      h = crc32c(value, h);
    }
  }
  return h >>> 0;
}

export function hashKeyBucket(b: Backend, rev: number, compactRev: number, keep: RevisionSet): number {
  let h = crc32c(Buffer.from(KEY_BUCKET), 0);
  const lower = compactRev + 1;
  const filter = keep.size > 0;
  for (const { key, value } of b.bucket(KEY_BUCKET).getRange({})) {
    const r = bytesToRev(key);
    if (r.main > rev) break; // revision keys are in revision order
    if (filter && r.main < lower && !keep.has(r.main, r.sub)) continue;
    h = crc32c(key, h);
    h = crc32c(value, h);
  }
  return h >>> 0;
}

const CHUNK = 5000;
const yieldTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * hashKeyBucket without blocking the event loop: reads a snapshot (one LMDB read transaction) in chunks,
 * yielding between them, so writes and compaction may go on meanwhile without changing the result.
 */
export async function hashKeyBucketAsync(
  b: Backend,
  rev: number,
  compactRev: number,
  keep: RevisionSet,
): Promise<number> {
  let h = crc32c(Buffer.from(KEY_BUCKET), 0);
  const lower = compactRev + 1;
  const filter = keep.size > 0;
  const bucket = b.bucket(KEY_BUCKET);
  const view = b.readTransaction();
  const transaction = view.txn;
  try {
    let start: Buffer = revToBytes(0, 0);
    const end = revToBytes(rev + 1, 0);
    for (;;) {
      let n = 0;
      let last: Buffer | undefined;
      for (const { key, value } of bucket.getRange({ start, end, limit: CHUNK, transaction })) {
        n++;
        last = key;
        const r = bytesToRev(key);
        if (filter && r.main < lower && !keep.has(r.main, r.sub)) continue;
        h = crc32c(key, h);
        h = crc32c(value, h);
      }
      if (n < CHUNK || last === undefined) break;
      start = Buffer.concat([last, Buffer.from([0])]);
      await yieldTurn();
    }
  } finally {
    view.done();
  }
  return h >>> 0;
}
