// Encoded watch events, computed once per event and shared by every watcher (and every stream) that
// receives it. A WatchResponse's `events` field (number 11) is repeated, so a response is its small
// fixed fields followed by these pre-encoded field bytes, in any number.
import { BinaryWriter } from '@bufbuild/protobuf/wire';
import { Event, Event_EventType, type KeyValue } from '../gen/mvccpb/kv.js';

/** Field 11 (events), wire type 2 (length-delimited). */
const EVENTS_TAG = (11 << 3) | 2;

interface Cached {
  plain?: Uint8Array;
  withPrev?: Uint8Array;
  prev?: KeyValue | null;
}

const cache = new WeakMap<Event, Cached>();
/** Events read back from history carry no prevKv; this finds it (etcd: the key at modRevision - 1). */
const prevResolvers = new WeakMap<Event, () => KeyValue | undefined>();

/** Registers how to find the previous KeyValue of an event that lacks it (events read from history). */
export function setPrevKvResolver(ev: Event, resolve: () => KeyValue | undefined): void {
  prevResolvers.set(ev, resolve);
}

function entry(ev: Event): Cached {
  let c = cache.get(ev);
  if (c === undefined) {
    c = {};
    cache.set(ev, c);
  }
  return c;
}

/** etcd sends no prevKv for the event that creates a key. */
function isCreate(ev: Event): boolean {
  return ev.type === Event_EventType.PUT && ev.kv !== undefined && ev.kv.createRevision === ev.kv.modRevision;
}

/** The KeyValue before the event (undefined for a create, or when it has been compacted away). */
export function prevKvOf(ev: Event): KeyValue | undefined {
  const c = entry(ev);
  if (c.prev !== undefined) return c.prev ?? undefined;
  let prev: KeyValue | undefined;
  if (!isCreate(ev)) {
    const r = prevResolvers.get(ev);
    prev = r !== undefined ? r() : ev.prevKv;
  }
  c.prev = prev ?? null;
  return prev;
}

/** The event as a client sees it: with its prevKv if asked for, without otherwise. */
export function wireEvent(ev: Event, withPrev: boolean): Event {
  return { type: ev.type, kv: ev.kv, prevKv: withPrev ? prevKvOf(ev) : undefined };
}

/** The bytes of one `events` field of a WatchResponse (tag, length, Event), cached per event. */
export function encodedEvent(ev: Event, withPrev: boolean): Uint8Array {
  const c = entry(ev);
  const have = withPrev ? c.withPrev : c.plain;
  if (have !== undefined) return have;
  const body = Event.encode(wireEvent(ev, withPrev)).finish();
  const bytes = new BinaryWriter().uint32(EVENTS_TAG).bytes(body).finish();
  if (withPrev) c.withPrev = bytes;
  else c.plain = bytes;
  return bytes;
}
