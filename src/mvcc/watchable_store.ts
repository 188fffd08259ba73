// The watchable store: watchers over key ranges of an MvccStore, grouped in streams (one per gRPC
// Watch call), fed with the events of every revision in order, exactly once, a revision never split.
//
// A watcher is either
//   - synced: it has seen every revision before `minRev` and sits in the key index; the store's change
//     listener hands it the events of each new revision as that revision commits (the hot path); or
//   - unsynced: it still has to see revisions minRev..current, read back from the backend by the sync
//     loop in bounded blocks (a watch from a past revision; or a watcher of a blocked stream).
//
// Flow control is per stream. The sink's send() returns false when the consumer's buffer is full; the
// stream then counts as blocked: its watchers leave the key index, remembering the first revision each
// has not seen, and nothing more is pushed to it, so a stuck client costs neither memory nor the time of
// other watchers. When the consumer drains, resume() hands the stream to the sync loop, which catches its
// watchers up from history (sharing its reads between streams) and puts them back in the
// index once they reach the current revision. A watcher whose next revision was compacted meanwhile is
// canceled with the compaction revision, as etcd does.
import { type Event, Event_EventType, type KeyValue } from '../gen/mvccpb/kv.js';
import type { MvccStore } from './store.js';
import { setPrevKvResolver } from './watch_codec.js';
import { type KeyRange, rangeContains, WatcherIndex } from './watch_index.js';

/** etcd's watch ID for "let the server choose" in a create request. */
export const AUTO_WATCH_ID = 0;
/** etcd's watch ID for responses that belong to no watcher (failed creates, stream-wide progress). */
export const INVALID_WATCH_ID = -1;

export class WatchError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WatchError';
  }
}

export const WatchErrors = {
  emptyRange: 'mvcc: watcher range is empty',
  duplicateId: 'mvcc: duplicate watch ID provided on the WatchStream',
  notExist: 'mvcc: watcher does not exist',
} as const;

export interface WatchCreateOptions {
  /** 0 or absent: the stream picks the lowest free ID */
  id?: number;
  key: Buffer;
  /** undefined: the single key; empty: every key >= key; otherwise [key, end) */
  end?: Buffer;
  /** first revision to report; 0 or absent: the revisions after the current one */
  startRevision?: number;
  noPut?: boolean;
  noDelete?: boolean;
  prevKv?: boolean;
  progressNotify?: boolean;
  fragment?: boolean;
}

/** One message for a stream's consumer. */
export interface WatchDelivery {
  watchId: number;
  /**
   * The revision up to which the watcher has now seen everything (the header revision): the events'
   * revision for a live response; the end of the range read for a catch-up response; the current
   * revision for progress notifications; 0 for a compaction cancel (as etcd).
   */
  revision: number;
  /** In revision order; never splits a revision. Empty for progress notifications. */
  events: readonly Event[];
  /** the watcher asked for prev_kv (see watch_codec's wireEvent/encodedEvent) */
  prevKv: boolean;
  /** the watcher asked for fragmentation of large responses */
  fragment: boolean;
  /** > 0: the watcher is canceled because this revision compacted what it still had to see */
  compactRevision: number;
}

export interface WatchSink {
  /** Delivers a message; false: the consumer's buffer is full, send nothing more until resume(). */
  send(d: WatchDelivery): boolean;
}

export interface WatchableStoreOptions {
  /** period of progress notifications for watchers created with progressNotify (etcd: 10 minutes) */
  progressIntervalMs?: number;
  /** revisions read from the backend per catch-up step */
  historyBlockRevs?: number;
  /** catch-up responses merge revisions up to about this many bytes (a revision is never split) */
  mergeBytes?: number;
  /** catch-up steps per event-loop turn, across all streams */
  stepsPerTurn?: number;
  /** called when a sink throws; the stream is closed */
  onError?: (err: unknown) => void;
}

const DEFAULT_PROGRESS_MS = 10 * 60 * 1000;

