// A gRPC server on Node's own HTTP/2 implementation. etcd serves gRPC and plain HTTP (/health,
// /version, /metrics, the JSON gateway) on one port; owning the HTTP/2 stream handling is what
// lets one listener do both, and keeps the per-call path short.
import type { IncomingHttpHeaders, ServerHttp2Stream } from 'node:http2';
import { constants as h2 } from 'node:http2';
import type { BinaryWriter } from '@bufbuild/protobuf/wire';
import { Code } from '../../server/errors.js';
import { toWireStatus, type WireStatus } from '../status.js';
import { Deframer, encodeFramed } from './framing.js';

/** What ts-proto generates for a message type. */
export interface Codec<T> {
  encode(message: T, writer?: BinaryWriter): BinaryWriter;
  decode(input: Uint8Array, length?: number): T;
}

/** One method of a ts-proto generic service definition. */
export interface MethodDefinition<Req, Res> {
  name: string;
  requestType: Codec<Req>;
  responseType: Codec<Res>;
  requestStream: boolean;
  responseStream: boolean;
}

export interface ServiceDefinition {
  fullName: string;
  // biome-ignore lint/suspicious/noExplicitAny: generated definitions have heterogeneous methods
  methods: Record<string, MethodDefinition<any, any>>;
}

/** What every handler learns about its call. */
export interface CallContext {
  readonly metadata: IncomingHttpHeaders;
  /** Aborted when the client cancels, disconnects or the deadline passes. */
  readonly signal: AbortSignal;
  /** Size in bytes of the (first) request message. */
  readonly requestBytes: number;
}

export type UnaryHandler<Req, Res> = (req: Req, ctx: CallContext) => Res | Promise<Res>;

/** The server side of a streaming call. */
export interface ServerStream<Res> extends CallContext {
  /** Sends one message; false means the transport buffer is full: wait for onDrain before sending more. */
  send(res: Res): boolean;
  /** Ends the call with OK, or with the error's status. */
  end(err?: unknown): void;
  onDrain(cb: () => void): void;
  readonly ended: boolean;
}

export interface BidiStream<Req, Res> extends ServerStream<Res> {
  onMessage(cb: (req: Req) => void): void;
  /** The client half-closed its side. */
  onHalfClose(cb: () => void): void;
}

export type ServerStreamHandler<Req, Res> = (req: Req, stream: ServerStream<Res>) => void;
export type BidiHandler<Req, Res> = (stream: BidiStream<Req, Res>) => void;

type Route =
  | { kind: 'unary'; method: MethodDefinition<unknown, unknown>; handler: UnaryHandler<unknown, unknown> }
  | {
      kind: 'serverStream';
      method: MethodDefinition<unknown, unknown>;
      handler: ServerStreamHandler<unknown, unknown>;
    }
  | { kind: 'bidi'; method: MethodDefinition<unknown, unknown>; handler: BidiHandler<unknown, unknown> };

export interface GrpcServerOptions {
  /** Largest request message accepted (etcd: --max-request-bytes plus 512 KiB of gRPC overhead). */
  maxReceiveBytes: number;
}

const OK_HEADERS = { [h2.HTTP2_HEADER_STATUS]: 200, [h2.HTTP2_HEADER_CONTENT_TYPE]: 'application/grpc' };
const OK_TRAILERS = { 'grpc-status': '0' };

export class GrpcServer {
  private readonly routes = new Map<string, Route>();
  private readonly services = new Set<string>();

  constructor(private readonly options: GrpcServerOptions) {}

  unary<Req, Res>(
    method: MethodDefinition<Req, Res>,
    service: string,
    handler: UnaryHandler<Req, Res>,
  ): void {
    this.add(service, method, { kind: 'unary', method, handler } as Route);
  }

  serverStream<Req, Res>(
    method: MethodDefinition<Req, Res>,
    service: string,
    handler: ServerStreamHandler<Req, Res>,
  ): void {
    this.add(service, method, { kind: 'serverStream', method, handler } as Route);
  }

  bidi<Req, Res>(method: MethodDefinition<Req, Res>, service: string, handler: BidiHandler<Req, Res>): void {
    this.add(service, method, { kind: 'bidi', method, handler } as Route);
  }

  /** Registers a service name without handlers, so its unimplemented methods get the right error. */
  declareService(service: string): void {
    this.services.add(service);
  }

  private add(service: string, method: MethodDefinition<unknown, unknown>, route: Route): void {
    this.services.add(service);
    this.routes.set(`/${service}/${method.name}`, route);
  }

