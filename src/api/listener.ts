// The client port: one TCP listener that serves gRPC (HTTP/2) and plain HTTP/1.1 (/health,
// /version, later /metrics and the JSON gateway), as etcd does with its connection multiplexer.
// Plaintext HTTP/2 has no ALPN, so the first bytes of each connection decide: the HTTP/2
// client preface goes to the HTTP/2 server, anything else to the HTTP/1.1 server. HTTP/2
// connections are looked at up to their first request: those with an :authority Node's server
// rejects (grpc-go's "http://host:port", sent by etcdctl 3.4) go through a header repair filter.
// An https URL gets a listener with `tls`: after the handshake (and etcd's CRL and allowed-hostname
// checks), ALPN decides between HTTP/2 and HTTP/1.1; clients that offer no ALPN are sniffed as above.
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import tls from 'node:tls';
import {
  handshakeErrorText,
  type LoadedTls,
  rejectionMessage,
  remoteAddrOf,
} from '../transport/tls/index.js';
import { repairStream } from './h2/repair.js';
import { EMPTY_SETTINGS, H2Sniffer, type SniffDecision } from './h2/sniff.js';

const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');

export interface ClientHandlers {
  /** Every HTTP/2 stream (gRPC calls and HTTP/2 requests alike). */
  onStream(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void;
  /** Every HTTP/1.1 request. */
  onHttp1(req: http.IncomingMessage, res: http.ServerResponse): void;
}

export interface ListenAddress {
  host: string;
  port: number;
}

export interface ClientListenerOptions {
  maxConcurrentStreams?: number;
  /**
   * How long a new HTTP/2 connection may sit without a first request before it is handed to the
   * HTTP/2 server unexamined (default 10 s).
   */
  sniffTimeoutMs?: number;
  /** Serve TLS with these settings (an https client URL). */
  tls?: LoadedTls;
  /** Where refused TLS connections are reported (etcd's "rejected connection" line). */
  onReject?: (fields: Record<string, string>, message: string) => void;
}

export class ClientListener {
  private readonly tcp: net.Server;
  private readonly h2: http2.Http2Server;
  private readonly h1: http.Server;
  private readonly sockets = new Set<net.Socket>();
  private readonly sessions = new Set<http2.ServerHttp2Session>();
  private readonly sniffTimeoutMs: number;
  private readonly tlsServer: tls.Server | undefined;
  /** HTTP/2 connections routed through the header repair filter so far. */
  repairedConnections = 0;

  /** Until serve() is called, accepted connections wait here unread (etcd accepts before it is ready). */
  private handlers: ClientHandlers | undefined;
  private held: net.Socket[] = [];

  /** With `handlers`, connections are served at once; without, from serve() on. */
  constructor(handlers?: ClientHandlers, opts: ClientListenerOptions = {}) {
    this.handlers = handlers;
    this.sniffTimeoutMs = opts.sniffTimeoutMs ?? 10_000;
    this.h2 = http2.createServer({
      settings: {
        maxConcurrentStreams: opts.maxConcurrentStreams ?? 2 ** 32 - 1,
        initialWindowSize: 1 << 20,
        maxHeaderListSize: 1 << 20,
      },
      maxSessionMemory: 64,
    });
    this.h2.on('stream', (stream, headers) => this.handlers!.onStream(stream, headers));
    this.h2.on('session', (session) => {
      this.sessions.add(session);
      // a larger connection window lets many concurrent calls stream without stalling
      session.on('connect', () => session.setLocalWindowSize(16 << 20));
      session.on('close', () => this.sessions.delete(session));
      session.on('error', () => {});
    });
    this.h1 = http.createServer((req, res) => this.handlers!.onHttp1(req, res));
    this.h1.keepAliveTimeout = 30_000;
    this.tcp = net.createServer((socket) => this.accept(socket));
    if (opts.tls) this.tlsServer = this.createTlsServer(opts.tls, opts.onReject ?? (() => {}));
  }

