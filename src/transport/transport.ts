// PeerTransport: etcd 3.4's peer-to-peer protocol (rafthttp) for one member. The server adds and
// removes peers as membership changes, hands it raft messages to send, and mounts handler() on
// its peer listener; received messages go to the RaftHandler.
import { type Message, MessageType } from '../gen/raftpb/raft.js';
import {
  DEFAULT_DIAL_TIMEOUT_MS,
  DEFAULT_MIN_CLUSTER_VERSION,
  DEFAULT_SERVER_VERSION,
  idHex,
  LINK_HEARTBEAT_MS,
} from './constants.js';
import { PeerDialer } from './dialer.js';
import { createRaftHandler, type PeerRequestHandler } from './handler.js';
import { Peer } from './peer.js';
import { type RaftHandler, silentLogger, type TransportContext, type TransportLogger } from './types.js';

export interface PeerTransportOptions {
  localId: bigint;
  clusterId: bigint;
  handler: RaftHandler;
  logger?: TransportLogger;
  /** Connect timeout for every dial (etcd's --dial-timeout for peers). Default 1000 ms. */
  dialTimeoutMs?: number;
  /** X-Server-Version we announce. Default 3.4.23. */
  serverVersion?: string;
  /** X-Min-Cluster-Version we announce. Default 3.0.0. */
  clusterVersion?: string;
  /** Our advertised peer URLs, sent as X-PeerURLs so peers that do not know us yet can answer. */
  peerUrls?: string[];
  /** How peers are dialed (https peers need the peer TLS settings); default: plain defaults. */
  dialer?: PeerDialer;
}

export class PeerTransport {
  private readonly ctx: TransportContext;
  private readonly peers = new Map<bigint, Peer>();
  private readonly remotes = new Map<bigint, Peer>();
  private readonly ticker: NodeJS.Timeout;
  private readonly raftHandler: PeerRequestHandler;

  constructor(opts: PeerTransportOptions) {
    this.ctx = {
      local: {
        localId: opts.localId,
        clusterId: opts.clusterId,
        serverVersion: opts.serverVersion ?? DEFAULT_SERVER_VERSION,
        minClusterVersion: opts.clusterVersion ?? DEFAULT_MIN_CLUSTER_VERSION,
        peerUrls: opts.peerUrls ?? [],
      },
      handler: opts.handler,
      logger: opts.logger ?? silentLogger,
      dialTimeoutMs: opts.dialTimeoutMs ?? DEFAULT_DIAL_TIMEOUT_MS,
      dialer: opts.dialer ?? new PeerDialer(),
      stopped: false,
    };
    this.raftHandler = createRaftHandler(this.ctx, {
      get: (id) => this.peers.get(id),
      addRemote: (id, urls) => this.addRemote(id, urls),
    });
    this.ticker = setInterval(() => {
      for (const p of this.peers.values()) p.heartbeat();
    }, LINK_HEARTBEAT_MS);
    this.ticker.unref();
  }

  /** Serves the /raft paths; returns false for any other path (the caller serves those). */
  handler(): PeerRequestHandler {
    return this.raftHandler;
  }

  addPeer(id: bigint, urls: string[]): void {
    if (this.ctx.stopped) throw new Error('transport stopped');
    if (this.peers.has(id)) return;
    const remote = this.remotes.get(id);
    if (remote) {
      remote.stop();
      this.remotes.delete(id);
    }
    this.peers.set(id, new Peer(this.ctx, id, urls));
    this.ctx.logger.info(
      {
        'local-member-id': idHex(this.ctx.local.localId),
        'remote-peer-id': idHex(id),
        'remote-peer-urls': urls,
      },
      'added remote peer',
    );
  }

  /** A member known only from its requests (it joined and we have not applied that yet). */
  addRemote(id: bigint, urls: string[]): void {
    if (this.ctx.stopped || this.peers.has(id) || this.remotes.has(id) || id === this.ctx.local.localId)
      return;
    try {
      this.remotes.set(id, new Peer(this.ctx, id, urls, true));
    } catch {
      return;
    }
    this.ctx.logger.info(
      {
        'local-member-id': idHex(this.ctx.local.localId),
        'remote-peer-id': idHex(id),
        'remote-peer-urls': urls,
      },
      'added new remote peer',
    );
  }

  removePeer(id: bigint): void {
    const p = this.peers.get(id);
    if (!p) return;
    p.stop();
    this.peers.delete(id);
    this.ctx.logger.info(
      { 'local-member-id': idHex(this.ctx.local.localId), 'remote-peer-id': idHex(id) },
      'removed remote peer',
    );
  }

  updatePeer(id: bigint, urls: string[]): void {
    const p = this.peers.get(id);
    if (!p) return;
    p.update(urls);
    this.ctx.logger.info(
      {
        'local-member-id': idHex(this.ctx.local.localId),
        'remote-peer-id': idHex(id),
        'remote-peer-urls': urls,
      },
      'updated remote peer',
    );
  }

  /** Never blocks. Messages to ourselves or to unknown members are ignored, as in etcd. */
  send(msgs: readonly Message[]): void {
    // one write per stream for the whole batch, now rather than at the end of the event-loop turn
    const touched: Peer[] = [];
    for (const m of msgs) {
      if (m.to === 0n) continue;
      const p = this.peers.get(m.to) ?? this.remotes.get(m.to);
      if (p) {
        p.send(m, true);
        if (!touched.includes(p)) touched.push(p);
      } else if (m.type !== MessageType.MsgHeartbeat) {
        this.ctx.logger.debug(
          { 'message-type': MessageType[m.type], 'unknown-target-peer-id': idHex(m.to) },
          'ignored message send request; unknown remote peer target',
        );
      }
    }
    for (const p of touched) p.flushStreams();
  }

  /** Sends a MsgSnap followed by the backend (db, `size` bytes) on POST /raft/snapshot. */
  sendSnapshot(msg: Message, db: NodeJS.ReadableStream, size: number): void {
    const p = this.peers.get(msg.to);
    if (!p) {
      (db as NodeJS.ReadableStream & { destroy?: () => void }).destroy?.();
      this.ctx.handler.reportSnapshot(msg.to, false);
      return;
    }
    p.sendSnapshot(msg, db, size);
  }

  /** When the peer's connection became active (ms since the epoch); undefined while inactive. */
  activeSince(id: bigint): number | undefined {
    return this.peers.get(id)?.activeSince();
  }

  /** Whether the peer has dialed both our streams, so sends to it are streamed (in order). */
  streamsWorking(id: bigint): boolean {
    return this.peers.get(id)?.streamsWorking() === true;
  }

  /** How many peers are active (etcd's ActivePeers). */
  activePeers(): number {
    let n = 0;
    for (const p of this.peers.values()) if (p.status.active) n++;
    return n;
  }

  setClusterId(id: bigint): void {
    (this.ctx.local as { clusterId: bigint }).clusterId = id;
  }

  /** etcd's CutPeer/MendPeer: stop exchanging messages with a peer without disconnecting. */
  pausePeer(id: bigint, paused: boolean): void {
    this.peers.get(id)?.setPaused(paused);
    this.remotes.get(id)?.setPaused(paused);
  }

  async stop(): Promise<void> {
    if (this.ctx.stopped) return;
    this.ctx.stopped = true;
    clearInterval(this.ticker);
    for (const p of this.peers.values()) p.stop();
    for (const p of this.remotes.values()) p.stop();
    this.peers.clear();
    this.remotes.clear();
    this.ctx.dialer.destroy();
  }
}
