// Lease gRPC service: grant/revoke go through the log; keepalives and TTL reads are answered here.
import { LeaseDefinition } from '../gen/etcdserverpb/rpc.js';
import type { EtcdServer } from '../server/server.js';
import type { GrpcServer } from './grpc/server.js';

export function registerLease(grpc: GrpcServer, server: EtcdServer): void {
  const svc = LeaseDefinition.fullName;
  const m = LeaseDefinition.methods;
  grpc.unary(m.leaseGrant, svc, (req) => server.leaseGrant(req));
  grpc.unary(m.leaseRevoke, svc, (req) => server.leaseRevoke(req));
  grpc.unary(m.leaseTimeToLive, svc, (req) => server.leaseTimeToLive(req));
  grpc.unary(m.leaseLeases, svc, () => server.leaseLeases());
  grpc.bidi(m.leaseKeepAlive, svc, (stream) => {
    stream.onMessage((req) => {
      server.leaseRenew(req.ID).then(
        (ttl) => stream.send({ header: server.header(server.store.currentRevision), ID: req.ID, TTL: ttl }),
        (err) => stream.end(err),
      );
    });
    stream.onHalfClose(() => stream.end());
  });
}
