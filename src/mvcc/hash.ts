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
import { bytesToRev, type RevisionSet } from './revision.js';

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
