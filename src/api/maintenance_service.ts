// Maintenance gRPC service (Status, Hash, HashKV, Alarm, Defragment, Snapshot, MoveLeader) and the /health
// verdict on the client port. Wire <-> server translation only: the work is in src/server/maintenance.ts.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { MaintenanceDefinition, type SnapshotResponse } from '../gen/etcdserverpb/rpc.js';
import type { EtcdServer } from '../server/server.js';
import type { GrpcServer, ServerStream } from './grpc/server.js';

export function registerMaintenance(grpc: GrpcServer, server: EtcdServer): void {
  const svc = MaintenanceDefinition.fullName;
  const m = MaintenanceDefinition.methods;
  grpc.unary(m.status, svc, () => server.status());
  grpc.unary(m.hash, svc, () => ({
    header: server.header(server.store.currentRevision),
    hash: server.store.hash(),
  }));
  grpc.unary(m.hashKV, svc, (req) => {
    const h = server.store.hashKV(req.revision);
    return {
      header: server.header(server.store.currentRevision),
      hash: h.hash,
      compactRevision: h.compactRevision,
      hashRevision: h.hashRevision,
    };
  });
  // etcd answers Alarm, Defragment and Snapshot without a response header
  grpc.unary(m.alarm, svc, (req) => server.maintenance.alarm(req));
  grpc.unary(m.defragment, svc, async () => {
    await server.maintenance.defragment();
    return { header: undefined };
  });
  grpc.serverStream(m.snapshot, svc, (_req, stream) => void sendSnapshot(server, stream));
  grpc.unary(m.moveLeader, svc, async (req) => {
    await server.reconfig.moveLeader(req.targetID);
    return { header: server.header(server.store.currentRevision) };
  });
}

/** Streams the snapshot as etcd does: 32 KiB blobs with remaining_bytes, then the sha256 (remaining 0). */
async function sendSnapshot(server: EtcdServer, stream: ServerStream<SnapshotResponse>): Promise<void> {
  let snap: Awaited<ReturnType<EtcdServer['maintenance']['openSnapshot']>> | undefined;
  try {
    snap = await server.maintenance.openSnapshot();
    let drained: (() => void) | undefined;
    stream.onDrain(() => {
      const d = drained;
      drained = undefined;
      d?.();
    });
    const aborted = new Promise<void>((resolve) => stream.signal.addEventListener('abort', () => resolve()));
    let sent = 0;
    const start = performance.now();
    for await (const chunk of snap.chunks()) {
      if (stream.ended || stream.signal.aborted) return;
      const isDb = sent < snap.size;
      if (isDb) sent += chunk.length;
      const ok = stream.send({ header: undefined, remainingBytes: isDb ? snap.size - sent : 0, blob: chunk });
      if (!ok) {
        if (stream.ended || stream.signal.aborted) return;
        await Promise.race([new Promise<void>((resolve) => (drained = resolve)), aborted]);
      }
    }
    server.log.info(
      { 'total-bytes': snap.size, took: `${Math.round(performance.now() - start)}ms` },
      'successfully sent database snapshot to client',
    );
    stream.end();
  } catch (err) {
    server.log.warn({ error: String((err as Error).message ?? err) }, 'failed to send database snapshot');
    stream.end(err);
  } finally {
    await snap?.close();
  }
}

/**
 * GET /health as etcd 3.4 answers it: 200 {"health":"true"}; 503 {"health":"false"} (written by Go's
 * http.Error: text/plain, trailing newline) while an alarm is raised (unless listed in ?exclude=) or a read
 * fails; 405 for other methods.
 */
export function handleHealth(server: EtcdServer, req: IncomingMessage, res: ServerResponse): void {
  if (req.method !== 'GET') {
    const body = 'Method Not Allowed\n';
    res.writeHead(405, {
      allow: 'GET',
      'content-type': 'text/plain; charset=utf-8',
      'x-content-type-options': 'nosniff',
      'content-length': Buffer.byteLength(body),
    });
    res.end(body);
    return;
  }
  const url = new URL(req.url ?? '/', 'http://localhost');
  const exclude = new Set(url.searchParams.getAll('exclude').filter((s) => s !== ''));
  const verdict = server.maintenance.health(exclude);
  if (!verdict.health) server.log.warn({ reason: verdict.reason }, '/health error');
  const body = verdict.health ? '{"health":"true"}' : '{"health":"false"}\n';
  const headers: Record<string, string | number> = {
    'content-type': 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(body),
  };
  if (!verdict.health) headers['x-content-type-options'] = 'nosniff';
  res.writeHead(verdict.health ? 200 : 503, headers);
  res.end(body);
}