  /** A TLS server that is never listened on: accepted TCP sockets are handed to it. */
  private createTlsServer(
    settings: LoadedTls,
    onReject: (fields: Record<string, string>, message: string) => void,
  ): tls.Server {
    const reject = (socket: tls.TLSSocket, reason: string) => {
      const sn = (socket as tls.TLSSocket & { servername?: string | false }).servername || '';
      const addr = remoteAddrOf(socket);
      onReject({ 'remote-addr': addr, 'server-name': sn, error: reason }, rejectionMessage(addr, reason, sn));
    };
    const server = tls.createServer({ ...settings.serverOptions(), ALPNProtocols: ['h2', 'http/1.1'] });
    server.on('secureConnection', (socket: tls.TLSSocket) => {
      socket.on('error', () => socket.destroy());
      const reason = settings.checkAccepted(socket);
      if (reason !== undefined) {
        reject(socket, reason);
        socket.destroy();
        return;
      }
      if (socket.alpnProtocol === 'http/1.1') this.h1.emit('connection', socket);
      else this.route(socket); // h2 (the sniffer still repairs odd :authority values), or no ALPN
    });
    server.on('tlsClientError', (err, socket) => reject(socket, handshakeErrorText(err)));
    return server;
  }

  /** Starts serving: connections accepted so far are served first, in the order they came. */
  serve(handlers: ClientHandlers): void {
    this.handlers = handlers;
    const held = this.held;
    this.held = [];
    for (const socket of held) if (!socket.destroyed) this.start(socket);
  }

  private accept(socket: net.Socket): void {
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    socket.setNoDelay(true);
    if (this.handlers === undefined) this.held.push(socket);
    else this.start(socket);
  }

  /** A TCP connection goes to the TLS handshake first on an https URL. */
  private start(socket: net.Socket): void {
    if (this.tlsServer) this.tlsServer.emit('connection', socket);
    else this.route(socket);
  }

  private route(socket: net.Socket): void {
    // Read in paused mode and put the bytes back: the HTTP/2 session picks up what is buffered on
    // the socket when it is created (flowing mode would hand those bytes to nobody).
    let head: Buffer = Buffer.alloc(0);
    const onReadable = () => {
      let chunk: Buffer | null;
      while ((chunk = socket.read()) !== null)
        head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
      if (head.length === 0) return;
      const n = Math.min(head.length, H2_PREFACE.length);
      const isH2 = head.subarray(0, n).equals(H2_PREFACE.subarray(0, n));
      if (isH2 && head.length < H2_PREFACE.length) return; // wait for the whole preface
      socket.off('readable', onReadable);
      if (isH2) {
        this.sniffH2(socket, head);
        return;
      }
      socket.unshift(head);
      this.h1.emit('connection', socket);
    };
    socket.on('readable', onReadable);
  }

  /**
   * Reads on until the connection's first header block (see h2/sniff.ts). Well-behaved clients get
   * the raw socket handed to the HTTP/2 server; clients whose :authority Node would reject (grpc-go's
   * "http://host:port") get a filter in between that repairs every header block (h2/repair.ts).
   */
  private sniffH2(socket: net.Socket, first: Buffer): void {
    const sniffer = new H2Sniffer();
    const act = (d: SniffDecision) => {
      if (d.kind === 'more') {
        if (d.sendSettings) socket.write(EMPTY_SETTINGS);
        return;
      }
      clearTimeout(timer);
      socket.off('readable', onReadable);
      socket.off('end', onEnd);
      if (d.kind === 'fast') {
        socket.unshift(d.head);
        this.h2.emit('connection', socket);
      } else {
        this.repairedConnections++;
        this.h2.emit(
          'connection',
          repairStream(socket, d.head, { dropFirstSettingsAck: d.dropFirstSettingsAck }),
        );
      }
    };
    const onReadable = () => {
      let chunk: Buffer | null;
      let d: SniffDecision | undefined;
      while ((chunk = socket.read()) !== null) {
        d = sniffer.push(chunk);
        if (d.kind !== 'more') break;
        act(d);
      }
      if (d && d.kind !== 'more') act(d);
    };
    const onEnd = () => {
      clearTimeout(timer);
      socket.destroy();
    };
    const timer = setTimeout(() => {
      if (!socket.destroyed) act(sniffer.timeout());
    }, this.sniffTimeoutMs).unref();
    socket.on('readable', onReadable);
    socket.on('end', onEnd);
    socket.once('close', () => clearTimeout(timer));
    act(sniffer.push(first));
  }

  listen(host: string, port: number): Promise<ListenAddress> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      this.tcp.once('error', onError);
      this.tcp.listen({ host, port, exclusive: true }, () => {
        this.tcp.off('error', onError);
        const addr = this.tcp.address() as net.AddressInfo;
        resolve({ host: addr.address, port: addr.port });
      });
    });
  }

  /** Stops accepting, then closes every open connection. */
  async close(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.tcp.close(() => resolve());
      for (const session of this.sessions) session.destroy();
      for (const socket of this.sockets) socket.destroy();
    });
    this.h1.close();
    this.h2.close();
  }
}
