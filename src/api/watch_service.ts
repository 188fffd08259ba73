// The Watch service: one bidi stream per Watch call, carrying create/cancel/progress requests in and
// watch responses out (etcd's v3rpc/watch.go). The watching itself lives in src/mvcc/watchable_store;
// this file translates requests, builds responses, fragments large ones, and ties the stream's flow
// control (send() false / drain) to the watchable store's.
import { BinaryWriter } from '@bufbuild/protobuf/wire';
import {
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

/** A WatchResponse whose events may come pre-encoded (shared by every watcher that gets them). */
export type WireWatchResponse = WatchResponse & { eventBytes?: readonly Uint8Array[] };

/** Encodes the small fields, then appends the cached `events` field bytes as they are. */
export const WireWatchResponseCodec: Codec<WireWatchResponse> = {
  encode(m: WireWatchResponse, writer: BinaryWriter = new BinaryWriter()): BinaryWriter {
    const raw = m.eventBytes;
    if (raw === undefined) return WatchResponse.encode(m, writer);
    WatchResponse.encode(
      {
        header: m.header,
        watchId: m.watchId,
        created: m.created,
        canceled: m.canceled,
        compactRevision: m.compactRevision,
        cancelReason: m.cancelReason,
        fragment: m.fragment,
        events: [],
      },
      writer,
    );
    for (const b of raw) writer.raw(b);
    return writer;
  },
  decode: (input: Uint8Array, length?: number) => WatchResponse.decode(input, length),
};

export interface WatchServiceOptions extends WatchableStoreOptions {}

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
  const method = {
    ...WatchDefinition.methods.watch,
    responseType: WireWatchResponseCodec,
  } as MethodDefinition<WatchRequest, WireWatchResponse>;
  grpc.bidi(method, WatchDefinition.fullName, (stream) => serveStream(stream, server, watchable, maxBytes));
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
  maxBytes: number,
): void {
  const send = (d: WatchDelivery): boolean => {
    const header = server.header(d.revision);
    if (d.compactRevision > 0) {
      return stream.send(
        response({ header, watchId: d.watchId, canceled: true, compactRevision: d.compactRevision }),
      );
    }
    const bytes = d.events.map((ev) => encodedEvent(ev, d.prevKv));
    if (!d.fragment || bytes.length < 2) {
      return stream.send(response({ header, watchId: d.watchId, eventBytes: bytes }));
    }
    return sendFragments(stream, header, d.watchId, bytes, maxBytes);
  };
  const ws = watchable.newStream({ send });
  const control = (res: WireWatchResponse) => {
    if (!stream.send(res)) ws.block();
  };
  stream.signal.addEventListener('abort', () => ws.close(), { once: true });
  stream.onDrain(() => ws.resume());
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

/**
 * etcd's sendFragments: responses over the size limit go out in pieces marked `fragment` (all but the
 * last); a piece holds at least one event and stays under the limit unless one event alone exceeds it.
 */
function sendFragments(
  stream: BidiStream<WatchRequest, WireWatchResponse>,
  header: WatchResponse['header'],
  watchId: number,
  bytes: Uint8Array[],
  maxBytes: number,
): boolean {
  const base = WatchResponse.encode(response({ header, watchId, fragment: true })).finish().length;
  let total = base;
  for (const b of bytes) total += b.length;
  if (total < maxBytes) return stream.send(response({ header, watchId, eventBytes: bytes }));
  let ok = true;
  let cur: Uint8Array[] = [];
  let size = base;
  for (const b of bytes) {
    if (cur.length > 0 && size + b.length >= maxBytes) {
      ok = stream.send(response({ header, watchId, fragment: true, eventBytes: cur })) && ok;
      cur = [];
      size = base;
    }
    cur.push(b);
    size += b.length;
  }
  return stream.send(response({ header, watchId, eventBytes: cur })) && ok;
}
