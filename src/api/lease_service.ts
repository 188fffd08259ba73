// Lease gRPC service: grant/revoke go through the log; keepalives and TTL reads are answered here.
import { LeaseDefinition } from '../gen/etcdserverpb/rpc.js';
import type { EtcdServer } from '../server/server.js';
import type { GrpcServer } from './grpc/server.js';

export function registerLease(grpc: GrpcServer, server: EtcdServer): void {
  const svc = LeaseDefinition.fullName;
  const m = LeaseDefinition.methods;
  grpc.unary(m.leaseGrant, svc, (req) => server.leases.grant(req));
  grpc.unary(m.leaseRevoke, svc, (req) => server.leases.revoke(req));
  grpc.unary(m.leaseTimeToLive, svc, (req) => server.leases.timeToLive(req));
  grpc.unary(m.leaseLeases, svc, () => server.leases.list());
  grpc.bidi(m.leaseKeepAlive, svc, (stream) => {
    stream.onMessage((req) => {
      server.leases.renew(req.ID).then(
        (ttl) => stream.send({ header: server.header(server.store.currentRevision), ID: req.ID, TTL: ttl }),
        (err) => stream.end(err),
      );
    });
    stream.onHalfClose(() => stream.end());
  });
}
