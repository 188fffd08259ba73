// The write-ahead log: etcd 3.4's segment files in a directory (usually <data-dir>/member/wal).
//
// Writes are synchronous (pwrite + fdatasync on the calling thread): the server calls save() once
// per raft Ready and may send that Ready's messages as soon as it returns. Every save() builds one
// buffer for all its records and issues one write and at most one fdatasync.
import * as fs from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { Entry, HardState } from '../gen/raftpb/raft.js';
import { Snapshot as WalSnapshotCodec } from '../gen/walpb/record.js';
import { type DecodedRecord, WalDecoder } from './decoder.js';
import { FrameEncoder, type RawRecord } from './encoder.js';
import { WalError } from './errors.js';
import { isValidSeq, parseWalName, searchIndex, walName, walNames } from './file_names.js';
import {
  fsyncDir,
  PRIVATE_DIR_MODE,
  PRIVATE_FILE_MODE,
  preallocate,
  writeFully,
  zeroToEnd,
} from './fsutil.js';
import { encodeEntry, encodeHardState, encodeWalSnapshot, isEmptyHardState } from './pb.js';
import {
  CRC_TYPE,
  DEFAULT_SEGMENT_SIZE_BYTES,
  ENTRY_TYPE,
  METADATA_TYPE,
  SNAPSHOT_TYPE,
  STATE_TYPE,
} from './record_types.js';
import { repairTornTail } from './repair.js';

/** walpb.Snapshot: the raft snapshot a WAL has recorded (index 0, term 0 at creation). */
export interface WalSnapshot {
  index: number;
  term: number;
}

/** A pino-compatible subset. */
export interface WalLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface WalOptions {
  /** Size at which a segment is cut and a new one started; etcd's default is 64,000,000 bytes. */
  segmentSizeBytes?: number;
  /** Skip fdatasync (etcd's --unsafe-no-fsync). Tests and benchmarks only. */
  unsafeNoFsync?: boolean;
  logger?: WalLogger;
}

export interface ReadAllResult {
  metadata: Buffer;
  hardState: HardState;
  /** The entries after the snapshot the WAL was opened at, later writes of an index replacing earlier ones. */
  entries: Entry[];
}

const SLOW_SYNC_MS = 1000;
/** Where cut() prepares the next segment (etcd's file pipeline uses 0.tmp / 1.tmp too). */
const CUT_TMP = '0.tmp';
const noopLogger: WalLogger = { info() {}, warn() {} };
const emptyHardState = (): HardState => ({ term: 0, vote: 0n, commit: 0 });

/** True when `dir` holds at least one segment file. */
export function walExists(dir: string): boolean {
  try {
    return walNames(fs.readdirSync(dir)).length > 0;
  } catch {
    return false;
  }
}

function readWalNames(dir: string): string[] {
  let names: string[];
  try {
    names = walNames(fs.readdirSync(dir));
  } catch (err) {
    throw new WalError('FILE_NOT_FOUND', `wal: cannot read directory ${dir}: ${(err as Error).message}`);
  }
  if (names.length === 0) throw new WalError('FILE_NOT_FOUND', `wal: no .wal files in ${dir}`);
  return names;
}

/** The segments to read when starting from `snap`: the last one starting at or before it, and all later ones. */
function selectWalFiles(dir: string, snap: WalSnapshot): string[] {
  const names = readWalNames(dir);
  const i = searchIndex(names, snap.index);
  if (i < 0) {
    throw new WalError('FILE_NOT_FOUND', `wal: no segment in ${dir} covers snapshot index ${snap.index}`);
  }
  const selected = names.slice(i);
  if (!isValidSeq(selected)) {
    throw new WalError('FILE_NOT_FOUND', `wal: segment sequence in ${dir} has a gap: ${selected.join(', ')}`);
  }
  return selected;
}

export class Wal {
  private readonly segmentSize: number;
  private readonly noSync: boolean;
  private readonly log: WalLogger;

