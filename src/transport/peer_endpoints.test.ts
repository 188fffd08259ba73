import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LeaseTimeToLiveResponse } from '../gen/etcdserverpb/rpc.js';
import { PeerServer } from './http_server.js';
import {
  createPeerEndpointsHandler,
  fetchMembers,
  fetchVersion,
  leaseTimeToLiveHttp,
  membersJson,
  PeerHttpError,
  parseMembersJson,
  renewLeaseHttp,
} from './peer_endpoints.js';

const members = [
  {
    id: 0xfedcba9876543210n,
    name: 'infra0',
    peerURLs: ['http://10.0.1.10:2380'],
    clientURLs: ['http://10.0.1.10:2379'],
  },
  { id: 0x10n, name: '', peerURLs: ['http://10.0.1.11:2380'], clientURLs: [], isLearner: true },
];

test('members JSON: etcd layout, 64-bit IDs exact', () => {
  const text = membersJson(members);
  assert.equal(
    text,
    '[{"id":18364758544493064720,"peerURLs":["http://10.0.1.10:2380"],"name":"infra0","clientURLs":["http://10.0.1.10:2379"]},' +
      '{"id":16,"peerURLs":["http://10.0.1.11:2380"],"isLearner":true}]\n',
  );
  assert.deepEqual(parseMembersJson(text), members);
});

test('peer endpoints served and read back', async () => {
  const server = await PeerServer.listen({
    listenUrl: 'http://127.0.0.1:0',
    handlers: [
      createPeerEndpointsHandler({
        clusterId: () => 0xabcn,
        members: () => members,
        clusterVersion: () => undefined,
        renewLease: async (id) => {
          if (id === 7n) return 42;
          throw new PeerHttpError(404, 'lease not found');
        },
        leaseTimeToLive: async (id, keys) =>
          LeaseTimeToLiveResponse.fromPartial({
            ID: id,
            TTL: 5,
            grantedTTL: 10,
            keys: keys ? [Buffer.from('k')] : [],
          }),
      }),
    ],
  });
  try {
    const got = await fetchMembers(server.url);
    assert.equal(got.clusterId, 0xabcn);
    assert.deepEqual(got.members, members);
    assert.deepEqual(await fetchVersion(server.url), { etcdserver: '3.4.23', etcdcluster: 'not_decided' });
    assert.equal(await renewLeaseHttp(server.url, 7n), 42);
    await assert.rejects(renewLeaseHttp(server.url, 8n), /lease not found/);
    const ttl = await leaseTimeToLiveHttp(server.url, 9n, true);
    assert.equal(ttl.grantedTTL, 10);
    assert.deepEqual(ttl.keys, [Buffer.from('k')]);
    assert.equal((await fetch(`${server.url}/nothing`)).status, 404);
  } finally {
    await server.close();
  }
});
