// The slow path of the client port, for HTTP/2 connections whose header blocks Node's server would
// reject (see authority.ts): a frame-level filter between the socket and the HTTP/2 server.
// Client-to-server frames are parsed; every header block is decoded with the connection's HPACK
// state, its :authority/host repaired, and re-encoded as literals without indexing (so the
// server's dynamic table stays empty and needs no mirroring). Every other frame, and everything
// the server sends, passes through untouched.
import type net from 'node:net';
import { Duplex } from 'node:stream';
import { isValidAuthority, repairAuthority } from './authority.js';
import {
  DEFAULT_MAX_FRAME_SIZE,
  Flag,
  FRAME_HEADER_LENGTH,
  FrameError,
  FrameType,
  headerFrames,
  headersFragment,
  PREFACE,
  readFrameHeader,
} from './frames.js';
import { type HeaderField, HpackDecoder, HpackEncoder } from './hpack.js';

/** Header fields nghttp2 validates as an authority. */
const AUTHORITY_FIELDS = new Set([':authority', 'host']);

/** Repairs a decoded header list in place; returns how many fields changed. */
export function repairHeaderFields(fields: HeaderField[]): number {
  let changed = 0;
  for (const f of fields) {
    if (AUTHORITY_FIELDS.has(f.name) && !isValidAuthority(f.value)) {
      f.value = repairAuthority(f.value);
      changed++;
    }
  }
  return changed;
}

/** Whether a decoded header list has a field Node's server would reset the stream for. */
export function needsRepair(fields: readonly HeaderField[]): boolean {
  return fields.some((f) => AUTHORITY_FIELDS.has(f.name) && !isValidAuthority(f.value));
}

export interface RepairOptions {
  /**
   * Drop the client's first SETTINGS ACK: it acknowledges a SETTINGS frame the listener sent
   * itself, which the HTTP/2 server knows nothing about.
   */
  dropFirstSettingsAck?: boolean;
  /** Largest header block (all its fragments) accepted from the client. */
  maxHeaderBlockBytes?: number;
  /** SETTINGS_HEADER_TABLE_SIZE the server advertised (the client encoder's limit). */
  headerTableSize?: number;
  /** SETTINGS_MAX_FRAME_SIZE the server advertised (for the re-encoded frames). */
  maxFrameSize?: number;
}

const DEFAULT_MAX_HEADER_BLOCK = 2 << 20;

type Mode = 'pass' | 'collect' | 'skip';

/** The client-to-server byte filter, without I/O: push client bytes, get server bytes. */
export class HeaderBlockRepairer {
  /** Header blocks re-encoded so far, and how many of them had a field repaired. */
  blocks = 0;
  repaired = 0;

  private readonly decoder: HpackDecoder;
  private readonly encoder = new HpackEncoder();
  private readonly maxBlock: number;
  private readonly maxFrameSize: number;
  private dropAck: boolean;

  private prefaceLeft = PREFACE.length;
  private readonly hdr = Buffer.alloc(FRAME_HEADER_LENGTH);
  private hdrLen = 0;
  private inFrame = false;
  private type = 0;
  private flags = 0;
  private streamId = 0;
  private remaining = 0;
  private mode: Mode = 'pass';
  private collected: Buffer[] = [];
  /** A header block waiting for its CONTINUATION frames. */
  private block: { streamId: number; endStream: boolean; fragments: Buffer[]; size: number } | null = null;

  constructor(opts: RepairOptions = {}) {
    this.decoder = new HpackDecoder(opts.headerTableSize);
    this.maxBlock = opts.maxHeaderBlockBytes ?? DEFAULT_MAX_HEADER_BLOCK;
    this.maxFrameSize = opts.maxFrameSize ?? DEFAULT_MAX_FRAME_SIZE;
    this.dropAck = opts.dropFirstSettingsAck ?? false;
  }

  /** Throws (HpackError, FrameError) on input the connection cannot survive. */
  push(chunk: Buffer): Buffer[] {
    const out: Buffer[] = [];
    let off = 0;
    while (off < chunk.length) {
      if (this.prefaceLeft > 0) {
        const n = Math.min(this.prefaceLeft, chunk.length - off);
        out.push(chunk.subarray(off, off + n));
        this.prefaceLeft -= n;
        off += n;
        continue;
      }
      if (!this.inFrame) {
        const n = Math.min(FRAME_HEADER_LENGTH - this.hdrLen, chunk.length - off);
        chunk.copy(this.hdr, this.hdrLen, off, off + n);
        this.hdrLen += n;
        off += n;
        if (this.hdrLen < FRAME_HEADER_LENGTH) continue;
        this.hdrLen = 0;
        this.startFrame(out);
        if (this.remaining === 0) this.endFrame(out);
        continue;
      }
      const n = Math.min(this.remaining, chunk.length - off);
      const part = chunk.subarray(off, off + n);
      off += n;
      this.remaining -= n;
      if (this.mode === 'pass') out.push(part);
      else if (this.mode === 'collect') this.collected.push(part);
      if (this.remaining === 0) this.endFrame(out);
    }
    return out;
  }