class Watcher implements KeyRange {
  /** the first revision this watcher has not yet seen (for synced ones: may lag, see the index) */
  minRev: number;
  synced = false;
  removed = false;
  /** no events sent since the last progress tick (etcd's "progress" map) */
  progressArmed = true;

  constructor(
    readonly stream: WatchStream,
    readonly id: number,
    readonly key: Buffer,
    readonly end: Buffer | undefined,
    startRev: number,
    readonly noPut: boolean,
    readonly noDelete: boolean,
    readonly prevKv: boolean,
    readonly progressNotify: boolean,
    readonly fragment: boolean,
  ) {
    this.minRev = startRev;
  }

  /** the type filters only (the key already matched) */
  passes(ev: Event): boolean {
    if (ev.type === Event_EventType.PUT) return !this.noPut;
    return !this.noDelete;
  }

  wants(ev: Event): boolean {
    return this.passes(ev) && ev.kv !== undefined && rangeContains(this, ev.kv.key);
  }
}

interface HistoryBlock {
  from: number;
  /** every revision from..hi is in revs (those that exist: all above the compaction point) */
  hi: number;
  compactRev: number;
  revs: Array<{ rev: number; events: Event[] }>;
  bytes: number;
}

/** what one history read aims at */
const READ_TARGET_BYTES = 4 * 1024 * 1024;
/** history blocks kept for other streams catching up from the same revision */
const CACHE_BYTES = 16 * 1024 * 1024;

export class WatchableStore {
  private readonly index = new WatcherIndex<Watcher>();
  private readonly streams = new Set<WatchStream>();
  private readonly syncQueue = new Set<WatchStream>();
  private syncScheduled = false;
  private readonly blocks = new Map<number, HistoryBlock>();
  private blockBytes = 0;
  private revsPerRead: number;
  private unsubscribe: () => void;
  /** the store's in-place restores (restoreFromBbolt) resync every watcher, as restore() does */
  private unsubscribeRestore: () => void;
  private storeRef: MvccStore;
  private closed = false;
  readonly progressIntervalMs: number;
  private readonly blockRevs: number;
  private readonly mergeBytes: number;
  private readonly stepsPerTurn: number;

  constructor(
    store: MvccStore,
    readonly opts: WatchableStoreOptions = {},
  ) {
    this.progressIntervalMs = opts.progressIntervalMs ?? DEFAULT_PROGRESS_MS;
    this.blockRevs = opts.historyBlockRevs ?? 256;
    this.revsPerRead = this.blockRevs;
    this.mergeBytes = opts.mergeBytes ?? 1024 * 1024;
    this.stepsPerTurn = opts.stepsPerTurn ?? 8;
    this.storeRef = store;
    this.unsubscribe = store.onChanges((rev, events) => this.notify(rev, events));
    this.unsubscribeRestore = this.onRestoreOf(store);
  }

  private onRestoreOf(store: MvccStore): () => void {
    return store.onRestore((info) => this.restore(store, info.previousRevision));
  }

  get store(): MvccStore {
    return this.storeRef;
  }

  /**
   * The server replaced its store (a snapshot from the leader): every watcher has seen what the old
   * store had and now catches up from the new one (or is canceled if that one compacted past it).
   */
  restore(store: MvccStore, oldRev = this.storeRef.currentRevision): void {
    if (store !== this.storeRef) {
      this.unsubscribeRestore();
      this.unsubscribeRestore = this.onRestoreOf(store);
    }
    this.unsubscribe();
    this.storeRef = store;
    this.unsubscribe = store.onChanges((rev, events) => this.notify(rev, events));
    this.blocks.clear();
    this.blockBytes = 0;
    for (const s of this.streams) {
      for (const w of s.watchers.values()) {
        if (!w.synced) continue;
        this.index.delete(w);
        w.synced = false;
        if (w.minRev <= oldRev) w.minRev = oldRev + 1;
        s.unsynced.add(w);
      }
      if (s.unsynced.size > 0) this.scheduleSync(s);
    }
  }

