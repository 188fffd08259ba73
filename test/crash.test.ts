// Durability: a member writing under load is killed with SIGKILL; after a restart on the same data
// dir every acknowledged write is there, and the store as of an acknowledged revision reads the same
// as before the kill.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Etcd3 } from 'etcd3';
import { removeDir, startEtcdProcess, tempDir } from './helpers/process.js';

test('acknowledged writes survive kill -9', { timeout: 60_000 }, async () => {
  const dir = tempDir();
  const dataDir = `${dir}/crash.etcd`;
  let proc = await startEtcdProcess({ name: 'crash', dataDir });
  const clientPort = Number(new URL(proc.clientUrl).port);
  const peerPort = Number(new URL(proc.peerUrl).port);
  let client = new Etcd3({ hosts: proc.clientUrl });
  const acked = new Map<string, string>();
  let highestAckedRev = 0;
  try {
    let stop = false;
    let seq = 0;
    const writer = async () => {
      while (!stop) {
        const n = seq++;
        const key = `crash/${n % 500}`;
        const value = `v${n}`;
        try {
          const res = await client.put(key).value(value).exec();
          acked.set(key, value);
          highestAckedRev = Math.max(highestAckedRev, Number(res.header.revision));
        } catch {
          return; // the server is gone
        }
      }
    };
    const writers = Array.from({ length: 16 }, writer);
    // run the load for 1.5 s, and on a busy machine until 100 writes are acknowledged (at most 10 s)
    const loadStart = Date.now();
    while (Date.now() - loadStart < 1500 || (acked.size < 100 && Date.now() - loadStart < 10_000)) {
      await new Promise((r) => setTimeout(r, 100));
    }
    // hash a revision every write up to which is acknowledged, while writes continue
    const hashedRev = highestAckedRev;
    const snapshotAt = async (c: Etcd3) => {
      const res = await c.kv.range({
        key: Buffer.from('crash/'),
        range_end: Buffer.from('crash0'),
        revision: hashedRev,
      });
      return res.kvs.map((kv) => `${kv.key}@${kv.mod_revision}/${kv.version}=${kv.value}`).join('\n');
    };
    const before = await snapshotAt(client);
    await new Promise((r) => setTimeout(r, 300));
    await proc.kill();
    stop = true;
    await Promise.all(writers);
    client.close();
    assert.ok(acked.size > 50, `only ${acked.size} writes were acknowledged before the kill`);

    proc = await startEtcdProcess({ name: 'crash', dataDir, clientPort, peerPort });
    client = new Etcd3({ hosts: proc.clientUrl });
    const all = await client.getAll().prefix('crash/').strings();
    for (const [key, value] of acked) {
      // a later unacknowledged write to the same key may have landed too, so compare by sequence
      const got = all[key];
      assert.ok(got !== undefined, `acknowledged key ${key} is missing after restart`);
      assert.ok(
        Number(got.slice(1)) >= Number(value.slice(1)),
        `${key}: acknowledged ${value}, found older ${got}`,
      );
    }
    assert.equal(
      await snapshotAt(client),
      before,
      `the store as of revision ${hashedRev} changed across the crash`,
    );
  } finally {
    client.close();
    await proc.kill();
    removeDir(dir);
  }
});
