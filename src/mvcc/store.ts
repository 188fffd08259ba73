// The MVCC store: every change creates a new revision; old revisions stay readable until compacted.
//
// Data lives in the LMDB `key` bucket (revision key -> encoded mvccpb.KeyValue, tombstones marked 't');
// the in-memory key index (key_index.ts) maps each user key to its revisions and is rebuilt from the
// bucket at open. Writes happen only inside applyBatch(): one LMDB write transaction per batch, which also
// records the consistent index (the last applied raft entry), so after a crash the batch is either fully
// there, consistent index included, or not at all. A failed batch is rolled back in memory too.

import { type Event, Event_EventType, type KeyValue } from '../gen/mvccpb/kv.js';
import {
  Backend,
  type BatchOptions,
  type Bucket,
  CONSISTENT_INDEX_KEY,
  FINISHED_COMPACT_KEY,
  KEY_BUCKET,
  META_BUCKET,
  type ReadView,
  SCHEDULED_COMPACT_KEY,
} from './backend.js';
import { BboltReader } from './bbolt/index.js';
import { CompactedError, FutureRevisionError } from './errors.js';
import { hashBackend, hashKeyBucket, hashKeyBucketAsync } from './hash.js';
import { type IndexedRev, type IndexUndo, type KeyIndex, TreeIndex } from './key_index.js';
import { decodeKeyValue, decodeKeyValueReusing, encodeKeyValue, encodeTombstone } from './kv_codec.js';
import { bytesToRev, isTombstoneKey, RevisionSet, revToBytes, revToScratch } from './revision.js';

export interface RangeOptions {
  /** revision to read at; 0 or absent: the current revision */
  rev?: number;
  /** at most this many kvs (count still counts all); 0 or absent: no limit */
  limit?: number;
  /** return no kvs, only the count */
  countOnly?: boolean;
}

export interface RangeResult {
  kvs: KeyValue[];
  /** number of keys in the range at the revision read, regardless of limit */
  count: number;
  /** the store's current revision (in a write txn: the txn's revision once it has changed something) */
  rev: number;
}

export interface TxnWrite {
  /** Reads at this txn's view: sees the txn's own writes. */
  range(key: Buffer, end: Buffer | undefined, opts?: RangeOptions): RangeResult;
  /** Puts key; `prev` (the value replaced, if the key existed) is read lazily on access. */
  put(key: Buffer, value: Buffer, lease: bigint): { prev?: KeyValue };
  /**
   * Deletes the keys in the range; returns their previous KeyValues. With `{ values: false }` the returned
   * KeyValues carry everything but the value (no backend reads), for callers that only need keys or count.
   */
  deleteRange(key: Buffer, end: Buffer | undefined, opts?: { values?: boolean }): KeyValue[];
  /** Number of changes so far. */
  readonly changes: number;
  /** The store revision when the txn began; its changes are written at beginRev + 1. */
  readonly beginRev: number;
  /** Ends the txn; returns the store revision after it (bumped by one if the txn changed anything). */
  end(): number;
  /** Undoes the txn's writes (backend and index) and ends it without a new revision. */
  abort(): void;
}

export interface MvccStoreOptions {
  dir: string;
  /** skip fsync at commit (durability then comes from the WAL) */
  noSync?: boolean;
  /** initial LMDB map size; grows as needed */
  mapSizeBytes?: number;
  /** batch backend commits as etcd does (see Backend); default: every write commits */
  batch?: BatchOptions;
  /** revisions deleted per backend transaction while compacting (etcd's default: 1000) */
  compactionBatchLimit?: number;
}

export type ChangeListener = (rev: number, events: Event[]) => void;

/** What restoreFromBbolt replaced the store with. */
export interface RestoreInfo {
  /** pairs per bucket */
  buckets: Record<string, number>;
  consistentIndex: number;
  revision: number;
  compactRevision: number;
  /** the store's revision before the restore (what its watchers have seen) */
  previousRevision: number;
}