  /** True for HTTP/2 requests that are gRPC calls (the listener routes everything else to HTTP). */
  static isGrpc(headers: IncomingHttpHeaders): boolean {
    const ct = headers[h2.HTTP2_HEADER_CONTENT_TYPE];
    return typeof ct === 'string' && ct.startsWith('application/grpc');
  }

  handle(stream: ServerHttp2Stream, headers: IncomingHttpHeaders): void {
    const path = headers[h2.HTTP2_HEADER_PATH] as string;
    const route = this.routes.get(path);
    if (route === undefined) {
      const [, service = '', method = ''] = path.split('/');
      const message = this.services.has(service)
        ? `unknown method ${method} for service ${service}`
        : `unknown service ${service}`;
      respondError(stream, { code: Code.UNIMPLEMENTED, message });
      stream.resume();
      return;
    }
    if (headers['grpc-encoding'] !== undefined && headers['grpc-encoding'] !== 'identity') {
      // We advertise no compression; a client that compresses anyway gets a clear refusal.
      respondError(stream, {
        code: Code.UNIMPLEMENTED,
        message: `grpc: Decompressor is not installed for grpc-encoding "${headers['grpc-encoding']}"`,
      });
      stream.resume();
      return;
    }
    new Call(stream, headers, route, this.options.maxReceiveBytes).start();
  }
}

function encodeGrpcMessage(message: string): string {
  // grpc-message is percent-encoded outside printable ASCII (and '%' itself)
  return message.replace(/[^\x20-\x24\x26-\x7e]/gu, (c) =>
    Array.from(Buffer.from(c, 'utf8'), (b) => `%${b.toString(16).toUpperCase().padStart(2, '0')}`).join(''),
  );
}

function statusTrailers(status: WireStatus): Record<string, string> {
  return { 'grpc-status': String(status.code), 'grpc-message': encodeGrpcMessage(status.message) };
}

function respondError(stream: ServerHttp2Stream, status: WireStatus): void {
  if (stream.destroyed || stream.closed) return;
  try {
    stream.respond({ ...OK_HEADERS, ...statusTrailers(status) }, { endStream: true });
  } catch {
    stream.destroy();
  }
}

/** grpc-timeout: an integer and a unit (H, M, S, m, u, n). */
function parseTimeoutMs(value: string | string[] | undefined): number | undefined {
  if (typeof value !== 'string') return undefined;
  const m = /^(\d{1,8})([HMSmun])$/.exec(value);
  if (!m) return undefined;
  const n = Number(m[1]);
  const unitMs: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 0.001, n: 0.000001 };
  return n * unitMs[m[2]!]!;
}

/** One gRPC call: reads request messages, runs the handler, writes responses and the final status. */
class Call<Req, Res> implements BidiStream<Req, Res> {
  private readonly controller = new AbortController();
  private readonly deframer: Deframer;
  private responded = false;
  private done = false;
  private timer: NodeJS.Timeout | undefined;
  private messageCb: ((req: Req) => void) | undefined;
  private halfCloseCb: (() => void) | undefined;
  private halfClosed = false;
  private buffered: Req[] = [];
  requestBytes = 0;