  private metadata: Buffer | undefined;
  private state: HardState = emptyHardState();
  /** Index of the last entry saved (or read). */
  private enti = 0;
  /** Where reading starts; reset after readAll. */
  private start: WalSnapshot;
  /** Segment names still in use, oldest first; the last one is the tail being appended to. */
  private held: string[];
  private tailFd = -1;
  private tailOffset = 0;
  private encoder: FrameEncoder | undefined;
  private readDone = false;
  private failed: Error | undefined;
  private closed = false;
  /** Counters for metrics (etcd's wal_fsync_duration_seconds, wal_write_bytes_total). */
  readonly stats = { fsyncs: 0, fsyncMs: 0, writes: 0, bytesWritten: 0 };

  private constructor(
    readonly dir: string,
    start: WalSnapshot,
    held: string[],
    private readonly writable: boolean,
    opts: WalOptions,
  ) {
    this.start = { index: start.index, term: start.term };
    this.held = held;
    this.segmentSize = opts.segmentSizeBytes ?? DEFAULT_SEGMENT_SIZE_BYTES;
    this.noSync = opts.unsafeNoFsync ?? false;
    this.log = opts.logger ?? noopLogger;
  }

  /**
   * Creates a WAL in `dir` (which must hold no segments) with `metadata` recorded at the head of every
   * segment. Built in `<dir>.tmp` and renamed into place, so a crash never leaves a half-made WAL.
   */
  static create(dir: string, metadata: Uint8Array, opts: WalOptions = {}): Wal {
    if (walExists(dir)) throw new WalError('EXIST', `wal: ${dir} already holds a WAL`);
    const tmp = `${dir.replace(/\/+$/, '')}.tmp`;
    fs.rmSync(tmp, { recursive: true, force: true });
    fs.mkdirSync(tmp, { recursive: true, mode: PRIVATE_DIR_MODE });
    const name = walName(0, 0);
    const fd = fs.openSync(join(tmp, name), 'w+', PRIVATE_FILE_MODE);
    const w = new Wal(dir, { index: 0, term: 0 }, [name], true, opts);
    try {
      preallocate(fd, w.segmentSize);
      w.tailFd = fd;
      w.metadata = Buffer.from(metadata);
      w.encoder = new FrameEncoder(0);
      w.readDone = true;
      w.append([
        { type: CRC_TYPE },
        { type: METADATA_TYPE, data: w.metadata },
        { type: SNAPSHOT_TYPE, data: encodeWalSnapshot({ index: 0, term: 0 }) },
      ]);
      w.sync();
      fs.rmSync(dir, { recursive: true, force: true });
      fs.renameSync(tmp, dir);
      fsyncDir(dir);
      fsyncDir(dirname(dir));
    } catch (err) {
      fs.closeSync(fd);
      throw err;
    }
    return w;
  }

  /** Opens the WAL for appending, positioned to read from `snap`; call readAll() before saving. */
  static open(dir: string, snap: WalSnapshot, opts: WalOptions = {}): Wal {
    const held = selectWalFiles(dir, snap);
    const w = new Wal(dir, snap, held, true, opts);
    w.tailFd = fs.openSync(join(dir, held[held.length - 1]!), 'r+');
    // a segment being prepared when the process died (cut() renames it into place only once complete)
    fs.rmSync(join(dir, CUT_TMP), { force: true });
    return w;
  }

  /** Opens the WAL for reading only: a torn tail is tolerated and left as it is. */
  static openForRead(dir: string, snap: WalSnapshot, opts: WalOptions = {}): Wal {
    return new Wal(dir, snap, selectWalFiles(dir, snap), false, opts);
  }

  /** Index of the last entry saved or read. */
  get lastIndex(): number {
    return this.enti;
  }

  /** The segment names this WAL still holds (purge() never removes them), oldest first. */
  get segments(): readonly string[] {
    return this.held;
  }

