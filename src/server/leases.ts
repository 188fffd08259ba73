// The server's side of leases: the Lease RPCs, and the two loops that keep lease state moving.
// Grants and revokes go through the log like any write. Lease clocks run on the leader only (as in
// etcd), so a follower forwards keepalives and TTL reads to the leader over the peer port
// (/leases). The leader revokes expired leases through the log, and checkpoints remaining TTLs
// through it so that a restart or a new leader does not hand every lease a fresh TTL.

import type { InternalRaftRequest } from '../gen/etcdserverpb/raft_internal.js';
import type {
  LeaseGrantRequest,
  LeaseGrantResponse,
  LeaseLeasesResponse,
  LeaseRevokeRequest,
  LeaseRevokeResponse,
  LeaseTimeToLiveRequest,
  LeaseTimeToLiveResponse,
  ResponseHeader,
} from '../gen/etcdserverpb/rpc.js';
import { LeaseNotFoundError, LeaseTTLTooLargeError } from '../lease/errors.js';
import { type Lessor, MAX_LEASE_TTL } from '../lease/lessor.js';
import { leaseTimeToLiveHttp, type PeerDialer, renewLeaseHttp } from '../transport/index.js';
import { Errors } from './errors.js';
import type { Logger } from './logger.js';

/** How often remaining TTLs are checkpointed through the log. */
const CHECKPOINT_INTERVAL_MS = 5000;
/** How often the leader looks for expired leases. */
const EXPIRY_CHECK_MS = 250;

export interface LeasesDeps {
  lessor: Lessor;
  log: Logger;
  propose(fields: Partial<InternalRaftRequest>): Promise<unknown>;
  /** undefined when the grant fits the quota; otherwise the refusal (see Maintenance.checkQuota) */
  checkQuota(req: { leaseGrant: LeaseGrantRequest }): Promise<void> | undefined;
  isLeader(): boolean;
  /** The leader's first peer URL; throws "no leader" when there is none. */
  leaderPeerUrl(): string;
  /** Dials the leader's (maybe https) peer URL; default: plain defaults. */
  dialer?: PeerDialer;
  header(): ResponseHeader;
  newId(): bigint;
  timeoutMs(): number;
}

export class Leases {
  /** leases whose expiry revoke is in flight, so the expiry loop proposes each once */
  private readonly revoking = new Set<bigint>();
  private readonly timers: NodeJS.Timeout[] = [];
  private stopped = false;

  constructor(private readonly d: LeasesDeps) {}

  start(): void {
    this.timers.push(setInterval(() => this.revokeExpired(), EXPIRY_CHECK_MS));
    this.timers.push(setInterval(() => this.checkpoint(), CHECKPOINT_INTERVAL_MS));
    for (const t of this.timers) t.unref();
  }

  stop(): void {
    this.stopped = true;
    for (const t of this.timers) clearInterval(t);
  }

  async grant(req: LeaseGrantRequest): Promise<LeaseGrantResponse> {
    if (req.TTL > MAX_LEASE_TTL) throw new LeaseTTLTooLargeError();
    await this.d.checkQuota({ leaseGrant: req });
    const ID = req.ID !== 0n ? req.ID : this.d.newId() & 0x7fffffffffffffffn;
    return (await this.d.propose({ leaseGrant: { ID, TTL: req.TTL } })) as LeaseGrantResponse;
  }

  revoke(req: LeaseRevokeRequest): Promise<LeaseRevokeResponse> {
    return this.d.propose({ leaseRevoke: req }) as Promise<LeaseRevokeResponse>;
  }

  /** A keepalive: resets the lease's clock. Resolves to the TTL, 0 if the lease is gone. */
  async renew(id: bigint): Promise<number> {
    if (this.d.isLeader()) return this.renewLocal(id);
    const leaderUrl = this.d.leaderPeerUrl();
    try {
      return await renewLeaseHttp(leaderUrl, id, AbortSignal.timeout(this.d.timeoutMs()), this.d.dialer);
    } catch (err) {
      if (/lease not found/.test(String((err as Error).message))) return 0;
      throw Errors.timeout;
    }
  }

  /** A keepalive on the leader (also what a follower's forwarded /leases request runs). */
  renewLocal(id: bigint): number {
    try {
      return this.d.lessor.renew(id);
    } catch (err) {
      if (err instanceof LeaseNotFoundError) return 0;
      throw err;
    }
  }

  /** Remaining TTLs live on the leader: followers ask it. */
  async timeToLive(req: LeaseTimeToLiveRequest): Promise<LeaseTimeToLiveResponse> {
    if (this.d.isLeader()) return this.timeToLiveLocal(req);
    try {
      const r = await leaseTimeToLiveHttp(
        this.d.leaderPeerUrl(),
        req.ID,
        req.keys,
        AbortSignal.timeout(this.d.timeoutMs()),
        this.d.dialer,
      );
      return { ...r, header: this.d.header() };
    } catch (err) {
      if (/lease not found|404/.test(String((err as Error).message))) {
        return { header: this.d.header(), ID: req.ID, TTL: -1, grantedTTL: 0, keys: [] };
      }
      throw Errors.timeout;
    }
  }

  timeToLiveLocal(req: LeaseTimeToLiveRequest): LeaseTimeToLiveResponse {
    const header = this.d.header();
    const l = this.d.lessor.lookup(req.ID);
    if (l === undefined) return { header, ID: req.ID, TTL: -1, grantedTTL: 0, keys: [] };
    // etcd truncates: a 10 s lease shows 9 s remaining a moment after its grant
    const ttl = Math.floor(this.d.lessor.remainingMs(l) / 1000);
    const keys = req.keys ? [...l.keys].sort().map((k) => Buffer.from(k, 'latin1')) : [];
    return { header, ID: l.id, TTL: ttl, grantedTTL: l.ttl, keys };
  }

  list(): LeaseLeasesResponse {
    return { header: this.d.header(), leases: this.d.lessor.ids().map((ID) => ({ ID })) };
  }

  /** Expiry goes through the same write path as a client's revoke. */
  private revokeExpired(): void {
    if (this.stopped) return;
    for (const id of this.d.lessor.expired()) {
      if (this.revoking.has(id)) continue;
      this.revoking.add(id);
      this.d
        .propose({ leaseRevoke: { ID: id } })
        .catch((err) => {
          if (!(err instanceof LeaseNotFoundError)) {
            this.d.log.warn(
              { 'lease-id': id.toString(16), error: String(err) },
              'failed to revoke an expired lease',
            );
          }
        })
        .finally(() => this.revoking.delete(id));
    }
  }

  /** Persists remaining TTLs through the log, so a restart does not hand every lease a fresh TTL. */
  private checkpoint(): void {
    if (this.stopped) return;
    const checkpoints = this.d.lessor
      .checkpointCandidates()
      .map((c) => ({ ID: c.id, remainingTTL: c.remainingTtl }));
    if (checkpoints.length === 0) return;
    this.d.propose({ leaseCheckpoint: { checkpoints } }).catch(() => {});
  }
}