const EMPTY = Buffer.alloc(0);
const INDEX_CHUNK = 10000;

/** Normalizes a range end: undefined = single key, empty = no upper bound ([0] on the wire). */
function normEnd(end: Buffer | undefined): Buffer | undefined {
  if (end === undefined || end.length === 0) return undefined;
  if (end.length === 1 && end[0] === 0) return EMPTY;
  return end;
}

function u64(v: number): Buffer {
  const b = Buffer.allocUnsafe(8);
  b.writeUInt32BE(Math.floor(v / 0x100000000) >>> 0, 0);
  b.writeUInt32BE(v >>> 0, 4);
  return b;
}

function readU64(b: Buffer): number {
  return b.readUInt32BE(0) * 0x100000000 + b.readUInt32BE(4);
}

const yieldTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

interface BatchState {
  undo: IndexUndo[];
  startRev: number;
  startCompactRev: number;
  pending: Array<{ rev: number; events: Event[] }>;
  post: Array<() => void>;
  aborted: Array<() => void>;
  open: TxnWriteImpl | undefined;
}

export class MvccStore {
  private readonly backend: Backend;
  private readonly keyDb: Bucket;
  private readonly metaDb: Bucket;
  private index = new TreeIndex();
  private curRev = 1;
  private compactRev = -1;
  private ci = 0;
  private batch: BatchState | undefined;
  private readonly listeners = new Set<ChangeListener>();
  /** Called inside the apply transaction as each write txn ends (see onTxnApplied). */
  private readonly txnListeners = new Set<ChangeListener>();
  private compactionChain: Promise<void> = Promise.resolve();
  private readonly compactionBatchLimit: number;
  private closed = false;
  private pauses = 0;
  private resumeWaiters: Array<() => void> = [];
  /** Bumped by restoreFromBbolt: background work started before a restore stops. */
  private epoch = 0;
  private readonly restoreListeners = new Set<(info: RestoreInfo) => void>();

  private constructor(opts: MvccStoreOptions) {
    this.backend = new Backend(opts);
    this.compactionBatchLimit = opts.compactionBatchLimit ?? 1000;
    this.keyDb = this.backend.bucket(KEY_BUCKET);
    this.metaDb = this.backend.bucket(META_BUCKET);
  }

  /** Opens (creating if needed) the store in dir; rebuilds the key index; resumes an interrupted compaction. */
  static open(opts: MvccStoreOptions): MvccStore {
    const s = new MvccStore(opts);
    try {
      s.restore();
    } catch (e) {
      void s.backend.close();
      throw e;
    }
    return s;
  }

  private restore(): void {
    // create both buckets on first open, as etcd does
    this.backend.write(() => {
      if (this.metaDb.get(CONSISTENT_INDEX_KEY) === undefined)
        this.metaDb.putSync(CONSISTENT_INDEX_KEY, u64(0));
    });
    const ciBytes = this.metaDb.get(CONSISTENT_INDEX_KEY);
    this.ci = ciBytes && ciBytes.length === 8 ? readU64(ciBytes) : 0;
    const finished = this.metaDb.get(FINISHED_COMPACT_KEY);
    if (finished) this.compactRev = bytesToRev(finished).main;
    const scheduledBytes = this.metaDb.get(SCHEDULED_COMPACT_KEY);
    const scheduled = scheduledBytes ? bytesToRev(scheduledBytes).main : undefined;

    let rev = 1;
    for (const { key, value } of this.keyDb.getRange({})) {
      const r = bytesToRev(key);
      rev = r.main;
      const kv = decodeKeyValue(value);
      this.index.restore(kv.key, r.main, r.sub, isTombstoneKey(key), kv.createRevision, kv.version, kv.lease);
    }
    const resume = scheduled !== undefined && scheduled > this.compactRev;
    // the latest revisions may all have been compacted away (deletes): never go below a compaction point
    this.curRev = Math.max(rev, this.compactRev, resume ? scheduled : 0);
    if (resume) {
      this.compactRev = scheduled;
      this.scheduleCompaction(scheduled);
    }
  }

