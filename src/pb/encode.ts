// Protobuf encoding for hot paths, into buffers that cost the garbage collector little.
//
// `Codec.encode(m).finish()` makes a fresh BinaryWriter per message: a 128-byte ArrayBuffer, one more
// per doubling, and one for the final slice. Every ArrayBuffer is a separately allocated backing store
// that each young-generation GC has to sweep, and at a few thousand messages a second that sweep was
// over half of every scavenge pause (`--trace-gc-nvp`: sweep_array_buffers 1.2 of 2.4 ms).
// encodeToBuffer() writes through one long-lived writer instead and copies the result into a Buffer
// from Node's shared pool (small messages) — no new ArrayBuffer at all for most messages.

import { BinaryWriter } from '@bufbuild/protobuf/wire';

/** What ts-proto generates for every message type. */
export interface Encoder<T> {
  encode(message: T, writer?: BinaryWriter): BinaryWriter;
}

/** The writer's state, which BinaryWriter keeps private; it is reset here after each use. */
interface WriterState {
  buffer: Uint8Array;
  pos: number;
  stackPos: number[];
}

/** A writer whose buffer grew past this (a large range response, say) is dropped rather than kept. */
const KEEP_WRITER_UP_TO = 1 << 20;

let shared = new BinaryWriter();
let inUse = false;

/**
 * Encodes `message` into a new Buffer, leaving `headroom` bytes at the front for the caller's framing
 * (a length prefix, say) so the frame needs no second copy.
 */
export function encodeToBuffer<T>(codec: Encoder<T>, message: T, headroom = 0): Buffer {
  if (inUse) return withHeadroom(codec.encode(message).finish(), headroom); // re-entered from an encoder
  inUse = true;
  const state = shared as unknown as WriterState;
  try {
    codec.encode(message, shared);
    const len = state.pos;
    const out = Buffer.allocUnsafe(headroom + len);
    out.set(state.buffer.subarray(0, len), headroom);
    return out;
  } finally {
    state.pos = 0;
    if (state.stackPos.length > 0) state.stackPos = [];
    if (state.buffer.length > KEEP_WRITER_UP_TO) shared = new BinaryWriter();
    inUse = false;
  }
}

function withHeadroom(body: Uint8Array, headroom: number): Buffer {
  const out = Buffer.allocUnsafe(headroom + body.length);
  out.set(body, headroom);
  return out;
}
