// The LMDB backend: one environment (file) holding bbolt-like buckets as named sub-databases, all with raw
// binary keys and values. `key` (revision -> KeyValue) and `meta` belong to the MVCC store; other stores
// (lease, auth, membership, alarms) open their buckets in the same environment through bucket(), so their
// writes commit in the same transaction as the data they depend on.
//
// With `batch` set (the server's case), writes are batched as etcd batches bbolt's: each write() runs
// in a child transaction of one long-lived LMDB write transaction, which commits every `intervalMs`,
// after `limit` writes, or when something needs the committed file (commit()). Readers on this thread
// see uncommitted writes: lmdb-js reads through the open write transaction, even reads given a read
// transaction. So while a read view (readTransaction()) is open, batching pauses and each write
// commits at once: a view's reads then see its own snapshot, and no cursor outlives the transaction
// it was opened in. Other processes see the last commit. A crash loses nothing but the uncommitted
// batch: the consistent index commits with the data, and the server replays the WAL from it.

import { statSync } from 'node:fs';
import { join } from 'node:path';
import { type Database, open, type RootDatabase, type Transaction } from 'lmdb';

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
  /** batch writes into one transaction (etcd's --backend-batch-interval and --backend-batch-limit) */
  batch?: BatchOptions;
}

export interface BatchOptions {
  /** commit at the latest this long after the batch's first write */
  intervalMs: number;
  /** commit once the batch holds this many writes */
  limit: number;
  /** a timed commit failed (the batch is lost from disk): the owner must stop */
  onCommitError?: (err: Error) => void;
}

export interface ReadView {
  readonly txn: Transaction;
  done(): void;
}

/** The open outer transaction: lmdb-js keeps it open until the thenable its callback returned settles. */
interface OpenBatch {
  writes: number;
  timer: NodeJS.Timeout;
  /** lmdb-js's continuation: calling it commits the outer transaction */
  commitOuter?: () => unknown;
}

export class Backend {
  readonly dir: string;
  private root: RootDatabase<Buffer, Buffer>;
  /** Real sub-database handles on the current environment. */
  private readonly buckets = new Map<string, Bucket>();
  /** The handles given out by bucket(): they forward to the current environment (see switchTo). */
  private readonly handles = new Map<string, Bucket>();
  private open: OpenBatch | undefined;
  /** a timed commit failed: later writes and commits report it rather than build on a lost batch */
  private commitError: Error | undefined;
  /** read views open: writes commit one by one meanwhile */
  private views = 0;

  constructor(private readonly opts: BackendOptions) {
    this.dir = opts.dir;
    this.root = openEnv(opts.dir, opts);
  }

  /** The LMDB root of the current environment (it changes when defragmentation switches files). */
  get env(): RootDatabase<Buffer, Buffer> {
    return this.root;
  }

  private realBucket(name: string): Bucket {
    let b = this.buckets.get(name);
    if (!b) {
      b = this.root.openDB<Buffer, Buffer>({ name, keyEncoding: 'binary', encoding: 'binary' });
      this.buckets.set(name, b);
    }
    return b;
  }

  /**
   * Opens (creating on first write) a bucket in this environment. Buckets opened here count in hash().
   * The handle stays valid across switchTo(): it forwards every call to the current environment.
   */
  bucket(name: string): Bucket {
    let h = this.handles.get(name);
    if (!h) {
      this.realBucket(name);
      const forwarders = new Map<PropertyKey, unknown>();
      h = new Proxy({} as Bucket, {
        get: (_t, prop) => {
          let f = forwarders.get(prop);
          if (f === undefined) {
            const v = (this.realBucket(name) as unknown as Record<PropertyKey, unknown>)[prop];
            if (typeof v !== 'function') return v;
            f = (...args: unknown[]) =>
              (this.realBucket(name) as unknown as Record<PropertyKey, (...a: unknown[]) => unknown>)[prop]!(
                ...args,
              );
            forwarders.set(prop, f);
          }
          return f;
        },
      });
      this.handles.set(name, h);
    }
    return h;
  }

  /**
   * Maintenance (defragmentation): makes the environment in `dir` (a compacted copy of this one, taken
   * while nothing wrote) the current one; bucket handles follow. Returns the previous environment,
   * which the caller closes once it has moved the files into place.
   */
  switchTo(dir: string): RootDatabase<Buffer, Buffer> {
    this.commit();
    const next = openEnv(dir, this.opts);
    const prev = this.root;
    this.root = next;
    this.buckets.clear();
    return prev;
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

  /**
   * Runs fn in one write transaction; throwing aborts it and leaves nothing behind. Without batching it
   * commits at once (with fsync unless noSync); with batching it joins the open batch.
   */
  write<T>(fn: () => T): T {
    const batch = this.opts.batch;
    if (this.commitError) throw this.commitError;
    if (batch === undefined || this.views > 0) return this.env.transactionSync(fn);
    const open = this.open ?? this.begin(batch);
    // inside the open transaction lmdb-js runs this as a child transaction: an abort undoes only fn
    const result = this.env.transactionSync(fn);
    if (++open.writes >= batch.limit) this.commit();
    return result;
  }

  private begin(batch: BatchOptions): OpenBatch {
    const open: OpenBatch = {
      writes: 0,
      timer: setTimeout(() => {
        try {
          this.commit();
        } catch (err) {
          batch.onCommitError?.(err as Error);
        }
      }, batch.intervalMs),
    };
    open.timer.unref();
    // A thenable, not a promise: lmdb-js's continuation then runs synchronously, inside commit().
    const pending = {
      // biome-ignore lint/suspicious/noThenProperty: lmdb-js holds the transaction open until this settles
      then: (commit: () => unknown) => {
        open.commitOuter = commit;
      },
    };
    this.env.transactionSync(() => pending as unknown as Promise<void>);
    this.open = open;
    return open;
  }

  /** Commits the open batch now (before anything reads the file or a read transaction). */
  commit(): void {
    if (this.commitError) throw this.commitError;
    const open = this.open;
    if (open === undefined) return;
    this.open = undefined;
    clearTimeout(open.timer);
    try {
      open.commitOuter!();
    } catch (err) {
      this.commitError = err as Error;
      throw err;
    }
  }

  /**
   * A read transaction that sees every write so far and none after (it commits the open batch, and
   * batching pauses until done()). Pass `txn` as the `transaction` option of reads.
   */
  readTransaction(): ReadView {
    this.commit();
    const txn = this.env.useReadTransaction();
    this.views++;
    let open = true;
    return {
      txn,
      done: () => {
        if (!open) return;
        open = false;
        this.views--;
        txn.done();
      },
    };
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

  /** Commits what is batched and closes the environment. */
  close(): Promise<void> {
    try {
      this.commit();
    } catch {
      // the batch is lost; the WAL replays it at the next start
    }
    return this.root.close();
  }
}

function openEnv(dir: string, opts: BackendOptions): RootDatabase<Buffer, Buffer> {
  return open<Buffer, Buffer>({
    path: dir,
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