  newStream(sink: WatchSink): WatchStream {
    if (this.closed) throw new Error('mvcc: watchable store is closed');
    const s = new WatchStream(this, sink);
    this.streams.add(s);
    return s;
  }

  /** Closes every stream and stops listening to the store. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.unsubscribe();
    this.unsubscribeRestore();
    for (const s of [...this.streams]) s.close();
    this.blocks.clear();
    this.blockBytes = 0;
  }

  /** Counts, for tests and metrics. */
  stats(): { streams: number; synced: number; unsynced: number; blockedStreams: number } {
    let unsynced = 0;
    let blocked = 0;
    for (const s of this.streams) {
      unsynced += s.unsynced.size;
      if (s.blocked) blocked++;
    }
    return { streams: this.streams.size, synced: this.index.size, unsynced, blockedStreams: blocked };
  }

  // ---- the hot path: one committed revision ----

  private notify(rev: number, events: Event[]): void {
    if (this.index.size === 0) return;
    if (events.length === 1) {
      // the common case (a put): no per-watcher event lists, the same array for everyone
      const ev = events[0]!;
      const key = ev.kv!.key;
      const hits: Watcher[] = [];
      this.index.forEachMatch(key, key.toString('latin1'), (w) => {
        if (rev >= w.minRev && w.passes(ev)) hits.push(w);
      });
      for (const w of hits) this.deliverLive(w, rev, events);
      return;
    }
    const matched = new Map<Watcher, Event[]>();
    for (const ev of events) {
      const key = ev.kv!.key;
      this.index.forEachMatch(key, key.toString('latin1'), (w) => {
        if (rev < w.minRev || !w.passes(ev)) return;
        const evs = matched.get(w);
        if (evs === undefined) matched.set(w, [ev]);
        else evs.push(ev);
      });
    }
    for (const [w, evs] of matched) this.deliverLive(w, rev, evs);
  }

  private deliverLive(w: Watcher, rev: number, evs: readonly Event[]): void {
    if (w.removed) return;
    if (!w.synced) {
      // its stream blocked earlier in this revision: it has not seen this revision
      w.minRev = rev;
      return;
    }
    w.minRev = rev + 1;
    if (!this.deliver(w, rev, evs)) this.blockStream(w.stream, rev + 1);
  }

  /** Sends events to a watcher; false if its stream is now full. */
  private deliver(w: Watcher, revision: number, events: readonly Event[]): boolean {
    if (events.length > 0) w.progressArmed = false;
    return w.stream.sendRaw({
      watchId: w.id,
      revision,
      events,
      prevKv: w.prevKv,
      fragment: w.fragment,
      compactRevision: 0,
    });
  }

  // ---- watcher bookkeeping (called by WatchStream) ----

  /** @internal */
  addWatcher(w: Watcher): void {
    const cur = this.store.currentRevision;
    if (w.minRev === 0 || w.minRev > cur) {
      w.minRev = Math.max(w.minRev, cur + 1);
      if (!w.stream.blocked) {
        this.makeSynced(w);
        return;
      }
    }
    w.stream.unsynced.add(w);
    this.scheduleSync(w.stream);
  }

  /** @internal */
  removeWatcher(w: Watcher): void {
    w.removed = true;
    if (w.synced) this.index.delete(w);
    w.synced = false;
    w.stream.unsynced.delete(w);
  }

  /** @internal */
  dropStream(s: WatchStream): void {
    this.streams.delete(s);
    this.syncQueue.delete(s);
  }

  private makeSynced(w: Watcher): void {
    w.stream.unsynced.delete(w);
    w.synced = true;
    this.index.add(w);
  }

  /**
   * Marks a stream blocked: its synced watchers leave the index; each has seen everything before
   * nextRev (watchers that matched the current revision but were not sent it are fixed up by notify).
   * @internal
   */
  blockStream(s: WatchStream, nextRev: number): void {
    if (s.blocked) return;
    s.blocked = true;
    for (const w of s.watchers.values()) {
      if (!w.synced) continue;
      this.index.delete(w);
      w.synced = false;
      if (w.minRev < nextRev) w.minRev = nextRev;
      s.unsynced.add(w);
    }
  }

