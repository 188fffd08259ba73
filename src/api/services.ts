// gRPC services: each method translates a wire call into a call on EtcdServer, nothing more.
import {
  AuthDefinition,
  ClusterDefinition,
  KVDefinition,
  LeaseDefinition,
  MaintenanceDefinition,
  WatchDefinition,
} from '../gen/etcdserverpb/rpc.js';
import { ElectionDefinition } from '../gen/v3electionpb/v3election.js';
import { LockDefinition } from '../gen/v3lockpb/v3lock.js';
import type { EtcdServer } from '../server/server.js';
import type { GrpcServer } from './grpc/server.js';
import { registerLease } from './lease_service.js';
import { registerMaintenance } from './maintenance_service.js';
import { registerWatch } from './watch_service.js';

export function registerServices(grpc: GrpcServer, server: EtcdServer): void {
  for (const def of [
    KVDefinition,
    WatchDefinition,
    LeaseDefinition,
    ClusterDefinition,
    MaintenanceDefinition,
    AuthDefinition,
    LockDefinition,
    ElectionDefinition,
  ]) {
    grpc.declareService(def.fullName);
  }

  const kv = KVDefinition.fullName;
  const m = KVDefinition.methods;
  grpc.unary(m.range, kv, (req) => server.range(req));
  grpc.unary(m.put, kv, (req) => server.put(req));
  grpc.unary(m.deleteRange, kv, (req) => server.deleteRange(req));
  grpc.unary(m.txn, kv, (req) => server.txn(req));
  grpc.unary(m.compact, kv, (req) => server.compact(req));

  registerLease(grpc, server);

  const cluster = ClusterDefinition.fullName;
  // etcd's Cluster responses carry no revision
  const cm = ClusterDefinition.methods;
  const chdr = () => server.header(0);
  grpc.unary(cm.memberList, cluster, () => ({ header: chdr(), members: server.members() }));
  grpc.unary(cm.memberAdd, cluster, async (req) => {
    const r = await server.reconfig.memberAdd(req.peerURLs, req.isLearner);
    return { header: chdr(), member: r.member, members: r.members };
  });
  grpc.unary(cm.memberRemove, cluster, async (req) => ({
    header: chdr(),
    members: await server.reconfig.memberRemove(req.ID),
  }));
  grpc.unary(cm.memberUpdate, cluster, async (req) => ({
    header: chdr(),
    members: await server.reconfig.memberUpdate(req.ID, req.peerURLs),
  }));
  grpc.unary(cm.memberPromote, cluster, async (req) => ({
    header: chdr(),
    members: await server.reconfig.memberPromote(req.ID),
  }));

  registerMaintenance(grpc, server);

  registerWatch(grpc, server);
}
