// The LMDB backend: one environment (file) holding bbolt-like buckets as named sub-databases, all with raw
// binary keys and values. `key` (revision -> KeyValue) and `meta` belong to the MVCC store; other stores
// (lease, auth, membership, alarms) open their buckets in the same environment through bucket(), so their
// writes commit in the same transaction as the data they depend on.

import { statSync } from 'node:fs';
import { join } from 'node:path';
import { type Database, open, type RootDatabase } from 'lmdb';

export type Bucket = Database<Buffer, Buffer>;

export const KEY_BUCKET = 'key';
export const META_BUCKET = 'meta';
export const CONSISTENT_INDEX_KEY = Buffer.from('consistent_index');
export const SCHEDULED_COMPACT_KEY = Buffer.from('scheduledCompactRev');
export const FINISHED_COMPACT_KEY = Buffer.from('finishedCompactRev');

export interface BackendOptions {
  dir: string;
  /** skip fsync at commit (durability then comes from the WAL) */
  noSync?: boolean;
  /** initial map size; LMDB grows it as needed */
  mapSizeBytes?: number;
}

export class Backend {
  readonly env: RootDatabase<Buffer, Buffer>;
  readonly dir: string;
  private readonly buckets = new Map<string, Bucket>();

  constructor(opts: BackendOptions) {
    this.dir = opts.dir;
    this.env = open<Buffer, Buffer>({
      path: opts.dir,
      noSubdir: false,
      maxDbs: 32,
      keyEncoding: 'binary',
      encoding: 'binary',
      noSync: !!opts.noSync,
      // with overlapping sync a synchronous commit returns before the flush; we want the flush in the commit
      overlappingSync: false,
      ...(opts.mapSizeBytes ? { mapSize: opts.mapSizeBytes } : {}),
    });
  }

  /** Opens (creating on first write) a bucket in this environment. Buckets opened here count in hash(). */
  bucket(name: string): Bucket {
    let b = this.buckets.get(name);
    if (!b) {
      b = this.env.openDB<Buffer, Buffer>({ name, keyEncoding: 'binary', encoding: 'binary' });
      this.buckets.set(name, b);
    }
    return b;
  }

  /** Names of the buckets that exist in the file, in byte order (as bbolt lists them). */
  bucketNames(): string[] {
    const names: string[] = [];
    for (const k of this.env.getKeys() as Iterable<Buffer>) {
      let n = k.length;
      while (n > 0 && k[n - 1] === 0) n--; // lmdb-js stores names NUL-terminated
      names.push(k.subarray(0, n).toString('latin1'));
    }
    names.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    return names;
  }

  /** Runs fn in one write transaction and commits (with fsync unless noSync). Throwing aborts. */
  write<T>(fn: () => T): T {
    return this.env.transactionSync(fn);
  }

  /** Size of the database file in bytes. */
  size(): number {
    try {
      return statSync(join(this.dir, 'data.mdb')).size;
    } catch {
      return 0;
    }
  }

  /** Bytes in pages that hold data (the file minus free pages), an estimate as etcd's is for bbolt. */
  sizeInUse(): number {
    const st = this.env.getStats() as {
      pageSize: number;
      treeBranchPageCount: number;
      treeLeafPageCount: number;
      overflowPages: number;
      free?: { treeBranchPageCount: number; treeLeafPageCount: number; overflowPages: number };
    };
    const pages = (s: { treeBranchPageCount: number; treeLeafPageCount: number; overflowPages: number }) =>
      s.treeBranchPageCount + s.treeLeafPageCount + s.overflowPages;
    let total = 2 + pages(st) + (st.free ? pages(st.free) : 0); // 2 meta pages
    for (const name of this.bucketNames()) {
      const s = this.bucket(name).getStats() as Parameters<typeof pages>[0];
      total += pages(s);
    }
    return total * st.pageSize;
  }

  close(): Promise<void> {
    return this.env.close();
  }
}
