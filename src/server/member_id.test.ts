import assert from 'node:assert/strict';
import { test } from 'node:test';
import { clusterId, idToHex, memberId } from './member_id.js';

test('member and cluster IDs match what etcd 3.4 derives from the same flags', () => {
  // etcd's defaults: --initial-cluster default=http://localhost:2380 --initial-cluster-token etcd-cluster
  const m = memberId(['http://localhost:2380'], 'etcd-cluster');
  assert.equal(idToHex(m), '8e9e05c52164694d');
  assert.equal(idToHex(clusterId([m])), 'cdf818194e3a8c32');
  // observed from a real etcd 3.4.23 started with --name compat on peer port 23002
  const c = memberId(['http://127.0.0.1:23002'], 'etcd-cluster');
  assert.equal(idToHex(c), 'a7be38d986537a7c');
  assert.equal(idToHex(clusterId([c])), '4e6e4b22d557efe3');
});

test('peer URL order does not change a member ID', () => {
  assert.equal(memberId(['http://b:1', 'http://a:1'], 't'), memberId(['http://a:1', 'http://b:1'], 't'));
});
