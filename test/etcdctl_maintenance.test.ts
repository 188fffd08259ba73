// The real etcdctl 3.4 dials its Maintenance connections (endpoint status/hashkv, snapshot, defrag,
// alarm) with the target "passthrough:///http://host:port", so grpc-go sends the :authority
// "http://host:port", which Node's HTTP/2 server rejects unless the client port repairs it.
import assert from 'node:assert/strict';
import { dirname } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type EtcdProcess, etcdctl, hasEtcdctl, removeDir, startEtcdProcess } from './helpers/process.js';

const skip = hasEtcdctl() ? false : 'etcdctl not installed (set ETCDCTL or install /usr/bin/etcdctl)';

describe('etcdctl maintenance commands against bin/etcd', { skip }, () => {
  let etcd: EtcdProcess;

  before(async () => {
    etcd = await startEtcdProcess();
  });

  after(async () => {
    await etcd?.stop();
    if (etcd) removeDir(dirname(etcd.dataDir));
  });

  it('endpoint status -w json', async () => {
    const r = await etcdctl(etcd.clientUrl, ['endpoint', 'status', '-w', 'json']);
    assert.equal(r.code, 0, r.stderr);
    const [status] = JSON.parse(r.stdout);
    assert.equal(status.Endpoint, etcd.clientUrl);
    assert.equal(status.Status.version, '3.4.23');
    assert.ok(status.Status.header.member_id);
    assert.equal(status.Status.leader, status.Status.header.member_id);
  });

  it('endpoint hashkv', async () => {
    assert.equal((await etcdctl(etcd.clientUrl, ['put', 'k', 'v'])).code, 0);
    const r = await etcdctl(etcd.clientUrl, ['endpoint', 'hashkv', '-w', 'json']);
    assert.equal(r.code, 0, r.stderr);
    const [hash] = JSON.parse(r.stdout);
    assert.equal(hash.Endpoint, etcd.clientUrl);
    assert.equal(typeof hash.HashKV.hash, 'number');
    assert.ok(hash.HashKV.header.revision >= 2);
  });

  it('get and put on the ordinary connection still work', async () => {
    assert.equal((await etcdctl(etcd.clientUrl, ['put', 'foo', 'bar'])).code, 0);
    const r = await etcdctl(etcd.clientUrl, ['get', 'foo']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'foo\nbar\n');
  });

  it('endpoint status and get, repeatedly and concurrently', async () => {
    const runs = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        etcdctl(etcd.clientUrl, i % 2 ? ['get', 'foo'] : ['endpoint', 'status', '-w', 'json']),
      ),
    );
    for (const r of runs) assert.equal(r.code, 0, r.stderr);
  });
});