  constructor(
    private readonly stream: ServerHttp2Stream,
    readonly metadata: IncomingHttpHeaders,
    private readonly route: Route,
    maxReceiveBytes: number,
  ) {
    this.deframer = new Deframer(maxReceiveBytes);
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  get ended(): boolean {
    return this.done;
  }

  start(): void {
    const stream = this.stream;
    const timeoutMs = parseTimeoutMs(this.metadata['grpc-timeout']);
    if (timeoutMs !== undefined) {
      this.timer = setTimeout(
        () => this.end({ code: Code.DEADLINE_EXCEEDED, message: 'context deadline exceeded' }),
        timeoutMs,
      );
    }
    stream.on('data', (chunk: Buffer) => this.onData(chunk));
    stream.on('end', () => this.onEnd());
    stream.on('close', () => this.onClose());
    stream.on('error', () => this.onClose());
  }

  private onData(chunk: Buffer): void {
    if (this.done) return;
    let messages: Buffer[];
    try {
      messages = this.deframer.push(chunk);
    } catch (err) {
      this.end(err);
      return;
    }
    for (const raw of messages) {
      let req: Req;
      try {
        req = this.route.method.requestType.decode(raw) as Req;
      } catch (err) {
        this.end(err);
        return;
      }
      this.dispatch(req, raw.length);
      if (this.done) return;
    }
  }

  private dispatch(req: Req, size: number): void {
    const route = this.route;
    if (route.kind === 'bidi') {
      if (this.requestBytes === 0 && this.messageCb === undefined && this.buffered.length === 0) {
        this.requestBytes = size;
        route.handler(this as BidiStream<unknown, unknown>);
      }
      if (this.messageCb) this.messageCb(req);
      else this.buffered.push(req);
      return;
    }
    if (this.requestBytes !== 0 || this.responded) {
      this.end({ code: Code.INTERNAL, message: 'grpc: more than one request message for a unary request' });
      return;
    }
    this.requestBytes = size || 1;
    if (route.kind === 'serverStream') {
      try {
        route.handler(req, this as ServerStream<unknown>);
      } catch (err) {
        this.end(err);
      }
      return;
    }
    let result: unknown;
    try {
      result = route.handler(req, this);
    } catch (err) {
      this.end(err);
      return;
    }
    if (result instanceof Promise) {
      result.then(
        (res) => this.finishUnary(res as Res),
        (err) => this.end(err),
      );
    } else this.finishUnary(result as Res);
  }

  private finishUnary(res: Res): void {
    if (this.done) return;
    let frame: Buffer;
    try {
      frame = encodeFramed(this.route.method.responseType as Codec<Res>, res);
    } catch (err) {
      this.end(err);
      return;
    }
    this.done = true;
    this.clearTimer();
    const stream = this.stream;
    if (stream.destroyed || stream.closed) return;
    stream.respond(OK_HEADERS, { waitForTrailers: true });
    stream.once('wantTrailers', () => stream.sendTrailers(OK_TRAILERS));
    stream.end(frame);
  }

  private onEnd(): void {
    if (this.done) return;
    if (this.deframer.hasPartial) {
      this.end({ code: Code.INTERNAL, message: 'grpc: request stream ended in the middle of a message' });
      return;
    }
    if (this.route.kind === 'bidi') {
      this.halfClosed = true;
      if (this.requestBytes === 0 && this.messageCb === undefined) {
        // a bidi stream that sent nothing: still start the handler so it can finish cleanly
        this.requestBytes = 0;
        this.route.handler(this as BidiStream<unknown, unknown>);
      }
      this.halfCloseCb?.();
      return;
    }
    if (this.requestBytes === 0) {
      this.end({ code: Code.INTERNAL, message: 'grpc: request stream ended without a message' });
    }
  }

  private onClose(): void {
    this.clearTimer();
    if (!this.done) {
      this.done = true;
      this.controller.abort();
    }
  }

  private clearTimer(): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
  }

  // ---- ServerStream / BidiStream ----

  onMessage(cb: (req: Req) => void): void {
    this.messageCb = cb;
    const pending = this.buffered;
    this.buffered = [];
    for (const req of pending) cb(req);
  }

  onHalfClose(cb: () => void): void {
    this.halfCloseCb = cb;
    if (this.halfClosed) cb();
  }

  onDrain(cb: () => void): void {
    this.stream.on('drain', cb);
  }

  send(res: Res): boolean {
    if (this.done) return false;
    const stream = this.stream;
    if (stream.destroyed || stream.closed) return false;
    if (!this.responded) {
      this.responded = true;
      stream.respond(OK_HEADERS, { waitForTrailers: true });
    }
    return stream.write(encodeFramed(this.route.method.responseType as Codec<Res>, res));
  }

  end(err?: unknown): void {
    if (this.done) return;
    this.done = true;
    this.clearTimer();
    const stream = this.stream;
    const status: WireStatus = err === undefined ? { code: Code.OK, message: '' } : asStatus(err);
    if (stream.destroyed || stream.closed) return;
    if (!this.responded) {
      this.responded = true;
      if (status.code === Code.OK) {
        stream.respond(OK_HEADERS, { waitForTrailers: true });
        stream.once('wantTrailers', () => stream.sendTrailers(OK_TRAILERS));
        stream.end();
      } else respondError(stream, status);
    } else {
      stream.once('wantTrailers', () =>
        stream.sendTrailers(status.code === Code.OK ? OK_TRAILERS : statusTrailers(status)),
      );
      stream.end();
    }
    if (!this.halfClosed) stream.resume();
    this.controller.abort();
  }
}

function asStatus(err: unknown): WireStatus {
  if (
    typeof err === 'object' &&
    err !== null &&
    'code' in err &&
    'message' in err &&
    !(err instanceof Error)
  ) {
    return err as WireStatus;
  }
  return toWireStatus(err);
}
