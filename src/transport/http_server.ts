// The peer listener: serves --listen-peer-urls, routing each request to the transport's /raft
// handler, then to the server's own peer endpoints (/members, /version, /leases, ...), then 404.
// HTTP now; pass `tls` (node:tls server options) for https: the seam for peer TLS.
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { createServer as createHttpsServer, type ServerOptions as HttpsServerOptions } from 'node:https';
import type { AddressInfo } from 'node:net';
import { httpError } from './http_util.js';

export type PeerHandler = (req: IncomingMessage, res: ServerResponse) => boolean;

export interface PeerServerOptions {
  /** The listen URL, e.g. http://127.0.0.1:2380 (port 0 picks a free port). */
  listenUrl: string;
  /** Handlers tried in order; the first that returns true owns the request. */
  handlers: PeerHandler[];
  tls?: HttpsServerOptions;
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
    const server: Server = secure
      ? createHttpsServer({ ...opts.tls, ...serverOpts }, onRequest)
      : createHttpServer(serverOpts, onRequest);
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
