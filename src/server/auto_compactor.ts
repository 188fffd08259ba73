// Automatic compaction with etcd 3.4's schedule (etcdserver/api/v3compactor):
//
// periodic, retention P: every P/10 (at most 6 min) record the current revision, keeping the last
//   P/(P/10)+1 of them, so the oldest is the revision of about P ago. Once P has passed since the last
//   success (then every min(P, 1h)), compact at that oldest revision. Failures retry after P/10.
// revision, retention N: every 5 minutes compact at (current revision - N), unless that is <= 0 or the
//   revision compacted last time.
//
// Compactions are proposed like a client's `etcdctl compact`: through the write path, so every member
// compacts at the same point of the log. "Already compacted" counts as success.
import { CompactedError } from '../mvcc/errors.js';
import { Code, EtcdError } from './errors.js';

export type CompactionMode = 'periodic' | 'revision';

export interface AutoCompactionConfig {
  mode: CompactionMode;
  /** periodic: milliseconds; revision: a count of revisions. 0 disables. */
  retention: number;
}

export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): { cancel(): void };
}

export const realClock: Clock = {
  now: () => performance.now(),
  setTimeout(fn, ms) {
    const t = setTimeout(fn, ms);
    t.unref();
    return { cancel: () => clearTimeout(t) };
  },
};

export interface CompactorDeps {
  /** the store's current revision */
  rev(): number;
  /** proposes a compaction at rev through the write path */
  compact(rev: number): Promise<unknown>;
  log(level: 'info' | 'warn', msg: string, fields: Record<string, unknown>): void;
  clock?: Clock;
  /** revision mode's check interval (etcd: 5 minutes); for tests */
  revisionIntervalMs?: number;
}

const HOUR = 3_600_000;
const RETRY_DIVISOR = 10;
export const REVISION_INTERVAL_MS = 5 * 60_000;

const GO_UNITS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3,
  μs: 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: HOUR,
};

/** Parses a Go duration ("1h30m", "1.5h", "500ms", "0") into milliseconds. */
export function parseGoDuration(text: string): number {
  const s = text.trim();
  if (s === '0') return 0;
  const re = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/y;
  let pos = 0;
  let neg = false;
  if (s[0] === '-' || s[0] === '+') {
    neg = s[0] === '-';
    pos = 1;
  }
  let total = 0;
  let parts = 0;
  while (pos < s.length) {
    re.lastIndex = pos;
    const m = re.exec(s);
    if (!m) throw new Error(`time: invalid duration "${text}"`);
    total += Number(m[1]) * GO_UNITS[m[2]!]!;
    pos = re.lastIndex;
    parts++;
  }
  if (parts === 0) throw new Error(`time: invalid duration "${text}"`);
  return neg ? -total : total;
}

/**
 * etcd's parseCompactionRetention: a plain non-negative integer is a revision count (revision mode) or
 * hours (periodic mode); anything else must be a Go duration.
 */
export function parseRetention(mode: CompactionMode, text: string): number {
  const t = text === '' ? '0' : text;
  if (/^\+?\d+$/.test(t)) {
    const n = Number(t);
    return mode === 'revision' ? n : n * HOUR;
  }
  try {
    return parseGoDuration(t);
  } catch (err) {
    throw new Error(`error parsing CompactionRetention: ${(err as Error).message}`);
  }
}

function alreadyCompacted(err: unknown): boolean {
  if (err instanceof CompactedError) return true;
  return (
    err instanceof EtcdError &&
    err.code === Code.OUT_OF_RANGE &&
    err.message === 'etcdserver: mvcc: required revision has been compacted'
  );
}

export interface AutoCompactor {
  stop(): void;
  pause(): void;
  resume(): void;
}

export function startAutoCompactor(
  cfg: AutoCompactionConfig,
  deps: CompactorDeps,
): AutoCompactor | undefined {
  if (cfg.retention <= 0) return undefined;
  return cfg.mode === 'periodic'
    ? new Periodic(cfg.retention, deps)
    : new RevisionCompactor(cfg.retention, deps);
}

