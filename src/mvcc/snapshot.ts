// Maintenance.Snapshot at the store level: a consistent point-in-time copy of the backend written as an
// etcd-schema bbolt database (what etcd's Maintenance.Snapshot streams and `etcdctl snapshot restore`
// reads). One LMDB read transaction pins the snapshot while the file is built, so writers never wait;
// it is released as soon as the file is complete (before any byte goes to the network).
import type { Transaction } from 'lmdb';
import { type BucketInput, ETCD_34_BUCKET_NAMES, type KeyValuePair } from './bbolt/index.js';
import { writeBboltFile } from './bbolt/writer.js';
import type { MvccStore } from './store.js';

export interface SnapshotOptions {
  /**
   * Buckets whose content the caller supplies instead of the backend's (e.g. `members`, `cluster`:
   * membership lives above the store). Pairs in any order; they are sorted here.
   */
  replace?: Record<string, KeyValuePair[]>;
  /** fsync the file before returning (default false: it is a temporary file streamed to a client). */
  fsync?: boolean;
}

export interface SnapshotInfo {
  /** bytes of the bbolt db (no trailer) */
  size: number;
  /** the store's revision and consistent index at the snapshot (read in the same transaction) */
  revision: number;
  consistentIndex: number;
}

/** Writes a bbolt copy of the store to `path` (atomically: built as path.part, then renamed). */
export async function writeStoreSnapshot(
  store: MvccStore,
  path: string,
  opts: SnapshotOptions = {},
): Promise<SnapshotInfo> {
  const root = store.env;
  const view = store.readTransaction();
  const txn = view.txn;
  try {
    const revision = store.currentRevision;
    const ci = readConsistentIndex(store, txn);
    const existing = new Set<string>();
    for (const k of root.getKeys({ transaction: txn }) as Iterable<Buffer | string>) {
      const b = Buffer.isBuffer(k) ? k : Buffer.from(String(k), 'latin1');
      let n = b.length;
      while (n > 0 && b[n - 1] === 0) n--; // lmdb-js stores names NUL-terminated
      existing.add(b.subarray(0, n).toString('latin1'));
    }
    const replace = opts.replace ?? {};
    const names = new Set<string>([...ETCD_34_BUCKET_NAMES, ...existing, ...Object.keys(replace)]);
    const buckets: BucketInput[] = [];
    for (const name of names) {
      const given = replace[name];
      if (given) {
        const sorted = given
          .map(([k, v]) => [toBuf(k), toBuf(v)] as const)
          .sort((a, b) => Buffer.compare(a[0], b[0]));
        buckets.push({ name, entries: sorted });
      } else if (existing.has(name)) {
        buckets.push({ name, entries: bucketPairs(store, name, txn) });
      } else {
        buckets.push({ name, entries: [] });
      }
    }
    const res = await writeBboltFile(path, buckets, { fsync: opts.fsync ?? false });
    return { size: res.size, revision, consistentIndex: ci };
  } finally {
    view.done();
  }
}

function* bucketPairs(store: MvccStore, name: string, txn: Transaction): Generator<KeyValuePair> {
  for (const { key, value } of store.bucket(name).getRange({ transaction: txn })) {
    // copies: lmdb may reuse its buffers, and the writer holds a page's worth of pairs
    yield [Buffer.from(key as Buffer), Buffer.from(value as Buffer)];
  }
}

function readConsistentIndex(store: MvccStore, txn: Transaction): number {
  const v = store.bucket('meta').get(Buffer.from('consistent_index'), { transaction: txn });
  return v && v.length === 8 ? v.readUInt32BE(0) * 0x100000000 + v.readUInt32BE(4) : 0;
}

function toBuf(b: Uint8Array | string): Buffer {
  return typeof b === 'string' ? Buffer.from(b) : Buffer.from(b);
}