  private startFrame(out: Buffer[]): void {
    const h = readFrameHeader(this.hdr);
    this.inFrame = true;
    this.type = h.type;
    this.flags = h.flags;
    this.streamId = h.streamId;
    this.remaining = h.length;
    if (this.block && h.type !== FrameType.CONTINUATION) {
      throw new FrameError(`frame type ${h.type} inside a header block`);
    }
    if (h.type === FrameType.HEADERS || h.type === FrameType.CONTINUATION) {
      if ((this.block?.size ?? 0) + h.length > this.maxBlock) throw new FrameError('header block too large');
      this.mode = 'collect';
      this.collected = [];
    } else if (h.type === FrameType.SETTINGS && h.flags & Flag.ACK && this.dropAck) {
      this.dropAck = false;
      this.mode = 'skip';
    } else {
      this.mode = 'pass';
      out.push(Buffer.from(this.hdr));
    }
  }

  private endFrame(out: Buffer[]): void {
    this.inFrame = false;
    if (this.mode !== 'collect') return;
    const payload = this.collected.length === 1 ? this.collected[0] : Buffer.concat(this.collected);
    this.collected = [];
    if (this.type === FrameType.HEADERS) {
      if (this.streamId === 0) throw new FrameError('HEADERS on stream 0');
      const fragment = headersFragment(this.flags, payload);
      this.block = {
        streamId: this.streamId,
        endStream: (this.flags & Flag.END_STREAM) !== 0,
        fragments: [fragment],
        size: payload.length,
      };
    } else {
      if (!this.block || this.block.streamId !== this.streamId)
        throw new FrameError('unexpected CONTINUATION');
      this.block.fragments.push(payload);
      this.block.size += payload.length;
    }
    if (this.flags & Flag.END_HEADERS) {
      const { streamId, endStream, fragments } = this.block;
      this.block = null;
      const fields = this.decoder.decode(fragments.length === 1 ? fragments[0] : Buffer.concat(fragments));
      this.blocks++;
      if (repairHeaderFields(fields) > 0) this.repaired++;
      out.push(headerFrames(streamId, this.encoder.encode(fields), endStream, this.maxFrameSize));
    }
  }
}

/**
 * Puts a HeaderBlockRepairer between a client socket and an HTTP/2 server: returns the Duplex to
 * hand to the server (`h2.emit('connection', duplex)`). head holds the bytes already read from the
 * socket, preface included; the socket must be paused with no 'readable' listener left.
 */
export function repairStream(socket: net.Socket, head: Buffer, opts: RepairOptions = {}): Duplex {
  const repairer = new HeaderBlockRepairer(opts);
  let throttled = false;
  const duplex = new Duplex({
    read() {
      if (throttled) {
        throttled = false;
        socket.resume();
      }
    },
    write(chunk: Buffer, _enc, cb) {
      if (socket.destroyed) return cb();
      if (socket.write(chunk)) cb();
      else socket.once('drain', () => cb());
    },
    writev(chunks, cb) {
      if (socket.destroyed) return cb();
      socket.cork();
      let ok = true;
      for (const { chunk } of chunks) ok = socket.write(chunk);
      socket.uncork();
      if (ok) cb();
      else socket.once('drain', () => cb());
    },
    final(cb) {
      socket.end();
      cb();
    },
    destroy(err, cb) {
      socket.destroy();
      cb(err);
    },
  });
  const feed = (chunk: Buffer) => {
    let out: Buffer[];
    try {
      out = repairer.push(chunk);
    } catch {
      // broken framing or HPACK: the server would have closed the connection with GOAWAY
      socket.destroy();
      return;
    }
    if (out.length === 0) return;
    if (!duplex.push(out.length === 1 ? out[0] : Buffer.concat(out)) && !throttled) {
      throttled = true;
      socket.pause();
    }
  };
  feed(head);
  socket.on('data', feed);
  socket.on('end', () => duplex.push(null));
  socket.on('close', () => duplex.destroy());
  if (!throttled) socket.resume();
  return duplex;
}
