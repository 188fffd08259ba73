// Import of a bbolt backend: a data dir whose member/snap/db is a bbolt file (written by etcd, or by
// `etcdctl snapshot restore`) is copied into LMDB at the first start, bucket by bucket and byte for byte
// (etcd's schema is the store's schema: revisions with their KeyValues, meta with the consistent index and
// compaction marks, leases, auth, members, alarms). Then the file is renamed to member/snap/db.imported,
// so it happens once.
//
// Crash safety: the import is built in member/lmdb.import and only renamed to member/lmdb once complete
// and synced; the bbolt file is renamed after that. An interrupted import leaves the bbolt file in place
// and is simply done again.
import { existsSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Backend } from '../mvcc/backend.js';
import { BboltError, BboltReader } from '../mvcc/bbolt/index.js';

export class ImportError extends Error {}

export interface ImportResult {
  buckets: Record<string, number>;
  /** consistent index and revision bounds read from the imported db (for the log) */
  consistentIndex: number;
  tookMs: number;
}

const BATCH = 10_000;

/** Path of the bbolt file etcd keeps its backend in. */
export function bboltBackendPath(memberDir: string): string {
  return join(memberDir, 'snap', 'db');
}

/**
 * Imports member/snap/db into member/lmdb if the file exists; returns undefined when there is nothing to
 * import. Throws ImportError (with what to do) if the file is not a sound bbolt database.
 */
export function importBboltBackend(memberDir: string, lmdbDir: string): ImportResult | undefined {
  const src = bboltBackendPath(memberDir);
  if (!existsSync(src)) return undefined;
  const start = performance.now();
  const tmp = `${lmdbDir}.import`;
  rmSync(tmp, { recursive: true, force: true });
  let reader: BboltReader;
  try {
    reader = BboltReader.open(src, { trailer: 'verify' });
  } catch (err) {
    throw damaged(src, err);
  }
  const counts: Record<string, number> = {};
  let consistentIndex = 0;
  const backend = new Backend({ dir: tmp });
  try {
    for (const nameBuf of reader.bucketNames()) {
      const name = nameBuf.toString('latin1');
      const bucket = backend.bucket(name);
      let n = 0;
      let batch: Array<[Buffer, Buffer]> = [];
      const flush = () => {
        const items = batch;
        batch = [];
        backend.write(() => {
          for (const [k, v] of items) bucket.putSync(k, v);
        });
      };
      // (opening the bucket created it, so empty buckets exist too, as all of etcd's do)
      for (const item of reader.items(nameBuf)) {
        if (item.isBucket) continue; // etcd has no nested buckets
        batch.push([Buffer.from(item.key), Buffer.from(item.value)]);
        if (
          name === 'meta' &&
          item.key.toString('latin1') === 'consistent_index' &&
          item.value.length === 8
        ) {
          consistentIndex = item.value.readUInt32BE(0) * 0x100000000 + item.value.readUInt32BE(4);
        }
        n++;
        if (batch.length >= BATCH) flush();
      }
      if (batch.length > 0) flush();
      counts[name] = n;
    }
  } catch (err) {
    reader.close();
    void backend.close();
    rmSync(tmp, { recursive: true, force: true });
    if (err instanceof BboltError) throw damaged(src, err);
    throw new ImportError(`cannot import ${src} into ${tmp}: ${(err as Error).message}`);
  }
  reader.close();
  void backend.close();
  // replace whatever LMDB backend was there: the bbolt file is the data the user restored
  rmSync(`${lmdbDir}.replaced`, { recursive: true, force: true });
  if (existsSync(lmdbDir)) renameSync(lmdbDir, `${lmdbDir}.replaced`);
  renameSync(tmp, lmdbDir);
  renameSync(src, `${src}.imported`);
  rmSync(`${lmdbDir}.replaced`, { recursive: true, force: true });
  return { buckets: counts, consistentIndex, tookMs: Math.round(performance.now() - start) };
}

function damaged(path: string, err: unknown): ImportError {
  const detail = err instanceof Error ? err.message : String(err);
  return new ImportError(
    `${path} is not a sound bbolt database (${detail}); it cannot be imported. Restore it again (etcdctl snapshot restore <file> --data-dir <dir>) from a good snapshot, or move it away to start from the existing data`,
  );
}