  /**
   * Reads the metadata, the last hard state, and the entries after the snapshot the WAL was opened
   * at. A torn tail of the last segment is repaired (writable WAL); any other damage throws a
   * WalError naming the file and offset. Throws SNAPSHOT_NOT_FOUND if the snapshot marker is absent.
   */
  readAll(): ReadAllResult {
    this.checkUsable();
    if (this.readDone) throw new WalError('CORRUPT', 'wal: readAll may be called once, right after open');
    const decoder = new WalDecoder(this.held.map((n) => join(this.dir, n)));
    const gen = decoder.records();
    let metadata: Buffer | undefined;
    let state = emptyHardState();
    const ents: Entry[] = [];
    let match = false;
    const start = this.start;
    for (let it = gen.next(); !it.done; it = gen.next()) {
      const rec: DecodedRecord = it.value;
      switch (rec.type) {
        case ENTRY_TYPE: {
          const e = Entry.decode(rec.data);
          if (e.index > start.index) {
            const up = e.index - start.index - 1;
            if (up > ents.length) {
              throw new WalError(
                'SLICE_OUT_OF_RANGE',
                `wal: entry ${e.index} in ${basename(rec.file)} at offset ${rec.offset} leaves a gap after entry ${start.index + ents.length}`,
                rec.file,
                rec.offset,
              );
            }
            ents.length = up;
            ents.push(e);
          }
          this.enti = e.index;
          break;
        }
        case STATE_TYPE:
          state = HardState.decode(rec.data);
          break;
        case METADATA_TYPE:
          if (metadata !== undefined && !metadata.equals(rec.data)) {
            throw new WalError(
              'METADATA_CONFLICT',
              `wal: conflicting metadata found in ${basename(rec.file)} at offset ${rec.offset}`,
              rec.file,
              rec.offset,
            );
          }
          metadata ??= Buffer.from(rec.data);
          break;
        case CRC_TYPE:
          decoder.checkCrcRecord(rec);
          break;
        case SNAPSHOT_TYPE: {
          const snap = WalSnapshotCodec.decode(rec.data);
          if (snap.index === start.index) {
            if (snap.term !== start.term) {
              throw new WalError(
                'SNAPSHOT_MISMATCH',
                `wal: snapshot mismatch: marker in ${basename(rec.file)} at offset ${rec.offset} has term ${snap.term} for index ${snap.index}, expected term ${start.term}`,
                rec.file,
                rec.offset,
              );
            }
            match = true;
          }
          break;
        }
        default:
          throw new WalError(
            'UNEXPECTED_TYPE',
            `wal: unexpected block type ${rec.type} in ${basename(rec.file)} at offset ${rec.offset}`,
            rec.file,
            rec.offset,
          );
      }
    }
    const end = decoder.end;
    if (this.writable) {
      if (end.torn !== undefined) {
        const r = repairTornTail(end.file, this.tailFd, end.offset);
        this.log.warn(
          {
            path: end.file,
            offset: end.offset,
            reason: end.torn,
            discardedBytes: r.discardedBytes,
            backup: r.backup,
          },
          'repaired torn WAL tail',
        );
      } else {
        zeroToEnd(this.tailFd, end.offset);
      }
      this.tailOffset = end.offset;
      this.encoder = new FrameEncoder(decoder.crc);
    } else if (end.torn !== undefined) {
      this.log.warn({ path: end.file, offset: end.offset, reason: end.torn }, 'WAL ends in a torn write');
    }
    if (!match) {
      throw new WalError(
        'SNAPSHOT_NOT_FOUND',
        `wal: snapshot not found: no marker for index ${start.index} term ${start.term} in ${this.dir}`,
      );
    }
    this.readDone = true;
    this.start = { index: 0, term: 0 };
    this.metadata = metadata ?? Buffer.alloc(0);
    this.state = { ...state };
    return { metadata: this.metadata, hardState: state, entries: ents };
  }

  /**
   * Appends the entries and the hard state (if not empty) in one write. Synced (one fdatasync)
   * when entries were given or term/vote changed, as raft requires; a commit-only change is not.
   * Cuts a new segment when the tail has reached the segment size.
   */
  save(hardState: HardState, entries: readonly Entry[]): void {
    if (this.saveNoSync(hardState, entries)) this.sync();
  }

