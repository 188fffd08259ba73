// The peer listener: serves --listen-peer-urls, routing each request to the transport's /raft
// handler, then to the server's own peer endpoints (/members, /version, /leases, ...), then 404.
// An https listen URL needs `tls` (the peer TLS settings): the listener then serves TLS, refuses
// what the settings refuse (logging etcd's "rejected connection" line) and serves the rest.
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { httpError } from './http_util.js';
import { handshakeErrorText, type LoadedTls, rejectionMessage, remoteAddrOf } from './tls/index.js';
import { silentLogger, type TransportLogger } from './types.js';

export type PeerHandler = (req: IncomingMessage, res: ServerResponse) => boolean;

export interface PeerServerOptions {
  /** The listen URL, e.g. http://127.0.0.1:2380 (port 0 picks a free port). */
  listenUrl: string;
  /** Handlers tried in order; the first that returns true owns the request. */
  handlers: PeerHandler[];
  tls?: LoadedTls;
  /** Where refused TLS connections are reported. */
  logger?: TransportLogger;
}

export class PeerServer {
  private constructor(
    readonly server: Server,
    /** The URL actually listened on (with the chosen port). */
    readonly url: string,
  ) {}

  static async listen(opts: PeerServerOptions): Promise<PeerServer> {
    const u = new URL(opts.listenUrl);
    const secure = u.protocol === 'https:';
    if (secure && !opts.tls) throw new Error(`listen URL ${opts.listenUrl} needs TLS options`);
    if (!secure && u.protocol !== 'http:') throw new Error(`unsupported peer URL scheme: ${u.protocol}`);
    const onRequest = (req: IncomingMessage, res: ServerResponse) => {
      for (const h of opts.handlers) if (h(req, res)) return;
      req.resume();
      httpError(res, 404, '404 page not found');
    };
    const serverOpts = { noDelay: true, keepAlive: true, requestTimeout: 0 };
    let server: Server;
    if (secure) {
      const tls = opts.tls!;
      const log = opts.logger ?? silentLogger;
      const reject = (socket: TLSSocket, reason: string) => {
        const sn = (socket as TLSSocket & { servername?: string | false }).servername || '';
        log.warn(
          { 'remote-addr': remoteAddrOf(socket), 'server-name': sn, error: reason },
          rejectionMessage(remoteAddrOf(socket), reason, sn),
        );
      };
      const https = createHttpsServer({ ...tls.serverOptions(), ...serverOpts }, onRequest);
      // before the HTTP server's own listener: a refused connection is cut before any request is read
      https.prependListener('secureConnection', (socket: TLSSocket) => {
        const reason = tls.checkAccepted(socket);
        if (reason === undefined) return;
        reject(socket, reason);
        socket.destroy();
      });
      https.on('tlsClientError', (err, socket) => reject(socket, handshakeErrorText(err)));
      server = https;
    } else server = createHttpServer(serverOpts, onRequest);
    const host = u.hostname.replace(/^\[|\]$/g, '');
    const port = u.port === '' ? (secure ? 443 : 80) : Number(u.port);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host === '' ? undefined : host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const addr = server.address() as AddressInfo;
    const urlHost = host.includes(':') ? `[${host}]` : host;
    return new PeerServer(server, `${u.protocol}//${urlHost}:${addr.port}`);
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  /** Stops listening and cuts every connection (streams are long-lived). */
  async close(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }
}