  /** The LMDB root; other stores open their buckets in it (prefer bucket(), which hash() then covers). */
  get env() {
    return this.backend.env;
  }

  /** Commits the backend's open batch: the file then holds everything applied so far. */
  commit(): void {
    this.backend.commit();
  }

  /** A read transaction that sees everything applied so far (it commits the open batch first). */
  readTransaction(): ReadView {
    return this.backend.readTransaction();
  }

  /** Opens a bucket (LMDB sub-database, binary keys and values) in the store's environment. */
  bucket(name: string): Bucket {
    return this.backend.bucket(name);
  }

  get currentRevision(): number {
    return this.curRev;
  }

  /** The revision of the last compaction; -1 if never compacted (etcd's convention). */
  get compactRevision(): number {
    return this.compactRev;
  }

  /** Index of the last applied raft entry, committed with the data it produced. */
  get consistentIndex(): number {
    return this.ci;
  }

  /** Number of keys in the index (live or with history). */
  get indexedKeys(): number {
    return this.index.size;
  }

  range(key: Buffer, end: Buffer | undefined, opts?: RangeOptions): RangeResult {
    return this.rangeAt(key, end, opts, this.curRev);
  }

  /** @internal reads at curRev (the latest revision visible to the caller). */
  rangeAt(key: Buffer, end: Buffer | undefined, opts: RangeOptions | undefined, curRev: number): RangeResult {
    let rev = opts?.rev ?? 0;
    if (rev > curRev) throw new FutureRevisionError();
    if (rev <= 0) rev = curRev;
    if (rev < this.compactRev) throw new CompactedError(this.compactRev);
    const countOnly = !!opts?.countOnly;
    const limit = opts?.limit && opts.limit > 0 ? opts.limit : Number.POSITIVE_INFINITY;
    const e = normEnd(end);
    if (e === undefined) {
      // single key: the hot path
      const ki = this.index.getKeyIndex(key);
      const r = ki?.get(rev);
      if (r === undefined) return { kvs: [], count: 0, rev: curRev };
      return { kvs: countOnly ? [] : [this.fetch(ki!.key, r.main, r.sub)], count: 1, rev: curRev };
    }
    let count = 0;
    const revs: IndexedRev[] = [];
    const kis: KeyIndex[] = [];
    this.index.visit(key, e, rev, (ki, r) => {
      count++;
      if (!countOnly && revs.length < limit) {
        revs.push(r);
        kis.push(ki);
      }
    });
    const kvs = new Array<KeyValue>(revs.length);
    for (let i = 0; i < revs.length; i++) kvs[i] = this.fetch(kis[i].key, revs[i].main, revs[i].sub);
    return { kvs, count, rev: curRev };
  }

  /** Reads the KeyValue at a revision the index knows (of `key`, used instead of decoding a copy). */
  private fetch(key: Buffer, main: number, sub: number): KeyValue {
    let v: Uint8Array | undefined = this.keyDb.getBinaryFast(revToScratch(main, sub));
    if (v === undefined)
      throw new Error(`mvcc: revision ${main}_${sub} is in the index but not in the backend`);
    // large values come back as a plain Uint8Array
    if (!Buffer.isBuffer(v)) v = Buffer.from(v.buffer, v.byteOffset, v.byteLength);
    return decodeKeyValueReusing(v as Buffer, key);
  }

  private fetchMaybe(main: number, sub: number): KeyValue | undefined {
    if (this.closed) return undefined;
    const v = this.keyDb.get(revToScratch(main, sub));
    return v === undefined ? undefined : decodeKeyValue(v);
  }

