// The interfaces between the transport and the server, and the context its parts share.
import type { Message } from '../gen/raftpb/raft.js';
import type { PeerDialer } from './dialer.js';
import type { LocalIdentity } from './headers.js';

/** Implemented by the server: where received messages go and where send failures are reported. */
export interface RaftHandler {
  /** Delivers an incoming raft message (called in stream order; keep it quick, queue if needed). */
  process(msg: Message): void | Promise<void>;
  isIdRemoved(id: bigint): boolean;
  reportUnreachable(id: bigint): void;
  reportSnapshot(id: bigint, ok: boolean): void;
  /**
   * A MsgSnap arrived with its backend file: save `db` (read it to the end). The transport then
   * calls process(msg), as etcd does after SaveDBFrom. Without this method the db is discarded.
   */
  receiveSnapshot?(msg: Message, db: NodeJS.ReadableStream): Promise<void>;
  /** A peer told us this member was removed from the cluster (etcd's ErrorC): the server stops. */
  reportCriticalError?(err: Error): void;
}

export interface TransportLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  debug(obj: object, msg?: string): void;
}

export const silentLogger: TransportLogger = {
  info() {},
  warn() {},
  error() {},
  debug() {},
};

/** What every peer, stream, pipeline and handler of one transport shares. */
export interface TransportContext {
  readonly local: LocalIdentity; // clusterId is updated in place by setClusterId
  readonly handler: RaftHandler;
  readonly logger: TransportLogger;
  readonly dialTimeoutMs: number;
  readonly dialer: PeerDialer;
  stopped: boolean;
}
