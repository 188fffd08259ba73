// The client port: one TCP listener that serves gRPC (HTTP/2) and plain HTTP/1.1 (/health,
// /version, later /metrics and the JSON gateway), as etcd does with its connection multiplexer.
// Plaintext HTTP/2 has no ALPN, so the first bytes of each connection decide: the HTTP/2
// client preface goes to the HTTP/2 server, anything else to the HTTP/1.1 server.
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';

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

export class ClientListener {
  private readonly tcp: net.Server;
  private readonly h2: http2.Http2Server;
  private readonly h1: http.Server;
  private readonly sockets = new Set<net.Socket>();
  private readonly sessions = new Set<http2.ServerHttp2Session>();

  constructor(handlers: ClientHandlers, opts: { maxConcurrentStreams?: number } = {}) {
    this.h2 = http2.createServer({
      settings: {
        maxConcurrentStreams: opts.maxConcurrentStreams ?? 2 ** 32 - 1,
        initialWindowSize: 1 << 20,
        maxHeaderListSize: 1 << 20,
      },
      maxSessionMemory: 64,
    });
    this.h2.on('stream', (stream, headers) => handlers.onStream(stream, headers));
    this.h2.on('session', (session) => {
      this.sessions.add(session);
      // a larger connection window lets many concurrent calls stream without stalling
      session.on('connect', () => session.setLocalWindowSize(16 << 20));
      session.on('close', () => this.sessions.delete(session));
      session.on('error', () => {});
    });
    this.h1 = http.createServer((req, res) => handlers.onHttp1(req, res));
    this.h1.keepAliveTimeout = 30_000;
    this.tcp = net.createServer((socket) => this.route(socket));
  }

  private route(socket: net.Socket): void {
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    socket.setNoDelay(true);
    let head: Buffer = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
      const n = Math.min(head.length, H2_PREFACE.length);
      const isH2 = head.subarray(0, n).equals(H2_PREFACE.subarray(0, n));
      if (isH2 && head.length < H2_PREFACE.length) return; // wait for the whole preface
      socket.off('data', onData);
      socket.pause();
      socket.unshift(head);
      (isH2 ? this.h2 : this.h1).emit('connection', socket);
      socket.resume();
    };
    socket.on('data', onData);
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
