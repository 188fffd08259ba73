// The Watch service: one bidi stream per Watch call, carrying create/cancel/progress requests in and
// watch responses out (etcd's v3rpc/watch.go). The watching itself lives in src/mvcc/watchable_store;
// this file translates requests, builds responses, fragments large ones, and ties the stream's flow
// control (send() false / drain) to the watchable store's.
import { BinaryWriter } from '@bufbuild/protobuf/wire';
import {
  ResponseHeader,
  WatchCreateRequest_FilterType,
  WatchDefinition,
  type WatchRequest,
  WatchResponse,
} from '../gen/etcdserverpb/rpc.js';
import { encodedEvent } from '../mvcc/watch_codec.js';
import {
  INVALID_WATCH_ID,
  WatchableStore,
  type WatchableStoreOptions,
  type WatchDelivery,
  WatchError,
} from '../mvcc/watchable_store.js';
import { GRPC_OVERHEAD_BYTES } from '../server/config.js';
import type { EtcdServer } from '../server/server.js';
import type { BidiStream, Codec, GrpcServer, MethodDefinition } from './grpc/server.js';

/**
 * A WatchResponse to send; `wire`, when set, is its complete encoding, built by this file from the
 * cached header and event bytes (so that a revision's events are encoded once for every watcher).
 */
export type WireWatchResponse = WatchResponse & { wire?: Uint8Array };

/** Sends `wire` as it is; encodes anything else the usual way. */
export const WireWatchResponseCodec: Codec<WireWatchResponse> = {
  encode(m: WireWatchResponse, writer?: BinaryWriter): BinaryWriter {
    const wire = m.wire;
    if (wire === undefined) return WatchResponse.encode(m, writer);
    if (writer !== undefined) return writer.raw(wire);
    return { finish: () => wire } as unknown as BinaryWriter;
  },
  decode: (input: Uint8Array, length?: number) => WatchResponse.decode(input, length),
};

/**
 * Bytes a stream may queue beyond the transport's own high-water mark before it counts as blocked.
 * Absorbs the bursts of one apply batch (many revisions at once) without a trip through history; a
 * consumer that stays behind is cut off at this much, so each stream's memory is bounded.
 */
export const STREAM_BUDGET_BYTES = 256 * 1024;

export interface WatchServiceOptions extends WatchableStoreOptions {}

interface Registered {
  watchable: WatchableStore;
  headers: HeaderCache;
  maxBytes: number;
}

const registered = new WeakMap<EtcdServer, Registered>();

/** The watchable store serving a server's Watch calls (for tests and metrics). */
export function watchableOf(server: EtcdServer): WatchableStore | undefined {
  return registered.get(server)?.watchable;
}

/**
 * Serves one Watch call on any BidiStream (the JSON gateway's /v3/watch can adapt its HTTP stream to
 * one: responses carry `wire`, their protobuf encoding). registerWatch must have run for this server.
 */
export function serveWatchStream(
  stream: BidiStream<WatchRequest, WireWatchResponse>,
  server: EtcdServer,
): void {
  const r = registered.get(server);
  if (r === undefined) throw new Error('watch: registerWatch has not run for this server');
  serveStream(stream, server, r.watchable, r.headers, r.maxBytes);
}

/** Registers etcdserverpb.Watch/Watch; returns the watchable store (tests look at its stats). */
export function registerWatch(
  grpc: GrpcServer,
  server: EtcdServer,
  opts: WatchServiceOptions = {},
): WatchableStore {
  const cfgInterval = (server.config as { watchProgressNotifyIntervalMs?: number })
    .watchProgressNotifyIntervalMs;
  const watchable = new WatchableStore(server.store, {
    ...opts,
    // etcd never reports more often than every 100 ms
    progressIntervalMs: opts.progressIntervalMs ?? (cfgInterval ? Math.max(100, cfgInterval) : undefined),
    onError:
      opts.onError ??
      ((err) => server.log.warn({ error: String(err) }, 'failed to send watch response to gRPC stream')),
  });
  const maxBytes = server.config.maxRequestBytes + GRPC_OVERHEAD_BYTES;
  const headers = new HeaderCache(server);
  registered.set(server, { watchable, headers, maxBytes });
  const method = {
    ...WatchDefinition.methods.watch,
    responseType: WireWatchResponseCodec,
  } as MethodDefinition<WatchRequest, WireWatchResponse>;
  grpc.bidi(method, WatchDefinition.fullName, (stream) =>
    serveStream(stream, server, watchable, headers, maxBytes),
  );
  return watchable;
}

function response(fields: Partial<WireWatchResponse>): WireWatchResponse {
  return {
    header: undefined,
    watchId: 0,
    created: false,
    canceled: false,
    compactRevision: 0,
    cancelReason: '',
    fragment: false,
    events: [],
    ...fields,
  };
}

