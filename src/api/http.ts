// Plain HTTP on the client port: /health and /version (etcd's JSON shapes).
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { EtcdServer } from '../server/server.js';
import { CLUSTER_VERSION, SERVER_VERSION } from '../server/version.js';
import { handleHealth } from './maintenance_service.js';

export function handleHttp(server: EtcdServer, req: IncomingMessage, res: ServerResponse): void {
  const path = (req.url ?? '/').split('?')[0];
  if (path === '/version') {
    json(res, 200, { etcdserver: SERVER_VERSION, etcdcluster: CLUSTER_VERSION });
  } else if (path === '/health') {
    handleHealth(server, req, res); // alarms and a read, as etcd's
  } else {
    json(res, 404, { message: `404 page not found: ${path}` });
  }
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
