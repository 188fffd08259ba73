// Whether a peer is reachable, since when, and the log lines that say so (etcd's peerStatus, plus
// a periodic reminder while the peer stays unreachable, like etcd's prober warnings).
import { idHex, UNREACHABLE_LOG_INTERVAL_MS } from './constants.js';
import type { TransportLogger } from './types.js';

export class PeerStatus {
  active = false;
  /** ms since the epoch when the peer became active; 0 while inactive. */
  since = 0;
  private lastWarn = 0;

  constructor(
    private readonly localId: bigint,
    readonly peerId: bigint,
    private readonly logger: TransportLogger,
  ) {}

  activate(): void {
    if (this.active) return;
    this.active = true;
    this.since = Date.now();
    this.lastWarn = 0;
    this.logger.info(
      { 'local-member-id': idHex(this.localId), 'remote-peer-id': idHex(this.peerId) },
      'peer became active',
    );
  }

  /** source: "stream Message", "pipeline", ...; action: "dial", "write", "read", "post". */
  deactivate(source: string, action: string, reason: string, url?: string): void {
    const text = `failed to ${action} ${idHex(this.peerId)} on ${source} (${reason})`;
    const fields = {
      'local-member-id': idHex(this.localId),
      'remote-peer-id': idHex(this.peerId),
      ...(url ? { 'remote-peer-url': url } : {}),
      error: text,
    };
    const now = Date.now();
    if (this.active) {
      this.active = false;
      this.since = 0;
      this.lastWarn = now;
      this.logger.warn(fields, 'peer became inactive (message send to peer failed)');
      return;
    }
    if (now - this.lastWarn >= UNREACHABLE_LOG_INTERVAL_MS) {
      this.lastWarn = now;
      this.logger.warn(fields, 'prober detected unhealthy status');
    } else {
      this.logger.debug(fields, 'peer deactivated again');
    }
  }
}

/** Go-like text for a Node socket error: "dial tcp 127.0.0.1:2380: connect: connection refused". */
export function netErrorText(err: unknown): string {
  const e = err as NodeJS.ErrnoException & { address?: string; port?: number; hostname?: string };
  const addr = e.address !== undefined ? `${e.address}${e.port !== undefined ? `:${e.port}` : ''}` : '';
  switch (e.code) {
    case 'ECONNREFUSED':
      return `dial tcp ${addr}: connect: connection refused`;
    case 'EHOSTUNREACH':
      return `dial tcp ${addr}: connect: no route to host`;
    case 'ENETUNREACH':
      return `dial tcp ${addr}: connect: network is unreachable`;
    case 'ECONNRESET':
      return 'read: connection reset by peer';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `dial tcp: lookup ${e.hostname ?? ''}: no such host`;
    default:
      return e.message ?? String(err);
  }
}