  /**
   * Runs fn inside one LMDB write transaction, records consistentIndex in it, and commits (fsync unless
   * noSync) before returning fn's result. If fn throws, nothing of the batch remains, on disk or in memory.
   * Change listeners are called after the commit, once per TxnWrite that changed something.
   */
  applyBatch<T>(consistentIndex: number, fn: () => T): T {
    if (this.closed) throw new Error('mvcc: store is closed');
    if (this.batch) throw new Error('mvcc: applyBatch is not reentrant');
    const batch: BatchState = {
      undo: [],
      startRev: this.curRev,
      startCompactRev: this.compactRev,
      pending: [],
      post: [],
      aborted: [],
      open: undefined,
    };
    this.batch = batch;
    let result: T;
    try {
      result = this.backend.write(() => {
        const r = fn();
        if (batch.open) {
          batch.open.abort();
          throw new Error('mvcc: a TxnWrite was not ended before its batch committed');
        }
        this.metaDb.putSync(CONSISTENT_INDEX_KEY, u64(consistentIndex));
        return r;
      });
    } catch (e) {
      for (let i = batch.undo.length - 1; i >= 0; i--) this.index.revert(batch.undo[i]);
      this.curRev = batch.startRev;
      this.compactRev = batch.startCompactRev;
      this.batch = undefined;
      for (const f of batch.aborted) f();
      throw e;
    }
    this.batch = undefined;
    this.ci = consistentIndex;
    for (const f of batch.post) f();
    if (this.listeners.size > 0) {
      for (const { rev, events } of batch.pending) this.notify(rev, events);
    }
    return result;
  }

  private notify(rev: number, events: Event[]): void {
    for (const l of this.listeners) {
      try {
        l(rev, events);
      } catch (e) {
        queueMicrotask(() => {
          throw e;
        });
      }
    }
  }

  /** Starts a write txn; only inside applyBatch, one at a time. All its changes share one revision. */
  txnWrite(): TxnWrite {
    const b = this.batch;
    if (!b) throw new Error('mvcc: txnWrite() outside applyBatch');
    if (b.open) throw new Error('mvcc: another TxnWrite is still open');
    const tw = new TxnWriteImpl(this, b, this.curRev);
    b.open = tw;
    return tw;
  }

  /** @internal */
  writeRev(tw: TxnWriteImpl, b: BatchState, key: Buffer, value: Buffer, lease: bigint): PutResult {
    const rev = tw.beginRev + 1;
    const sub = tw.changes;
    const ki = this.index.getKeyIndex(key);
    const prev = ki?.latest();
    const kv: KeyValue = {
      key,
      value,
      createRevision: prev ? prev.created : rev,
      modRevision: rev,
      version: prev ? prev.version + 1 : 1,
      lease,
    };
    this.keyDb.putSync(revToScratch(rev, sub), encodeKeyValue(kv));
    const idx = this.index.put(key, rev, sub, lease, b.undo, ki);
    // events and results get their own copy of the key: the caller's buffer may be a view of a request
    kv.key = idx.key;
    const prevRef = prev === undefined ? undefined : new PrevRef(this, prev.main, prev.sub);
    tw.events.push(new StoreEvent(Event_EventType.PUT, kv, prevRef));
    return new PutResult(prevRef);
  }