function serveStream(
  stream: BidiStream<WatchRequest, WireWatchResponse>,
  server: EtcdServer,
  watchable: WatchableStore,
  headers: HeaderCache,
  maxBytes: number,
): void {
  // bytes queued since the transport last said its buffer was full; -1: it is not
  let over = -1;
  const push = (res: WireWatchResponse, size: number): boolean => {
    const ok = stream.send(res);
    if (ok && over < 0) return true;
    if (over < 0) over = 0;
    over += size;
    return over < STREAM_BUDGET_BYTES;
  };
  const send = (d: WatchDelivery): boolean => {
    if (d.compactRevision > 0) {
      const res = response({
        header: server.header(d.revision),
        watchId: d.watchId,
        canceled: true,
        compactRevision: d.compactRevision,
      });
      return push(res, 64);
    }
    const bytes = d.events.map((ev) => encodedEvent(ev, d.prevKv));
    if (!d.fragment || bytes.length < 2) {
      const wire = wireResponse(headers.field(d.revision), d.watchId, false, bytes);
      // only the codec reads this object, and it looks at `wire` alone
      return push({ wire } as WireWatchResponse, wire.length);
    }
    return sendFragments(push, headers.field(d.revision), d.watchId, bytes, maxBytes);
  };
  const ws = watchable.newStream({ send });
  const control = (res: WireWatchResponse) => {
    if (!push(res, 64)) ws.block();
  };
  stream.signal.addEventListener('abort', () => ws.close(), { once: true });
  stream.onDrain(() => {
    over = -1;
    ws.resume();
  });
  // As etcd: a client that half-closes keeps receiving events until it cancels the call.
  stream.onHalfClose(() => {});
  stream.onMessage((req) => {
    if (ws.closed) return;
    if (req.createRequest !== undefined) {
      const c = req.createRequest;
      // etcd: an empty key is the smallest key (\0); range end [0] means "every key >= key"
      const key = c.key.length === 0 ? Buffer.from([0]) : c.key;
      const end =
        c.rangeEnd.length === 0
          ? undefined
          : c.rangeEnd.length === 1 && c.rangeEnd[0] === 0
            ? Buffer.alloc(0)
            : c.rangeEnd;
      const wsrev = ws.rev;
      let id: number;
      try {
        id = ws.watch({
          id: c.watchId,
          key,
          end,
          startRevision: c.startRevision,
          noPut: c.filters.includes(WatchCreateRequest_FilterType.NOPUT),
          noDelete: c.filters.includes(WatchCreateRequest_FilterType.NODELETE),
          prevKv: c.prevKv,
          progressNotify: c.progressNotify,
          fragment: c.fragment,
        });
      } catch (err) {
        if (!(err instanceof WatchError)) throw err;
        control(
          response({
            header: server.header(wsrev),
            watchId: INVALID_WATCH_ID,
            created: true,
            canceled: true,
            cancelReason: err.message,
          }),
        );
        return;
      }
      control(response({ header: server.header(wsrev), watchId: id, created: true }));
    } else if (req.cancelRequest !== undefined) {
      const id = req.cancelRequest.watchId;
      // etcd answers only the cancel of a watcher that exists
      if (ws.cancel(id)) control(response({ header: server.header(ws.rev), watchId: id, canceled: true }));
    } else if (req.progressRequest !== undefined) {
      ws.requestProgress();
    }
  });
}

/** The encoded `header` field (1) of a response at a revision; the last few are kept. */
class HeaderCache {
  private readonly cache = new Map<number, { term: number; bytes: Uint8Array }>();
  constructor(private readonly server: EtcdServer) {}

  field(rev: number): Uint8Array {
    const header = this.server.header(rev);
    const c = this.cache.get(rev);
    if (c !== undefined && c.term === header.raftTerm) return c.bytes;
    const bytes = new BinaryWriter().uint32(10).bytes(ResponseHeader.encode(header).finish()).finish();
    if (this.cache.size >= 16) this.cache.delete(this.cache.keys().next().value as number);
    this.cache.set(rev, { term: header.raftTerm, bytes });
    return bytes;
  }
}

const smallCache = new Map<number, Uint8Array>();

/** Fields 2 (watch_id) and 7 (fragment) as WatchResponse.encode writes them; cached per ID. */
function smallFields(watchId: number, fragment: boolean): Uint8Array {
  const k = fragment ? -watchId - 1e15 : watchId;
  let b = smallCache.get(k);
  if (b === undefined) {
    const w = new BinaryWriter();
    if (watchId !== 0) w.uint32(16).int64(watchId);
    if (fragment) w.uint32(56).bool(true);
    b = w.finish();
    if (smallCache.size >= 4096) smallCache.clear();
    smallCache.set(k, b);
  }
  return b;
}

/** A WatchResponse carrying events, encoded as WatchResponse.encode would, from cached parts. */
function wireResponse(
  header: Uint8Array,
  watchId: number,
  fragment: boolean,
  events: readonly Uint8Array[],
): Uint8Array {
  const small = smallFields(watchId, fragment);
  let len = header.length + small.length;
  for (const e of events) len += e.length;
  const out = Buffer.allocUnsafe(len);
  out.set(header, 0);
  let off = header.length;
  out.set(small, off);
  off += small.length;
  for (const e of events) {
    out.set(e, off);
    off += e.length;
  }
  return out;
}

/**
 * etcd's sendFragments: responses over the size limit go out in pieces marked `fragment` (all but the
 * last); a piece holds at least one event and stays under the limit unless one event alone exceeds it.
 */
function sendFragments(
  push: (res: WireWatchResponse, size: number) => boolean,
  header: Uint8Array,
  watchId: number,
  bytes: Uint8Array[],
  maxBytes: number,
): boolean {
  const base = wireResponse(header, watchId, true, []).length;
  let total = base;
  for (const b of bytes) total += b.length;
  const send = (evs: Uint8Array[], fragment: boolean) => {
    const wire = wireResponse(header, watchId, fragment, evs);
    return push(response({ wire }), wire.length);
  };
  if (total < maxBytes) return send(bytes, false);
  let ok = true;
  let cur: Uint8Array[] = [];
  let size = base;
  for (const b of bytes) {
    if (cur.length > 0 && size + b.length >= maxBytes) {
      ok = send(cur, true) && ok;
      cur = [];
      size = base;
    }
    cur.push(b);
    size += b.length;
  }
  return send(cur, false) && ok;
}
