// The lessor: leases, their TTLs and the keys attached to them.
//
// Grant, revoke, attach and checkpoint are applied from the log (deterministic on every member);
// renewals and expiry are the primary's business (the raft leader): only it runs expiry clocks,
// and an expired lease is revoked by proposing a revoke through the normal write path.
// Remaining TTLs are checkpointed into the log and the backend, so a restart (or a new leader)
// continues a lease where it was instead of granting it a fresh full TTL.

import { LeaseExistsError, LeaseNotFoundError, LeaseTTLTooLargeError } from './errors.js';

/** etcd's ceiling on a lease TTL, in seconds. */
export const MAX_LEASE_TTL = 9_000_000_000;

/** What the backend keeps for one lease (etcd's leasepb.Lease). */
export interface LeaseRecord {
  id: bigint;
  /** granted TTL in seconds */
  ttl: number;
  /** seconds left at the last checkpoint; 0 when never checkpointed */
  remainingTtl: number;
}

/** Durable lease storage, written inside the apply transaction. */
export interface LeaseBackend {
  save(rec: LeaseRecord): void;
  remove(id: bigint): void;
  loadAll(): LeaseRecord[];
}

export interface Lease {
  readonly id: bigint;
  /** granted TTL (seconds), raised to the minimum */
  ttl: number;
  remainingTtl: number;
  /** monotonic ms when the lease expires; Infinity while this member is not primary */
  expiresAt: number;
  /** attached keys, as latin1 strings (byte-exact, byte-ordered) */
  readonly keys: Set<string>;
}

export interface LessorOptions {
  /** shortest TTL granted, seconds (etcd: 1.5 election timeouts, rounded up) */
  minTtl: number;
  /** monotonic milliseconds */
  now?: () => number;
}

export class Lessor {
  private readonly leases = new Map<bigint, Lease>();
  /** key (latin1) -> the lease it is attached to */
  private readonly keyLease = new Map<string, bigint>();
  private primary = false;
  private readonly now: () => number;
  readonly minTtl: number;

  constructor(
    private readonly backend: LeaseBackend,
    opts: LessorOptions,
  ) {
    this.minTtl = opts.minTtl;
    this.now = opts.now ?? (() => performance.now());
    this.load();
  }

  private load(): void {
    for (const rec of this.backend.loadAll()) {
      this.leases.set(rec.id, {
        id: rec.id,
        ttl: Math.max(rec.ttl, this.minTtl),
        remainingTtl: rec.remainingTtl,
        expiresAt: Number.POSITIVE_INFINITY,
        keys: new Set(),
      });
    }
  }

  /**
   * The backend was replaced (a snapshot from the leader): forget every lease and key attachment and
   * load the leases anew; the caller re-attaches keys (setKeyLease). A primary restarts their clocks.
   */
  reload(): void {
    this.leases.clear();
    this.keyLease.clear();
    this.load();
    if (this.primary) this.promote();
  }

  get isPrimary(): boolean {
    return this.primary;
  }

  /** This member became leader: start every lease's clock from its remaining (or full) TTL. */
  promote(extendMs = 0): void {
    this.primary = true;
    const now = this.now();
    for (const l of this.leases.values()) l.expiresAt = now + extendMs + this.secondsLeft(l) * 1000;
  }

  /** This member lost leadership: clocks stop; the next leader restarts them. */
  demote(): void {
    this.primary = false;
    for (const l of this.leases.values()) l.expiresAt = Number.POSITIVE_INFINITY;
  }

  private secondsLeft(l: Lease): number {
    return l.remainingTtl > 0 ? l.remainingTtl : l.ttl;
  }

  // ---- applied from the log ----

