// The member's maintenance duties: alarms and the backend quota, snapshots, defragmentation, automatic
// compaction and the health verdict. EtcdServer owns one Maintenance and calls it at a few points (quota
// check before a put/txn/lease grant, the `alarm` case in apply, Status errors); the api layer calls the
// rest. Everything that changes state (alarms, compactions) goes through the normal write path.
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import { open as openFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { InternalRaftRequest } from '../gen/etcdserverpb/raft_internal.js';
import {
  type AlarmRequest,
  AlarmRequest_AlarmAction,
  type AlarmResponse,
  AlarmType,
  type Member,
} from '../gen/etcdserverpb/rpc.js';
import { CLUSTER_VERSION_KEY, encodeMemberKey, encodeMemberValue } from '../mvcc/bbolt/index.js';
import { defragStore, StoreChangedError } from '../mvcc/defrag.js';
import { writeStoreSnapshot } from '../mvcc/snapshot.js';
import type { MvccStore } from '../mvcc/store.js';
import { ALARM_BUCKET, type AlarmChange, AlarmStore, alarmName, alarmString } from './alarms.js';
import { type AutoCompactor, parseRetention, startAutoCompactor } from './auto_compactor.js';
import type { ServerConfig } from './config.js';
import { Errors } from './errors.js';
import type { Logger } from './logger.js';
import { idToHex } from './member_id.js';
import { costTxn, Quota, type QuotaRequest } from './quota.js';

/** The cluster version a snapshot records (etcd 3.4 writes "3.4.0"). */
export const SNAPSHOT_CLUSTER_VERSION = '3.4.0';
/** etcd streams snapshots in blobs of this size. */
export const SNAPSHOT_CHUNK_BYTES = 32 * 1024;
/** Auto-disarm: the backend must be this far under the quota before NOSPACE is cleared (no flapping). */
export const AUTO_DISARM_HEADROOM = 0.95;
const AUTO_DISARM_CHECK_MS = 5000;

export interface MaintenanceDeps {
  store: MvccStore;
  config: ServerConfig;
  log: Logger;
  memberId: bigint;
  /** proposes through the write path (waits while writes are paused) */
  propose(fields: Partial<InternalRaftRequest>): Promise<unknown>;
  /** proposes without waiting for paused writes (used to drain the pipeline) */
  proposeNow(fields: Partial<InternalRaftRequest>): Promise<unknown>;
  /** compacts through the write path */
  compact(revision: number): Promise<unknown>;
  members(): Member[];
  /** Whether raft knows a leader (/health is false without one, as in etcd). */
  hasLeader?: () => boolean;
}

export interface SnapshotStream {
  /** bytes of the db; the stream carries these plus the 32-byte sha256 */
  readonly size: number;
  readonly revision: number;
  /** The db in chunks of SNAPSHOT_CHUNK_BYTES, then sha256(db) as the last chunk. */
  chunks(): AsyncGenerator<Buffer>;
  /** Removes the temporary file (also done when chunks() finishes or is abandoned). */
  close(): Promise<void>;
}

export class Maintenance {
  readonly alarms: AlarmStore;
  readonly quota: Quota;
  private gate: Promise<void> | undefined;
  /** snapshot builds and defrags take turns (a defrag closes the environment a snapshot reads) */
  private turn: Promise<void> = Promise.resolve();
  private compactor: AutoCompactor | undefined;
  private disarmTimer: NodeJS.Timeout | undefined;
  private readonly tmpDir: string;
  private snapshotSeq = 0;
  private stopped = false;

  constructor(private readonly d: MaintenanceDeps) {
    this.alarms = new AlarmStore(d.store.bucket(ALARM_BUCKET));
    // The quota counts the backend's pages in use, not its file size: LMDB reuses freed pages, so a
    // compaction alone makes room again (etcd's bbolt file only shrinks by defrag), and a fresh
    // backend (several small sub-databases) starts near etcd's few-page baseline.
    this.quota = new Quota(d.config.quotaBackendBytes, () => d.store.dbSizeInUse());
    this.tmpDir = join(d.config.dataDir, 'member', 'tmp');
    rmSync(this.tmpDir, { recursive: true, force: true }); // leftovers of snapshots cut short
    const active = this.alarms.get();
    if (active.length > 0) {
      d.log.warn({ alarms: active.map(alarmString) }, 'alarms restored from the backend');
    }
  }

  /** Starts the background duties (automatic compaction, automatic NOSPACE disarm). */
  start(): void {
    const c = this.d.config;
    const mode = c.autoCompactionMode ?? 'periodic';
    const retention = parseRetention(mode, c.autoCompactionRetention ?? '0');
    this.compactor = startAutoCompactor(
      { mode, retention },
      {
        rev: () => this.d.store.currentRevision,
        compact: (rev) => this.d.compact(rev),
        log: (level, msg, fields) => this.d.log[level](fields, msg),
      },
    );
    // paused until this member is the leader (setLeader)
    this.compactor?.pause();
    if (this.compactor) {
      this.d.log.info(
        { 'auto-compaction-mode': mode, 'auto-compaction-retention': c.autoCompactionRetention },
        'enabled auto compaction',
      );
    }
    if (c.autoDisarmNoSpace) {
      this.disarmTimer = setInterval(() => void this.maybeAutoDisarm(), AUTO_DISARM_CHECK_MS);
      this.disarmTimer.unref();
    }
  }

  /** Auto compaction runs on the leader only, as in etcd: followers pause, a new leader resumes. */
  setLeader(isLeader: boolean): void {
    if (isLeader) this.compactor?.resume();
    else this.compactor?.pause();
  }

  stop(): void {
    this.stopped = true;
    this.compactor?.stop();
    if (this.disarmTimer) clearInterval(this.disarmTimer);
  }

  // ---- write gate (defragmentation keeps writers out while it copies) ----

  /** Resolves when writes may proceed; undefined when they are not paused. */
  get writeGate(): Promise<void> | undefined {
    return this.gate;
  }

  // ---- apply side (inside the backend transaction) ----

  /** The `alarm` request case of the one apply function. */
  applyAlarm(req: AlarmRequest): AlarmResponse {
    return this.alarms.apply(req, (c) => this.onAlarmChange(c));
  }

  private onAlarmChange(c: AlarmChange): void {
    if (c.raised) {
      this.d.log.warn({ alarm: alarmName(c.raised.alarm), from: idToHex(c.raised.memberID) }, 'alarm raised');
    }
    if (c.cleared) {
      this.d.log.warn(
        { alarm: alarmName(c.cleared.alarm), from: idToHex(c.cleared.memberID) },
        'alarm disarmed',
      );
    }
  }

  /**
   * etcd's capped applier: while any member's NOSPACE alarm is raised, puts, txns that put and lease
   * grants fail with "database space exceeded"; reads, deletes, compaction and the rest go on.
   */
  admit(req: InternalRaftRequest): Error | undefined {
    if (req.put === undefined && req.txn === undefined && req.leaseGrant === undefined) return undefined;
    if (!this.alarms.has(AlarmType.NOSPACE)) return undefined;
    if (req.txn !== undefined && costTxn(req.txn) === 0) return undefined;
    return Errors.noSpace;
  }

  // ---- request side ----

  /**
   * etcd's quota check before a put, txn or lease grant: if the backend plus the request's estimated cost
   * would pass the quota, raise NOSPACE (through the log) and refuse the request.
   */
  checkQuota(req: QuotaRequest): Promise<void> | undefined {
    // undefined when the request fits: the common case costs the caller no promise and no await
    if (this.quota.available(req)) return undefined;
    return this.refuseOverQuota();
  }

  private async refuseOverQuota(): Promise<void> {
    if (!this.alarms.has(AlarmType.NOSPACE)) {
      this.d.log.warn(
        {
          'quota-size-bytes': this.quota.limit,
          'current-db-size-bytes': this.d.store.dbSize(),
        },
        'message exceeded backend quota; raising alarm',
      );
    }
    try {
      await this.alarm({
        action: AlarmRequest_AlarmAction.ACTIVATE,
        memberID: this.d.memberId,
        alarm: AlarmType.NOSPACE,
      });
    } catch {}
    throw Errors.noSpace;
  }

  /** Alarm GET/ACTIVATE/DEACTIVATE, through the log as in etcd. */
  async alarm(req: AlarmRequest): Promise<AlarmResponse> {
    return (await this.d.propose({ alarm: req })) as AlarmResponse;
  }

  /** Status.errors: one "memberID:<id> alarm:<type> " per raised alarm, as etcd prints them. */
  statusErrors(): string[] {
    return this.alarms.get().map(alarmString);
  }

  /** etcd's /health verdict: false while an alarm (not excluded) is raised or a read fails. */
  health(exclude: ReadonlySet<string> = new Set()): { health: boolean; reason?: string } {
    if (this.d.hasLeader && !this.d.hasLeader()) return { health: false, reason: 'RAFT NO LEADER' };
    for (const a of this.alarms.get()) {
      if (!exclude.has(alarmName(a.alarm))) return { health: false, reason: `alarm ${alarmString(a)}` };
    }
    try {
      this.d.store.range(Buffer.from('health'), undefined, { countOnly: true });
    } catch (err) {
      return { health: false, reason: `read failed: ${(err as Error).message}` };
    }
    return { health: true };
  }

  // ---- snapshot ----

  /**
   * Builds a consistent bbolt copy of the backend in a temporary file (holding an LMDB read transaction
   * only while it is built) and returns it as the chunk stream etcd's Maintenance.Snapshot sends.
   */
  async openSnapshot(): Promise<SnapshotStream> {
    mkdirSync(this.tmpDir, { recursive: true });
    const path = join(this.tmpDir, `snapshot-${process.pid}-${++this.snapshotSeq}.db`);
    const members = this.d.members();
    const info = await this.exclusive(() =>
      writeStoreSnapshot(this.d.store, path, {
        replace: {
          members: members.map((m) => [
            encodeMemberKey(m.ID),
            encodeMemberValue({
              id: m.ID,
              name: m.name,
              peerURLs: m.peerURLs,
              clientURLs: m.clientURLs,
              isLearner: m.isLearner,
            }),
          ]),
          members_removed: [],
          cluster: [[CLUSTER_VERSION_KEY, SNAPSHOT_CLUSTER_VERSION]],
        },
      }),
    );
    this.d.log.info(
      { 'total-bytes': info.size, revision: info.revision, 'consistent-index': info.consistentIndex },
      'sending database snapshot to client',
    );
    let removed = false;
    const close = async () => {
      if (removed) return;
      removed = true;
      rmSync(path, { force: true });
    };
    async function* chunks(): AsyncGenerator<Buffer> {
      const { createHash } = await import('node:crypto');
      const h = createHash('sha256');
      const fh = await openFile(path, 'r');
      try {
        let off = 0;
        while (off < info.size) {
          const n = Math.min(SNAPSHOT_CHUNK_BYTES, info.size - off);
          const buf = Buffer.allocUnsafe(n);
          let got = 0;
          while (got < n) {
            const { bytesRead } = await fh.read(buf, got, n - got, off + got);
            if (bytesRead === 0) throw new Error('snapshot: temporary file shrank while being sent');
            got += bytesRead;
          }
          off += n;
          h.update(buf);
          yield buf;
        }
        yield h.digest();
      } finally {
        await fh.close();
        await close();
      }
    }
    return { size: info.size, revision: info.revision, chunks, close };
  }

  // ---- defragmentation ----

  /**
   * Rewrites the backend compactly and switches to it. Reads are served throughout; writes wait (they are
   * queued, not refused) from the start of the copy to the switch. Progress goes to the server log.
   */
  async defragment(): Promise<void> {
    await this.exclusive(async () => {
      const log = this.d.log;
      log.info({}, 'starting defragment');
      let open!: () => void;
      this.gate = new Promise<void>((resolve) => {
        open = resolve;
      });
      try {
        // everything proposed before the gate closed is applied once this no-op goes through
        await this.d.proposeNow({
          alarm: { action: AlarmRequest_AlarmAction.GET, memberID: 0n, alarm: AlarmType.NONE },
        });
        await this.d.store.compactionsDone();
        // writes from this member wait at the gate; entries applied from a leader are caught by
        // defragStore (the copy is discarded), and the copy is tried again
        for (let attempt = 1; ; attempt++) {
          try {
            await defragStore(this.d.store, { progress: (msg, fields) => log.info(fields, msg) });
            break;
          } catch (err) {
            if (!(err instanceof StoreChangedError) || attempt >= 3) throw err;
            log.info({ attempt }, 'defrag: the store changed during the copy; copying again');
          }
        }
      } catch (err) {
        log.warn({ error: String((err as Error).message ?? err) }, 'failed to defragment');
        throw err;
      } finally {
        this.gate = undefined;
        open();
      }
      log.info({ 'current-db-size-bytes': this.d.store.dbSize() }, 'finished defragment');
    });
    if (this.d.config.autoDisarmNoSpace) await this.maybeAutoDisarm();
  }

  /** --experimental-auto-disarm-nospace: clear this member's NOSPACE once the backend is back under quota. */
  async maybeAutoDisarm(): Promise<void> {
    if (this.stopped || !this.d.config.autoDisarmNoSpace) return;
    const mine = this.alarms.get(AlarmType.NOSPACE).filter((a) => a.memberID === this.d.memberId);
    if (mine.length === 0) return;
    const size = this.d.store.dbSizeInUse();
    if (size >= this.quota.limit * AUTO_DISARM_HEADROOM) return;
    this.d.log.warn(
      { 'current-db-size-bytes': size, 'quota-size-bytes': this.quota.limit },
      'backend is back under the quota; disarming NOSPACE automatically (--experimental-auto-disarm-nospace)',
    );
    try {
      await this.alarm({
        action: AlarmRequest_AlarmAction.DEACTIVATE,
        memberID: this.d.memberId,
        alarm: AlarmType.NOSPACE,
      });
    } catch {}
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.turn.then(fn);
    this.turn = run.then(
      () => {},
      () => {},
    );
    return run;
  }
}

/** Lists stale temporary snapshot files (for tests). */
export function tmpFiles(dataDir: string): string[] {
  try {
    return readdirSync(join(dataDir, 'member', 'tmp'));
  } catch {
    return [];
  }
}