  /** @internal */
  scheduleSync(s: WatchStream): void {
    if (s.closed) return;
    this.syncQueue.add(s);
    if (this.syncScheduled) return;
    this.syncScheduled = true;
    setImmediate(() => this.runSync());
  }

  private runSync(): void {
    this.syncScheduled = false;
    if (this.closed) return;
    let steps = 0;
    while (this.syncQueue.size > 0 && steps < this.stepsPerTurn) {
      for (const s of [...this.syncQueue]) {
        this.syncQueue.delete(s);
        let more = false;
        try {
          more = this.syncStep(s);
        } catch (err) {
          s.fail(err);
        }
        // round robin: a stream with more to do goes to the back of the queue
        if (more) this.syncQueue.add(s);
        if (++steps >= this.stepsPerTurn) break;
      }
    }
    if (this.syncQueue.size > 0) {
      this.syncScheduled = true;
      setImmediate(() => this.runSync());
    }
  }

  /** One bounded catch-up step for a stream's unsynced watchers; true if more remains. */
  private syncStep(s: WatchStream): boolean {
    if (s.closed || s.blocked) return false;
    const cur = this.store.currentRevision;
    const compact = this.store.compactRevision;
    let lo = Number.POSITIVE_INFINITY;
    for (const w of s.unsynced) {
      if (w.minRev > cur) {
        this.makeSynced(w);
        continue;
      }
      if (w.minRev < compact) {
        // etcd: a watcher that still needs revisions below the compaction point is canceled
        s.removeById(w.id);
        const ok = s.sendRaw({
          watchId: w.id,
          revision: 0,
          events: [],
          prevKv: false,
          fragment: false,
          compactRevision: compact,
        });
        if (!ok) {
          this.blockStream(s, cur + 1);
          return false;
        }
        continue;
      }
      if (w.minRev === compact) {
        // what is left of the compaction revision itself: the puts still stored at it (as etcd)
        if (!this.deliverAtCompactRev(w, compact)) {
          this.blockStream(s, cur + 1);
          return false;
        }
        if (w.minRev > cur) {
          this.makeSynced(w);
          continue;
        }
      }
      if (w.minRev < lo) lo = w.minRev;
    }
    if (lo === Number.POSITIVE_INFINITY) {
      s.flushPendingProgress();
      return false;
    }
    const block = this.historyBlock(lo, cur);
    for (const w of [...s.unsynced]) {
      if (w.minRev > block.hi || w.minRev < block.from) continue;
      let batch: Event[] = [];
      let bytes = 0;
      for (const r of block.revs) {
        if (r.rev < w.minRev) continue;
        for (const ev of r.events) {
          if (w.wants(ev)) {
            batch.push(ev);
            bytes += ev.kv!.key.length + ev.kv!.value.length + 48;
          }
        }
        if (bytes >= this.mergeBytes && r.rev < block.hi) {
          const ok = this.deliver(w, r.rev, batch);
          w.minRev = r.rev + 1;
          batch = [];
          bytes = 0;
          if (!ok) {
            this.blockStream(s, cur + 1);
            return false;
          }
        }
      }
      w.minRev = block.hi + 1;
      if (batch.length > 0 && !this.deliver(w, block.hi, batch)) {
        this.blockStream(s, cur + 1);
        return false;
      }
      if (w.minRev > cur) this.makeSynced(w);
    }
    if (s.unsynced.size === 0) {
      s.flushPendingProgress();
      return false;
    }
    return true;
  }