  /**
   * Like save(), but leaves the fdatasync to the caller: returns whether one is owed, to be done with
   * syncAsync() before the batch counts as durable. Lets the server keep serving while the disk syncs.
   */
  saveNoSync(hardState: HardState, entries: readonly Entry[]): boolean {
    this.checkWritable();
    const emptyState = isEmptyHardState(hardState);
    if (emptyState && entries.length === 0) return false;
    const mustSync =
      entries.length > 0 ||
      BigInt(hardState.vote) !== BigInt(this.state.vote) ||
      hardState.term !== this.state.term;
    const recs: RawRecord[] = new Array(entries.length);
    for (let i = 0; i < entries.length; i++) recs[i] = { type: ENTRY_TYPE, data: encodeEntry(entries[i]!) };
    if (!emptyState) recs.push({ type: STATE_TYPE, data: encodeHardState(hardState) });
    this.append(recs);
    if (entries.length > 0) this.enti = entries[entries.length - 1]!.index;
    if (!emptyState) this.state = { term: hardState.term, vote: hardState.vote, commit: hardState.commit };
    if (this.tailOffset < this.segmentSize) return mustSync;
    this.cut(); // syncs the finished segment and the new one
    return false;
  }

  /** fdatasync of the tail segment on the thread pool; `done` runs when the data is durable. */
  syncAsync(done: (err: Error | null) => void): void {
    if (this.noSync || this.tailFd < 0) {
      setImmediate(() => done(null));
      return;
    }
    const t0 = performance.now();
    fs.fdatasync(this.tailFd, (err) => {
      if (err) {
        this.failed = err;
        done(err);
        return;
      }
      this.stats.fsyncs++;
      this.stats.fsyncMs += performance.now() - t0;
      done(null);
    });
  }

  /** Records a snapshot marker and syncs. */
  saveSnapshot(snap: WalSnapshot): void {
    this.checkWritable();
    this.append([{ type: SNAPSHOT_TYPE, data: encodeWalSnapshot(snap) }]);
    if (this.enti < snap.index) this.enti = snap.index;
    this.sync();
  }

  /** fdatasync of the tail segment. */
  sync(): void {
    if (this.noSync || this.tailFd < 0) return;
    const t0 = performance.now();
    try {
      fs.fdatasyncSync(this.tailFd);
    } catch (err) {
      this.failed = err as Error;
      throw err;
    }
    const took = performance.now() - t0;
    this.stats.fsyncs++;
    this.stats.fsyncMs += took;
    if (took > SLOW_SYNC_MS) this.log.warn({ tookMs: took, expectedMs: SLOW_SYNC_MS }, 'slow fdatasync');
  }

  /**
   * Releases the segments that hold only entries below `index` (the index of the newest raft
   * snapshot), keeping the one that contains `index`, so that purge() may remove them.
   */
  releaseLockTo(index: number): void {
    let smaller = this.held.length - 1;
    for (let i = 0; i < this.held.length; i++) {
      if (parseWalName(this.held[i]!)!.index >= index) {
        smaller = i - 1;
        break;
      }
    }
    if (smaller <= 0) return;
    this.held = this.held.slice(smaller);
  }

  /**
   * Removes the oldest segment files while more than `maxWals` remain, never one this WAL still
   * holds (etcd's --max-wals; 0 means keep all). Returns the removed names.
   */
  purge(maxWals: number): string[] {
    if (maxWals <= 0) return [];
    const names = walNames(fs.readdirSync(this.dir));
    const held = new Set(this.held);
    const removed: string[] = [];
    while (names.length > maxWals && !held.has(names[0]!)) {
      const name = names.shift()!;
      fs.unlinkSync(join(this.dir, name));
      removed.push(name);
      this.log.info({ path: join(this.dir, name) }, 'purged WAL segment');
    }
    if (removed.length > 0) fsyncDir(this.dir);
    return removed;
  }

