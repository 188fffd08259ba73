// Plain HTTP on the client port: /health and /version (etcd's JSON shapes).
import type { IncomingMessage, ServerResponse } from 'node:http';
import { RangeRequest } from '../gen/etcdserverpb/rpc.js';
import type { EtcdServer } from '../server/server.js';
import { CLUSTER_VERSION, SERVER_VERSION } from '../server/version.js';

const HEALTH_READ = RangeRequest.fromPartial({ key: Buffer.from('health') });

export function handleHttp(server: EtcdServer, req: IncomingMessage, res: ServerResponse): void {
  const path = (req.url ?? '/').split('?')[0];
  if (path === '/version') {
    return json(res, 200, { etcdserver: SERVER_VERSION, etcdcluster: CLUSTER_VERSION });
  }
  if (path === '/health') {
    if (req.method !== 'GET' && req.method !== 'HEAD') return json(res, 405, { message: 'Method Not Allowed' });
    let healthy = true;
    try {
      // health means a read goes through
      server.range(HEALTH_READ);
    } catch {
      healthy = false;
    }
    return json(res, healthy ? 200 : 503, { health: String(healthy) });
  }
  json(res, 404, { message: `404 page not found: ${path}` });
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