  /** @internal */
  deleteRevs(
    tw: TxnWriteImpl,
    b: BatchState,
    key: Buffer,
    end: Buffer | undefined,
    values: boolean,
  ): KeyValue[] {
    const e = normEnd(end);
    const atRev = tw.beginRev + (tw.changes > 0 ? 1 : 0);
    const found: KeyIndex[] = [];
    const revs: IndexedRev[] = [];
    this.index.visit(key, e, atRev, (ki, r) => {
      found.push(ki);
      revs.push(r);
    });
    const rev = tw.beginRev + 1;
    const prevs: KeyValue[] = new Array(found.length);
    for (let i = 0; i < found.length; i++) {
      const ki = found[i];
      const key = ki.key;
      const r = revs[i];
      const prev: KeyValue = values
        ? this.fetch(key, r.main, r.sub)
        : {
            key,
            value: EMPTY,
            createRevision: r.created,
            modRevision: r.main,
            version: r.version,
            lease: ki.lease,
          };
      prevs[i] = prev;
      const sub = tw.changes + i;
      this.keyDb.putSync(revToScratch(rev, sub, true), encodeTombstone(key));
      this.index.tombstone(key, rev, sub, b.undo);
      const prevRef = new PrevRef(this, r.main, r.sub, values ? prev : null);
      tw.events.push(
        new StoreEvent(
          Event_EventType.DELETE,
          { key, value: EMPTY, createRevision: 0, modRevision: rev, version: 0, lease: 0n },
          prevRef,
        ),
      );
    }
    return prevs;
  }

  /** @internal reads a revision that may have been compacted since. */
  readRev(main: number, sub: number): KeyValue | undefined {
    return this.fetchMaybe(main, sub);
  }

  /** @internal */
  endTxn(tw: TxnWriteImpl, b: BatchState): number {
    if (b.open === tw) b.open = undefined;
    if (tw.changes > 0) {
      this.curRev = tw.beginRev + 1;
      b.pending.push({ rev: this.curRev, events: tw.events });
      for (const l of this.txnListeners) l(this.curRev, tw.events);
    }
    return this.curRev;
  }

  /** @internal */
  abortTxn(tw: TxnWriteImpl, b: BatchState, undoMark: number): void {
    // the txn wrote exactly the revisions (beginRev + 1, 0..changes-1), each plain or tombstone
    const rev = tw.beginRev + 1;
    for (let sub = 0; sub < tw.changes; sub++) {
      this.keyDb.removeSync(revToScratch(rev, sub));
      this.keyDb.removeSync(revToScratch(rev, sub, true));
    }
    for (let i = b.undo.length - 1; i >= undoMark; i--) this.index.revert(b.undo[i]);
    b.undo.length = undoMark;
    if (b.open === tw) b.open = undefined;
  }

  /**
   * Compacts at rev: afterwards revisions below rev are unreadable, and of every key only the latest
   * revision at or below rev (unless a delete) stays on disk. Checks and records the compaction point
   * synchronously (inside applyBatch: in its transaction; otherwise in its own), then removes old
   * revisions in the background in small batches; `done` resolves when they are gone.
   */
  compact(rev: number): { done: Promise<void> } {
    if (this.closed) throw new Error('mvcc: store is closed');
    if (rev <= this.compactRev) throw new CompactedError(this.compactRev);
    if (rev > this.curRev) throw new FutureRevisionError();
    const mark = () => this.metaDb.putSync(SCHEDULED_COMPACT_KEY, revToBytes(rev, 0));
    const b = this.batch;
    if (!b) {
      this.backend.write(mark);
      this.compactRev = rev;
      return { done: this.scheduleCompaction(rev) };
    }
    mark();
    this.compactRev = rev;
    let resolve!: () => void;
    let reject!: (e: unknown) => void;
    const done = new Promise<void>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    done.catch(() => {});
    b.post.push(() => this.scheduleCompaction(rev).then(resolve, reject));
    b.aborted.push(() => reject(new Error('mvcc: the batch scheduling this compaction was aborted')));
    return { done };
  }