  grant(id: bigint, ttl: number): Lease {
    if (id === 0n) throw new LeaseNotFoundError(id);
    if (ttl > MAX_LEASE_TTL) throw new LeaseTTLTooLargeError();
    if (this.leases.has(id)) throw new LeaseExistsError(id);
    const l: Lease = {
      id,
      ttl: Math.max(ttl, this.minTtl),
      remainingTtl: 0,
      expiresAt: Number.POSITIVE_INFINITY,
      keys: new Set(),
    };
    if (this.primary) l.expiresAt = this.now() + l.ttl * 1000;
    this.leases.set(id, l);
    this.backend.save({ id, ttl: l.ttl, remainingTtl: 0 });
    return l;
  }

  /** Removes the lease and returns its keys (sorted) for the caller to delete in the same revision. */
  revoke(id: bigint): string[] {
    const l = this.leases.get(id);
    if (l === undefined) throw new LeaseNotFoundError(id);
    this.leases.delete(id);
    this.backend.remove(id);
    for (const k of l.keys) this.keyLease.delete(k);
    return [...l.keys].sort();
  }

  checkpoint(id: bigint, remainingTtl: number): void {
    const l = this.leases.get(id);
    if (l === undefined) return; // revoked since the checkpoint was proposed
    l.remainingTtl = remainingTtl;
    this.backend.save({ id, ttl: l.ttl, remainingTtl });
  }

  /**
   * Records that `key` now carries lease `id` (0n: no lease), moving it off any lease it had. Fed from
   * the store's write events, so it follows puts, overwrites and deletes alike.
   */
  setKeyLease(key: string, id: bigint): void {
    const old = this.keyLease.get(key);
    if (old === id) return;
    if (old !== undefined) {
      this.leases.get(old)?.keys.delete(key);
      this.keyLease.delete(key);
    }
    if (id === 0n) return;
    const l = this.leases.get(id);
    if (l === undefined) return; // the lease was revoked in the meantime: nothing to attach to
    l.keys.add(key);
    this.keyLease.set(key, id);
  }

  // ---- primary only ----

  /** Extends a lease to its full TTL; returns the TTL. */
  renew(id: bigint): number {
    const l = this.leases.get(id);
    if (l === undefined) throw new LeaseNotFoundError(id);
    // the next checkpoint persists the fresh remaining TTL (see checkpointCandidates)
    if (this.primary) l.expiresAt = this.now() + l.ttl * 1000;
    return l.ttl;
  }

  /** Leases whose time is up, oldest first, at most `limit` (the caller proposes their revokes). */
  expired(limit = 1000): bigint[] {
    if (!this.primary) return [];
    const now = this.now();
    const out: Lease[] = [];
    for (const l of this.leases.values()) if (l.expiresAt <= now) out.push(l);
    out.sort((a, b) => a.expiresAt - b.expiresAt);
    return out.slice(0, limit).map((l) => l.id);
  }

  /** Remaining TTLs worth persisting: leases whose clock moved (ran down or was renewed) since the last checkpoint. */
  checkpointCandidates(): { id: bigint; remainingTtl: number }[] {
    if (!this.primary) return [];
    const out: { id: bigint; remainingTtl: number }[] = [];
    for (const l of this.leases.values()) {
      const left = this.remainingSeconds(l);
      if (left > 0 && left !== (l.remainingTtl > 0 ? l.remainingTtl : l.ttl))
        out.push({ id: l.id, remainingTtl: left });
    }
    return out;
  }

  // ---- reads ----

  lookup(id: bigint): Lease | undefined {
    return this.leases.get(id);
  }

  /** Whole seconds left, rounded up (what a checkpoint records). */
  remainingSeconds(l: Lease): number {
    return Math.ceil(this.remainingMs(l) / 1000);
  }

  remainingMs(l: Lease): number {
    if (l.expiresAt === Number.POSITIVE_INFINITY) return this.secondsLeft(l) * 1000;
    return Math.max(0, l.expiresAt - this.now());
  }

  ids(): bigint[] {
    return [...this.leases.keys()];
  }

  get size(): number {
    return this.leases.size;
  }
}
