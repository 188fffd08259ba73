// Embedded etcd: starts a member with its client listeners in this process (what bin/etcd runs).
//   const etcd = await startEtcd(config); ...; await etcd.close();
import { ClientListener } from './api/listener.js';
import { GrpcServer } from './api/grpc/server.js';
import { handleHttp } from './api/http.js';
import { registerServices } from './api/services.js';
import { type ServerConfig, GRPC_OVERHEAD_BYTES, defaultConfig } from './server/config.js';
import { createLogger, type Logger } from './server/logger.js';
import { idToHex } from './server/member_id.js';
import { EtcdServer } from './server/server.js';
import { CAPABILITY_VERSION, SERVER_VERSION } from './server/version.js';

export { defaultConfig, type ServerConfig };

export interface Etcd {
  readonly server: EtcdServer;
  /** The client URLs actually bound (a port 0 in the config is replaced by the real port). */
  readonly clientUrls: string[];
  close(): Promise<void>;
}

export async function startEtcd(config: ServerConfig, logger?: Logger): Promise<Etcd> {
  const log = logger ?? createLogger(config.logLevel);
  log.info(
    { 'etcd-version': SERVER_VERSION, 'data-dir': config.dataDir, name: config.name },
    'starting an etcd-ts server',
  );
  const server = EtcdServer.open(config, log);
  const grpc = new GrpcServer({ maxReceiveBytes: config.maxRequestBytes + GRPC_OVERHEAD_BYTES });
  registerServices(grpc, server);

  const listeners: ClientListener[] = [];
  const clientUrls: string[] = [];
  try {
    for (const url of config.listenClientUrls) {
      const listener = new ClientListener(
        {
          onStream: (stream, headers) => {
            if (GrpcServer.isGrpc(headers)) grpc.handle(stream, headers);
            else {
              stream.respond({ ':status': 404, 'content-type': 'text/plain' });
              stream.end('etcd-ts: HTTP/2 without gRPC is not served yet; use HTTP/1.1\n');
            }
          },
          onHttp1: (req, res) => handleHttp(server, req, res),
        },
        { maxConcurrentStreams: config.maxConcurrentStreams },
      );
      const host = url.hostname.replace(/^\[|\]$/g, '');
      const bound = await listener.listen(host === 'localhost' ? '127.0.0.1' : host, Number(url.port));
      listeners.push(listener);
      clientUrls.push(`${url.protocol}//${url.hostname}:${bound.port}`);
    }
  } catch (err) {
    await Promise.all(listeners.map((l) => l.close()));
    server.close();
    throw new Error(`cannot listen for client requests: ${(err as Error).message}`);
  }

  // etcd's milestone lines: operators' scripts and etcd's test suite wait for these
  log.info(
    { 'local-member-id': idToHex(server.memberId), 'cluster-id': idToHex(server.clusterId) },
    'became leader and won election',
  );
  log.info(
    {
      'local-member-id': idToHex(server.memberId),
      'local-member-attributes': `{Name:${config.name} ClientURLs:[${config.advertiseClientUrls.map((u) => `${u.protocol}//${u.host}`).join(' ')}]}`,
      'request-path': `/0/members/${idToHex(server.memberId)}/attributes`,
      'cluster-id': idToHex(server.clusterId),
    },
    'published local member to cluster through raft',
  );
  log.info({ 'cluster-version': CAPABILITY_VERSION }, 'enabled capabilities for version');
  for (const u of clientUrls) log.info({ address: u }, 'ready to serve client requests');

  let closing: Promise<void> | undefined;
  return {
    server,
    clientUrls,
    close() {
      closing ??= (async () => {
        await Promise.all(listeners.map((l) => l.close()));
        server.close();
      })();
      return closing;
    },
  };
}