  private deliverAtCompactRev(w: Watcher, compact: number): boolean {
    let kvs: KeyValue[] = [];
    try {
      const end = w.end === undefined ? undefined : w.end.length === 0 ? Buffer.from([0]) : w.end;
      kvs = this.store.range(w.key, end, { rev: compact }).kvs;
    } catch {
      kvs = [];
    }
    const events: Event[] = [];
    for (const kv of kvs) {
      if (kv.modRevision !== compact) continue;
      const ev: Event = { type: Event_EventType.PUT, kv, prevKv: undefined };
      if (w.passes(ev)) events.push(ev);
    }
    w.minRev = compact + 1;
    return events.length === 0 || this.deliver(w, compact, events);
  }

  /**
   * Revisions from lo on, read from the backend: at most `revsPerRead` of them (fewer when they are
   * large: each read aims at a few MB), up to cur. Streams catching up from the same revision (blocked
   * together, or resuming the same watch) share the read; a few recent blocks are kept, within a byte
   * budget.
   */
  private historyBlock(lo: number, cur: number): HistoryBlock {
    const compact = this.store.compactRevision;
    for (const b of this.blocks.values()) {
      if (b.from <= lo && lo <= b.hi && b.compactRev === compact) return b;
    }
    const limit = this.revsPerRead;
    const hi = Math.min(cur, lo + this.blockRevs - 1);
    const revs = this.store.history(lo, hi, limit);
    const store = this.store;
    let bytes = 0;
    for (const r of revs) {
      for (const ev of r.events) {
        const kv = ev.kv!;
        bytes += kv.key.length + kv.value.length + 64;
        if (ev.type === Event_EventType.PUT && kv.createRevision === kv.modRevision) continue;
        setPrevKvResolver(ev, () => {
          try {
            return store.range(kv.key, undefined, { rev: kv.modRevision - 1 }).kvs[0];
          } catch {
            return undefined;
          }
        });
      }
    }
    // adapt the next read to the size of this one
    if (bytes > READ_TARGET_BYTES && limit > 1) this.revsPerRead = Math.max(1, limit >> 1);
    else if (bytes < READ_TARGET_BYTES / 4 && limit < this.blockRevs) {
      this.revsPerRead = Math.min(this.blockRevs, limit * 2);
    }
    const block: HistoryBlock = {
      from: lo,
      hi: revs.length >= limit ? revs[revs.length - 1]!.rev : hi,
      compactRev: compact,
      revs,
      bytes,
    };
    this.blocks.set(lo, block);
    this.blockBytes += bytes;
    while (this.blocks.size > 8 || (this.blockBytes > CACHE_BYTES && this.blocks.size > 1)) {
      const [k, old] = this.blocks.entries().next().value as [number, HistoryBlock];
      this.blocks.delete(k);
      this.blockBytes -= old.bytes;
    }
    return block;
  }

  // ---- progress ----

  /** @internal the current revision, as every synced watcher has seen it */
  get currentRevision(): number {
    return this.store.currentRevision;
  }

  /** @internal periodic progress for one stream (etcd's progress ticker) */
  progressTick(s: WatchStream): void {
    const rev = this.store.currentRevision;
    for (const w of s.watchers.values()) {
      if (!w.progressNotify) continue;
      if (w.progressArmed && w.synced && !s.blocked) {
        if (!this.deliver(w, rev, [])) this.blockStream(s, rev + 1);
      }
      w.progressArmed = true;
    }
  }
}

