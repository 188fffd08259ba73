// The SHA-256 trailer of etcd snapshots.
//
// etcd's Maintenance.Snapshot stream sends the bbolt db bytes followed by sha256(db bytes);
// `etcdctl snapshot save` keeps the file exactly as received (trailer included) and
// `etcdctl snapshot restore` detects the trailer by size (size % 512 == 32, see etcd's
// clientv3/snapshot hasChecksum), verifies it and truncates it away.

import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { appendFile } from 'node:fs/promises';

export const SHA256_TRAILER_SIZE = 32;

/** etcd's test for "this file ends with a sha256 trailer" (a db is a whole number of pages). */
export function hasSha256Trailer(size: number): boolean {
  return size % 512 === SHA256_TRAILER_SIZE;
}

/** Hashes a file's bytes [0, end) (the whole file when end is omitted). */
export async function sha256File(path: string, end?: number): Promise<Buffer> {
  const h = createHash('sha256');
  if (end === 0) return h.digest();
  const rs = createReadStream(path, end === undefined ? {} : { start: 0, end: end - 1 });
  for await (const chunk of rs) h.update(chunk as Buffer);
  return h.digest();
}

/** Appends sha256(file) to the file, turning a db file into an etcd snapshot file. Returns the hash. */
export async function appendSha256Trailer(path: string): Promise<Buffer> {
  const sum = await sha256File(path);
  await appendFile(path, sum);
  return sum;
}

/** Passes chunks through and then yields sha256 of everything passed: etcd's snapshot stream. */
export async function* withSha256Trailer(
  chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
): AsyncGenerator<Buffer> {
  const h = createHash('sha256');
  for await (const c of chunks) {
    h.update(c);
    yield Buffer.isBuffer(c) ? c : Buffer.from(c.buffer, c.byteOffset, c.byteLength);
  }
  yield h.digest();
}

/**
 * Splits an in-memory snapshot into db bytes and trailer. `ok` is true when the trailer matches,
 * false when it does not, and undefined when the size says there is no trailer.
 */
export function splitSha256Trailer(snapshot: Uint8Array): { db: Buffer; sha?: Buffer; ok?: boolean } {
  const buf = Buffer.from(snapshot.buffer, snapshot.byteOffset, snapshot.byteLength);
  if (!hasSha256Trailer(buf.length)) return { db: buf };
  const db = buf.subarray(0, buf.length - SHA256_TRAILER_SIZE);
  const sha = buf.subarray(buf.length - SHA256_TRAILER_SIZE);
  return { db, sha, ok: createHash('sha256').update(db).digest().equals(sha) };
}