  /** Syncs and closes the tail. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.tailFd >= 0) {
      try {
        if (this.failed === undefined && this.readDone) this.sync();
      } finally {
        fs.closeSync(this.tailFd);
        this.tailFd = -1;
      }
    }
  }

  private checkUsable(): void {
    if (this.closed) throw new WalError('CLOSED', 'wal: closed');
    if (this.failed)
      throw new WalError('CLOSED', `wal: unusable after a failed write: ${this.failed.message}`);
  }

  private checkWritable(): void {
    this.checkUsable();
    if (!this.writable) throw new WalError('CLOSED', 'wal: opened for reading only');
    if (!this.readDone) throw new WalError('CLOSED', 'wal: readAll must be called before writing');
  }

  private append(recs: readonly RawRecord[]): void {
    const buf = this.encoder!.encode(recs);
    try {
      writeFully(this.tailFd, buf, this.tailOffset);
    } catch (err) {
      // The file now holds an unknown prefix of this batch; the next open repairs or rejects it.
      this.failed = err as Error;
      throw err;
    }
    this.tailOffset += buf.length;
    this.stats.writes++;
    this.stats.bytesWritten += buf.length;
  }

  /**
   * Closes the full tail and starts the next segment: named (seq+1, last index+1), beginning with a
   * crc record carrying the running crc, the metadata and the hard state. Prepared as `0.tmp`,
   * synced, then renamed into place.
   */
  private cut(): void {
    fs.ftruncateSync(this.tailFd, this.tailOffset);
    this.sync();
    const tail = this.held[this.held.length - 1]!;
    const name = walName(parseWalName(tail)!.seq + 1, this.enti + 1);
    const tmp = join(this.dir, CUT_TMP);
    const fd = fs.openSync(tmp, 'w+', PRIVATE_FILE_MODE);
    const prevCrc = this.encoder!.crc;
    const oldFd = this.tailFd;
    try {
      preallocate(fd, this.segmentSize);
      this.tailFd = fd;
      this.tailOffset = 0;
      this.encoder = new FrameEncoder(prevCrc);
      const recs: RawRecord[] = [{ type: CRC_TYPE }, { type: METADATA_TYPE, data: this.metadata }];
      if (!isEmptyHardState(this.state)) recs.push({ type: STATE_TYPE, data: encodeHardState(this.state) });
      this.append(recs);
      this.sync();
      fs.renameSync(tmp, join(this.dir, name));
      fsyncDir(this.dir);
    } catch (err) {
      this.failed = err as Error;
      throw err;
    } finally {
      fs.closeSync(oldFd);
    }
    this.held.push(name);
    this.log.info({ path: join(this.dir, name) }, 'created a new WAL segment');
  }
}

/**
 * The snapshot markers of the WAL in `dir` whose index the recorded hard state has committed
 * (etcd's wal.ValidSnapshotEntries): the candidates a restarting server may load a .snap for.
 */
export function validSnapshotEntries(dir: string): WalSnapshot[] {
  const decoder = new WalDecoder(readWalNames(dir).map((n) => join(dir, n)));
  const snaps: WalSnapshot[] = [];
  let state = emptyHardState();
  for (const rec of iterate(decoder)) {
    if (rec.type === SNAPSHOT_TYPE) {
      const s = WalSnapshotCodec.decode(rec.data);
      snaps.push({ index: s.index, term: s.term });
    } else if (rec.type === STATE_TYPE) {
      state = HardState.decode(rec.data);
    } else if (rec.type === CRC_TYPE) {
      decoder.checkCrcRecord(rec);
    }
  }
  return snaps.filter((s) => s.index <= state.commit);
}

function* iterate(decoder: WalDecoder): Generator<DecodedRecord> {
  const gen = decoder.records();
  for (let it = gen.next(); !it.done; it = gen.next()) yield it.value;
}

/** Checks the WAL from `snap` on without modifying it (etcd's wal.Verify); throws a WalError if damaged. */
export function verifyWal(dir: string, snap: WalSnapshot): void {
  Wal.openForRead(dir, snap).readAll();
}