  /**
   * Holds the store's background writes (compaction batches) until the returned function is called, for
   * maintenance that copies or replaces the backend (defragmentation). Takes effect at once: background
   * batches are synchronous, so none is ever half done. Foreground writes (applyBatch) are not affected.
   */
  pauseBackgroundWrites(): () => void {
    this.pauses++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      if (--this.pauses === 0) this.wakeBackground();
    };
  }

  private wakeBackground(): void {
    const w = this.resumeWaiters;
    this.resumeWaiters = [];
    for (const f of w) f();
  }

  /** Resolves when all scheduled compactions have finished. */
  compactionsDone(): Promise<void> {
    return this.compactionChain;
  }

  private scheduleCompaction(rev: number): Promise<void> {
    const p = this.compactionChain.then(() => this.runCompaction(rev));
    this.compactionChain = p.catch(() => {});
    return p;
  }

  private async runCompaction(rev: number): Promise<void> {
    const epoch = this.epoch;
    const keep = new RevisionSet();
    // 1. the index, a chunk of keys per event-loop turn
    let from: string | undefined;
    for (;;) {
      if (this.closed || this.epoch !== epoch) return;
      const empty: string[] = [];
      let n = 0;
      let last: string | undefined;
      for (const [k, ki] of this.index.entriesFrom(from)) {
        if (k === from) continue;
        if (ki.compact(rev, keep)) empty.push(k);
        last = k;
        if (++n >= INDEX_CHUNK) break;
      }
      for (const k of empty) this.index.deleteKey(k);
      if (n < INDEX_CHUNK) break;
      from = last;
      await yieldTurn();
    }
    // 2. the backend, a batch of revisions per transaction
    let start = revToBytes(0, 0);
    const end = revToBytes(rev + 1, 0);
    const limit = this.compactionBatchLimit;
    for (;;) {
      await yieldTurn();
      while (this.pauses > 0 && !this.closed)
        await new Promise<void>((resolve) => this.resumeWaiters.push(resolve));
      if (this.closed || this.epoch !== epoch) return;
      if (this.batch) continue; // never inside a write batch (cannot happen: batches are synchronous)
      const finished = this.backend.write(() => {
        const keys = [...this.keyDb.getKeys({ start, end, limit })] as Buffer[];
        for (const k of keys) {
          const r = bytesToRev(k);
          if (isTombstoneKey(k) || !keep.has(r.main, r.sub)) this.keyDb.removeSync(k);
        }
        if (keys.length < limit) {
          this.metaDb.putSync(FINISHED_COMPACT_KEY, revToBytes(rev, 0));
          return true;
        }
        start = Buffer.concat([keys[keys.length - 1], Buffer.from([0])]);
        return false;
      });
      if (finished) return;
    }
  }

  /**
   * Replaces the whole backend with the bbolt database at `path` (the backend a raft leader sent with its
   * snapshot, as etcd's applySnapshot swaps in the received db): every bucket is emptied and refilled in
   * one write transaction, then the key index, revisions and consistent index are rebuilt from it. The
   * object stays the same, so everything holding the store (appliers, lessor, membership, watchers) sees
   * the new state; restore listeners (onRestore) are told. A compaction in progress is abandoned (one
   * the received db has scheduled but not finished is resumed, as at open). Not inside applyBatch.
   */
  restoreFromBbolt(path: string): RestoreInfo {
    if (this.closed) throw new Error('mvcc: store is closed');
    if (this.batch) throw new Error('mvcc: restoreFromBbolt inside applyBatch');
    const reader = BboltReader.open(path, { trailer: 'verify' });
    const buckets: Record<string, number> = {};
    const previousRevision = this.curRev;
    try {
      this.epoch++; // background compaction of the old data stops at its next step
      this.backend.write(() => {
        for (const name of this.backend.bucketNames()) this.backend.bucket(name).clearSync();
        for (const nameBuf of reader.bucketNames()) {
          const name = nameBuf.toString('latin1');
          const bucket = this.backend.bucket(name);
          let n = 0;
          for (const item of reader.items(nameBuf)) {
            if (item.isBucket) continue; // etcd has no nested buckets
            bucket.putSync(Buffer.from(item.key), Buffer.from(item.value));
            n++;
          }
          buckets[name] = n;
        }
      });
    } finally {
      reader.close();
    }
    this.index = new TreeIndex();
    this.curRev = 1;
    this.compactRev = -1;
    this.ci = 0;
    this.compactionChain = Promise.resolve();
    this.restore();
    const info: RestoreInfo = {
      buckets,
      consistentIndex: this.ci,
      revision: this.curRev,
      compactRevision: this.compactRev,
      previousRevision,
    };
    for (const l of this.restoreListeners) {
      try {
        l(info);
      } catch (e) {
        queueMicrotask(() => {
          throw e;
        });
      }
    }
    return info;
  }

  /** Subscribes to restores (restoreFromBbolt): derived state must be rebuilt. Returns the unsubscribe function. */
  onRestore(listener: (info: RestoreInfo) => void): () => void {
    this.restoreListeners.add(listener);
    return () => {
      this.restoreListeners.delete(listener);
    };
  }

  /** CRC-32C over all buckets, as etcd's Hash (maintenance API) computes it. */
  hash(): number {
    return hashBackend(this.backend);
  }

  /** etcd's HashKV: hash of the key bucket up to rev (0: current), skipping what compaction removes. */
  hashKV(rev: number): { hash: number; compactRevision: number; hashRevision: number } {
    if (rev > 0 && rev <= this.compactRev) throw new CompactedError(this.compactRev);
    if (rev > 0 && rev > this.curRev) throw new FutureRevisionError();
    if (rev === 0) rev = this.curRev;
    const keep = new RevisionSet();
    this.index.keep(rev, keep);
    return {
      hash: hashKeyBucket(this.backend, rev, this.compactRev, keep),
      compactRevision: this.compactRev,
      hashRevision: rev,
    };
  }

  /**
   * Subscribes to each write txn's events as it ends, inside the apply transaction (before commit), so
   * state derived from keys (the lessor's key attachments) is current for the next request of the same
   * batch. The listener must not throw. Returns the unsubscribe function.
   */
  onTxnApplied(listener: ChangeListener): () => void {
    this.txnListeners.add(listener);
    return () => {
      this.txnListeners.delete(listener);
    };
  }

  /**
   * hashKV without blocking the event loop on a large store: the same result, computed over a snapshot
   * taken at the call, in chunks.
   */
  async hashKVAsync(rev: number): Promise<{ hash: number; compactRevision: number; hashRevision: number }> {
    if (rev > 0 && rev <= this.compactRev) throw new CompactedError(this.compactRev);
    if (rev > 0 && rev > this.curRev) throw new FutureRevisionError();
    if (rev === 0) rev = this.curRev;
    const keep = new RevisionSet();
    this.index.keep(rev, keep);
    const compactRevision = this.compactRev;
    const hash = await hashKeyBucketAsync(this.backend, rev, compactRevision, keep);
    return { hash, compactRevision, hashRevision: rev };
  }

  /** Subscribes to committed changes: (revision, its events in order). Returns the unsubscribe function. */
  onChanges(listener: ChangeListener): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  /**
   * The events of revisions fromRev..toRev (inclusive) read from the backend, in order, at most `limit`
   * revisions' worth (whole revisions only). Throws CompactedError if fromRev is compacted. For watchers
   * catching up; prevKv is not filled.
   */
  history(
    fromRev: number,
    toRev: number,
    limit = Number.POSITIVE_INFINITY,
  ): Array<{ rev: number; events: Event[] }> {
    if (fromRev <= this.compactRev) throw new CompactedError(this.compactRev);
    const out: Array<{ rev: number; events: Event[] }> = [];
    if (toRev < fromRev) return out;
    let cur: { rev: number; events: Event[] } | undefined;
    for (const { key, value } of this.keyDb.getRange({
      start: revToBytes(fromRev, 0),
      end: revToBytes(toRev + 1, 0),
    })) {
      const r = bytesToRev(key);
      if (!cur || cur.rev !== r.main) {
        if (out.length >= limit) break;
        cur = { rev: r.main, events: [] };
        out.push(cur);
      }
      const kv = decodeKeyValue(value);
      if (isTombstoneKey(key)) {
        kv.modRevision = r.main;
        cur.events.push({ type: Event_EventType.DELETE, kv, prevKv: undefined });
      } else {
        cur.events.push({ type: Event_EventType.PUT, kv, prevKv: undefined });
      }
    }
    return out;
  }

  /** Live keys attached to a lease, for the lessor to rebuild its attachments at start. */
  leasedKeys(): Array<{ key: Buffer; lease: bigint }> {
    const out: Array<{ key: Buffer; lease: bigint }> = [];
    for (const [, ki] of this.index.entriesFrom(undefined)) {
      if (ki.lease !== 0n && ki.latest() !== undefined) out.push({ key: ki.key, lease: ki.lease });
    }
    return out;
  }

  /** Size of the database file in bytes. */
  dbSize(): number {
    return this.backend.size();
  }

  /** Bytes of the file in use (excluding free pages). */
  dbSizeInUse(): number {
    return this.backend.sizeInUse();
  }

  /** Stops background compaction (resumed at the next open) and closes the environment. */
  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    this.wakeBackground();
    return this.backend.close();
  }
}