/** What both schedules share: a pending timer, and the stop / leader-only pause switches. */
abstract class CompactorBase implements AutoCompactor {
  protected timer?: { cancel(): void };
  protected paused = false;
  protected stopped = false;

  stop(): void {
    this.stopped = true;
    this.timer?.cancel();
  }
  pause(): void {
    this.paused = true;
  }
  resume(): void {
    this.paused = false;
  }
}

class Periodic extends CompactorBase {
  private readonly clock: Clock;
  private readonly revs: number[] = [];
  private lastSuccess: number;
  private baseInterval: number;
  private readonly retryInterval: number;
  private readonly compactInterval: number;
  private readonly retentions: number;

  constructor(
    private readonly period: number,
    private readonly deps: CompactorDeps,
  ) {
    super();
    this.clock = deps.clock ?? realClock;
    this.compactInterval = Math.min(period, HOUR);
    this.retryInterval = this.compactInterval / RETRY_DIVISOR;
    this.retentions = Math.floor(period / this.retryInterval) + 1;
    this.lastSuccess = this.clock.now();
    this.baseInterval = period;
    this.loop();
  }

  private loop(): void {
    if (this.stopped) return;
    this.revs.push(this.deps.rev());
    if (this.revs.length > this.retentions) this.revs.shift(); // revs[0] is the revision of `period` ago
    this.timer = this.clock.setTimeout(() => void this.tick(), this.retryInterval);
  }

  private async tick(): Promise<void> {
    if (this.stopped) return;
    if (this.paused || this.clock.now() - this.lastSuccess < this.baseInterval) return this.loop();
    if (this.baseInterval === this.period) this.baseInterval = this.compactInterval;
    const rev = this.revs[0]!;
    const fields = { revision: rev, 'compact-period': `${this.period}ms` };
    this.deps.log('info', 'starting auto periodic compaction', fields);
    const start = this.clock.now();
    try {
      await this.deps.compact(rev);
      this.deps.log('info', 'completed auto periodic compaction', {
        ...fields,
        took: `${Math.round(this.clock.now() - start)}ms`,
      });
      this.lastSuccess = this.clock.now();
    } catch (err) {
      if (alreadyCompacted(err)) this.lastSuccess = this.clock.now();
      else {
        this.deps.log('warn', 'failed auto periodic compaction', {
          ...fields,
          'retry-interval': `${this.retryInterval}ms`,
          error: String((err as Error).message ?? err),
        });
      }
    }
    this.loop();
  }
}

class RevisionCompactor extends CompactorBase {
  private readonly clock: Clock;
  private prev = 0;
  private readonly interval: number;

  constructor(
    private readonly retention: number,
    private readonly deps: CompactorDeps,
  ) {
    super();
    this.clock = deps.clock ?? realClock;
    this.interval = deps.revisionIntervalMs ?? REVISION_INTERVAL_MS;
    this.schedule();
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = this.clock.setTimeout(() => void this.tick(), this.interval);
  }

  private async tick(): Promise<void> {
    if (this.stopped) return;
    const rev = this.deps.rev() - this.retention;
    if (this.paused || rev <= 0 || rev === this.prev) return this.schedule();
    const fields = { revision: rev, 'revision-compaction-retention': this.retention };
    this.deps.log('info', 'starting auto revision compaction', fields);
    const start = this.clock.now();
    try {
      await this.deps.compact(rev);
      this.prev = rev;
      this.deps.log('info', 'completed auto revision compaction', {
        ...fields,
        took: `${Math.round(this.clock.now() - start)}ms`,
      });
    } catch (err) {
      if (alreadyCompacted(err)) this.prev = rev;
      else {
        this.deps.log('warn', 'failed auto revision compaction', {
          ...fields,
          'retry-interval': `${this.interval}ms`,
          error: String((err as Error).message ?? err),
        });
      }
    }
    this.schedule();
  }
}