/** The watchers of one consumer (one gRPC Watch call), sharing its flow control. */
export class WatchStream {
  /** @internal */
  readonly watchers = new Map<number, Watcher>();
  /** @internal */
  readonly unsynced = new Set<Watcher>();
  /** @internal */
  blocked = false;
  closed = false;
  private nextId = 0;
  private progressPending = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly ws: WatchableStore,
    private readonly sink: WatchSink,
  ) {}

  /** The store's current revision. */
  get rev(): number {
    return this.ws.store.currentRevision;
  }

  /**
   * Creates a watcher and returns its ID. Delivers nothing synchronously, so the caller can announce
   * the watcher (etcd's "created" response) before its first events. Throws WatchError.
   */
  watch(o: WatchCreateOptions): number {
    if (this.closed) throw new WatchError(WatchErrors.emptyRange);
    const end = o.end;
    if (end !== undefined && end.length > 0 && Buffer.compare(o.key, end) >= 0) {
      throw new WatchError(WatchErrors.emptyRange);
    }
    let id = o.id ?? AUTO_WATCH_ID;
    if (id === AUTO_WATCH_ID) {
      while (this.watchers.has(this.nextId)) this.nextId++;
      id = this.nextId++;
    } else if (this.watchers.has(id)) {
      throw new WatchError(WatchErrors.duplicateId);
    }
    const w = new Watcher(
      this,
      id,
      Buffer.from(o.key),
      end === undefined ? undefined : Buffer.from(end),
      Math.max(0, o.startRevision ?? 0),
      !!o.noPut,
      !!o.noDelete,
      !!o.prevKv,
      !!o.progressNotify,
      !!o.fragment,
    );
    this.watchers.set(id, w);
    this.ws.addWatcher(w);
    if (w.progressNotify) this.startProgressTimer();
    return id;
  }

  /** Cancels a watcher; false if there is none with this ID. */
  cancel(id: number): boolean {
    if (this.closed) return false;
    return this.removeById(id);
  }

  /** @internal */
  removeById(id: number): boolean {
    const w = this.watchers.get(id);
    if (w === undefined) return false;
    this.watchers.delete(id);
    this.ws.removeWatcher(w);
    return true;
  }

  /** IDs of the live watchers. */
  ids(): number[] {
    return [...this.watchers.keys()];
  }

  /**
   * A stream-wide progress notification (watch ID -1, header revision = current revision): sent once
   * every watcher of the stream has seen everything up to that revision, at once if that is already so.
   */
  requestProgress(): void {
    if (this.closed) return;
    this.progressPending = true;
    if (!this.blocked && this.unsynced.size === 0) this.flushPendingProgress();
  }

  /** @internal */
  flushPendingProgress(): void {
    if (!this.progressPending || this.blocked || this.closed) return;
    this.progressPending = false;
    const rev = this.ws.currentRevision;
    const ok = this.sendRaw({
      watchId: INVALID_WATCH_ID,
      revision: rev,
      events: [],
      prevKv: false,
      fragment: false,
      compactRevision: 0,
    });
    if (!ok) this.ws.blockStream(this, rev + 1);
  }

  /**
   * The consumer's buffer is full (it refused a message sent outside this stream, e.g. a control
   * response): stop pushing until resume().
   */
  block(): void {
    if (this.closed) return;
    this.ws.blockStream(this, this.ws.currentRevision + 1);
  }

  /** The consumer drained: catch up from history, then go live again. */
  resume(): void {
    if (this.closed || !this.blocked) return;
    this.blocked = false;
    this.ws.scheduleSync(this);
  }

  close(): void {
    if (this.closed) return;
    for (const w of this.watchers.values()) this.ws.removeWatcher(w);
    this.closed = true;
    this.watchers.clear();
    this.unsynced.clear();
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.ws.dropStream(this);
  }

  /** @internal */
  sendRaw(d: WatchDelivery): boolean {
    if (this.closed) return false;
    try {
      return this.sink.send(d);
    } catch (err) {
      this.fail(err);
      return false;
    }
  }

  /** @internal */
  fail(err: unknown): void {
    this.close();
    this.ws.opts.onError?.(err);
  }

  private startProgressTimer(): void {
    if (this.timer !== undefined || this.closed) return;
    const interval = this.ws.progressIntervalMs;
    // etcd adds up to 10% of jitter so that streams created together do not all report together
    const delay = interval + Math.floor(Math.random() * (interval / 10));
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.closed) return;
      this.ws.progressTick(this);
      if (!this.closed && [...this.watchers.values()].some((w) => w.progressNotify)) {
        this.startProgressTimer();
      }
    }, delay);
    this.timer.unref();
  }
}