class TxnWriteImpl implements TxnWrite {
  changes = 0;
  readonly events: Event[] = [];
  private readonly undoMark: number;
  private ended = false;

  constructor(
    private readonly store: MvccStore,
    private readonly b: BatchState,
    readonly beginRev: number,
  ) {
    this.undoMark = b.undo.length;
  }

  private check(): void {
    if (this.ended) throw new Error('mvcc: TxnWrite already ended');
  }

  range(key: Buffer, end: Buffer | undefined, opts?: RangeOptions): RangeResult {
    this.check();
    return this.store.rangeAt(key, end, opts, this.beginRev + (this.changes > 0 ? 1 : 0));
  }

  put(key: Buffer, value: Buffer, lease: bigint): PutResult {
    this.check();
    const r = this.store.writeRev(this, this.b, key, value, lease);
    this.changes++;
    return r;
  }

  deleteRange(key: Buffer, end: Buffer | undefined, opts?: { values?: boolean }): KeyValue[] {
    this.check();
    const r = this.store.deleteRevs(this, this.b, key, end, opts?.values !== false);
    this.changes += r.length;
    return r;
  }

  end(): number {
    this.check();
    this.ended = true;
    return this.store.endTxn(this, this.b);
  }

  abort(): void {
    if (this.ended) return;
    this.ended = true;
    this.store.abortTxn(this, this.b, this.undoMark);
  }
}

/** A previous revision, read from the backend on first use (undefined once compacted away). */
class PrevRef {
  constructor(
    private readonly store: MvccStore | undefined,
    private readonly main: number,
    private readonly sub: number,
    private cached: KeyValue | undefined | null = null,
  ) {}

  get(): KeyValue | undefined {
    if (this.cached === null) this.cached = this.store?.readRev(this.main, this.sub);
    return this.cached;
  }
}

/** What TxnWrite.put returns: `prev`, the KeyValue it replaced, is read on access. */
export class PutResult {
  constructor(private readonly ref: PrevRef | undefined) {}

  get prev(): KeyValue | undefined {
    return this.ref?.get();
  }
}

/**
 * An mvccpb.Event whose prevKv is read from the backend on first access (a getter on the prototype:
 * read it or encode the event; spreading the event does not copy it).
 */
export class StoreEvent implements Event {
  constructor(
    readonly type: Event_EventType,
    readonly kv: KeyValue,
    private prev: PrevRef | undefined,
  ) {}

  get prevKv(): KeyValue | undefined {
    return this.prev?.get();
  }

  set prevKv(v: KeyValue | undefined) {
    this.prev = new PrevRef(undefined, 0, 0, v);
  }
}
