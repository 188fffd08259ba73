// Embedded etcd: starts a member with its client listeners in this process (what bin/etcd runs).
//   const etcd = await startEtcd(config); ...; await etcd.close();

import type { IncomingMessage, ServerResponse } from 'node:http';
import http2 from 'node:http2';
import { GrpcServer } from './api/grpc/server.js';
import { handleHttp } from './api/http.js';
import { ClientListener } from './api/listener.js';
import { registerServices } from './api/services.js';
import { defaultConfig, GRPC_OVERHEAD_BYTES, type ServerConfig } from './server/config.js';
import { createLogger, type Logger } from './server/logger.js';
import { EtcdServer } from './server/server.js';
import { loadClientTls } from './server/tls_setup.js';
import { SERVER_VERSION } from './server/version.js';
import type { LoadedTls } from './transport/tls/index.js';

export { defaultConfig, type ServerConfig };

type Compat = [IncomingMessage, ServerResponse];

/** An HTTP/2 stream as the request/response pair the HTTP/1.1 handlers take. */
function http2Compat(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): Compat {
  const raw: string[] = [];
  for (const [k, v] of Object.entries(headers)) {
    if (Array.isArray(v)) for (const x of v) raw.push(k, x);
    else if (v !== undefined) raw.push(k, String(v));
  }
  const Req = http2.Http2ServerRequest as unknown as new (...a: unknown[]) => IncomingMessage;
  const Res = http2.Http2ServerResponse as unknown as new (...a: unknown[]) => ServerResponse;
  return [new Req(stream, headers, {}, raw), new Res(stream)];
}

export interface Etcd {
  readonly server: EtcdServer;
  /** The client URLs actually bound (a port 0 in the config is replaced by the real port). */
  readonly clientUrls: string[];
  /** Resolves once the member has joined its cluster's raft log and published itself (etcd's ReadyNotify). */
  readonly ready: Promise<void>;
  /** Resolves when the member stops: close(), removal from the cluster, or a fatal error. */
  readonly stopped: Promise<void>;
  close(): Promise<void>;
}

export async function startEtcd(config: ServerConfig, logger?: Logger): Promise<Etcd> {
  const log = logger ?? createLogger(config.logLevel);
  log.info(
    { 'etcd-version': SERVER_VERSION, 'data-dir': config.dataDir, name: config.name },
    'starting an etcd-ts server',
  );
  // The client ports are bound first, as etcd does: a port conflict fails before any heavy work, and
  // clients that connect while the member loads its data wait rather than being refused.
  // TLS files are read (and auto TLS certs made) first: a bad file fails before anything starts
  let clientTls: LoadedTls | undefined;
  try {
    clientTls = await loadClientTls(config, log);
  } catch (err) {
    throw new Error(`cannot set up client TLS: ${(err as Error).message}`);
  }
  const listeners: ClientListener[] = [];
  const clientUrls: string[] = [];
  try {
    for (const url of config.listenClientUrls) {
      // etcd serves an http:// URL in plaintext even when TLS is configured for the https:// ones
      const listener = new ClientListener(undefined, {
        maxConcurrentStreams: config.maxConcurrentStreams,
        tls: url.protocol === 'https:' ? clientTls : undefined,
        onReject: (fields, message) => log.warn(fields, message),
      });
      const host = url.hostname.replace(/^\[|\]$/g, '');
      const bound = await listener.listen(host === 'localhost' ? '127.0.0.1' : host, Number(url.port));
      listeners.push(listener);
      clientUrls.push(`${url.protocol}//${url.hostname}:${bound.port}`);
    }
  } catch (err) {
    await Promise.all(listeners.map((l) => l.close()));
    throw new Error(`cannot listen for client requests: ${(err as Error).message}`);
  }

  let server: EtcdServer;
  try {
    server = await EtcdServer.start(config, log);
  } catch (err) {
    await Promise.all(listeners.map((l) => l.close()));
    throw err;
  }
  const grpc = new GrpcServer({ maxReceiveBytes: config.maxRequestBytes + GRPC_OVERHEAD_BYTES });
  registerServices(grpc, server);
  for (const listener of listeners) {
    listener.serve({
      onStream: (stream, headers) => {
        if (GrpcServer.isGrpc(headers)) grpc.handle(stream, headers);
        // HTTP/2 without gRPC (curl over TLS negotiates h2): the same handlers as HTTP/1.1, through
        // Node's HTTP/2 compatibility request/response
        else handleHttp(server, ...http2Compat(stream, headers));
      },
      onHttp1: (req, res) => handleHttp(server, req, res),
    });
  }

  // Raft starts once clients can connect: etcd's milestone lines ("published local member...",
  // "enabled capabilities...") then mean what operators' scripts and etcd's test suite take them to.
  server.run();
  const ready = server.ready().then(() => {
    for (const u of clientUrls) log.info({ address: u }, 'ready to serve client requests');
  });

  const stopped = new Promise<void>((resolve) => server.onClose(resolve));
  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= (async () => {
      server.close();
      await Promise.all(listeners.map((l) => l.close()));
    })();
    return closing;
  };
  // a server that stops on its own (removed from the cluster, disk failure) releases its ports too
  void stopped.then(() => close());
  return {
    server,
    clientUrls,
    ready,
    stopped,
    close,
  };
}
