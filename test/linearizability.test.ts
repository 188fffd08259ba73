// Linearizability of a three-member cluster under crashes and a partition: concurrent clients do
// linearizable reads, puts and compare-and-swap txns on a few keys through every member while members
// are killed with SIGKILL and restarted (and one is cut off by the peer proxy). The recorded history,
// with unknown outcomes for requests that failed or timed out, is checked with the Porcupine-style
// checker in helpers/porcupine.ts; every acknowledged write must be readable at its revision afterwards.
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { test } from 'node:test';
import type { Etcd3 } from 'etcd3';
import { Cluster, sleep } from './helpers/cluster.js';
import { checkOperations, type KvOperation, kvModel } from './helpers/porcupine.js';

const KEYS = ['lin/a', 'lin/b', 'lin/c'];
const WORKERS = 8;
const OP_DEADLINE_MS = 1500;

/** Errors that prove the request never reached a server (so it certainly did not take effect). */
const NOT_SENT = /ECONNREFUSED|No connection established|failed to connect/i;

test('linearizable reads, writes and CAS under kill -9, restarts and a partition', {
  timeout: 120_000,
}, async () => {
  const c = await Cluster.create();
  const history: KvOperation[] = [];
  const acked: { key: string; value: string; revision: string }[] = [];
  const clients = new Map<string, Etcd3>();
  const clientOf = (name: string) => {
    let cl = clients.get(name);
    if (!cl) clients.set(name, (cl = c.noRetryClient(name)));
    return cl;
  };
  let stop = false;
  let notSent = 0;
  try {
    await c.waitForLeader();
    const initial: Record<string, string> = {};
    for (const k of KEYS) {
      initial[k] = `${k}-init`;
      await c.client().put(k).value(initial[k]).exec();
    }

    const worker = async (w: number) => {
      // the last value this worker read per key: what its CAS expects
      const seen = new Map<string, string | null>(KEYS.map((k) => [k, initial[k]!]));
      let n = 0;
      let rnd = w * 7919 + 1;
      const rand = () => (rnd = (rnd * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
      while (!stop) {
        const up = c.running();
        if (up.length === 0) {
          await sleep(20);
          continue;
        }
        const member = up[Math.floor(rand() * up.length)]!.name;
        const client = clientOf(member);
        const key = KEYS[Math.floor(rand() * KEYS.length)]!;
        const r = rand();
        const opts = { deadline: new Date(Date.now() + OP_DEADLINE_MS) };
        const op: KvOperation = { client: w, input: { op: 'get', key }, output: undefined, call: 0, ret: 0 };
        try {
          if (r < 0.4) {
            op.call = performance.now();
            const v = await client.get(key).options(opts).string();
            op.ret = performance.now();
            op.output = { value: v };
            seen.set(key, v);
          } else if (r < 0.7) {
            const value = `w${w}-${n++}`;
            op.input = { op: 'put', key, value };
            op.call = performance.now();
            const res = await client.put(key).value(value).options(opts).exec();
            op.ret = performance.now();
            op.output = { ok: true };
            acked.push({ key, value, revision: String(res.header.revision) });
          } else {
            const value = `w${w}-${n++}`;
            const expect = seen.get(key) ?? null;
            op.input = { op: 'cas', key, expect, value };
            op.call = performance.now();
            const res = await client
              .if(key, 'Value', '==', expect ?? '')
              .then(client.put(key).value(value))
              .options(opts)
              .commit();
            op.ret = performance.now();
            op.output = { succeeded: res.succeeded };
            if (res.succeeded) {
              acked.push({ key, value, revision: String(res.header.revision) });
              seen.set(key, value);
            }
          }
          history.push(op);
        } catch (err) {
          if (NOT_SENT.test((err as Error).message)) {
            notSent++;
          } else {
            op.output = undefined; // unknown: it may or may not have taken effect
            history.push(op);
          }
          await sleep(50);
        }
      }
    };
    const workers = Array.from({ length: WORKERS }, (_, w) => worker(w));

    // the nemesis: kill -9 the leader, then a follower, then the leader again; then cut one off
    const events: string[] = [];
    for (let round = 0; round < 4; round++) {
      await sleep(1200);
      const leader = await c.waitForLeader(10_000);
      if (round === 3) {
        c.proxy!.isolate(leader);
        events.push(`isolate ${leader}`);
        await sleep(2000);
        c.proxy!.healAll();
      } else {
        const victim = round % 2 === 0 ? leader : c.members.find((m) => m.name !== leader)!.name;
        await c.kill(victim);
        events.push(`kill ${victim}${victim === leader ? ' (leader)' : ''}`);
        await sleep(800);
        await c.start(victim);
      }
    }
    await sleep(1500);
    stop = true;
    await Promise.all(workers);
    await c.waitForLeader(10_000);

    // final linearizable reads of every key through every member belong to the history too
    for (const m of c.members) {
      for (const key of KEYS) {
        const call = performance.now();
        const v = await clientOf(m.name)
          .get(key)
          .options({ deadline: new Date(Date.now() + 5000) })
          .string();
        history.push({
          client: 1000,
          input: { op: 'get', key },
          output: { value: v },
          call,
          ret: performance.now(),
        });
      }
    }

    const unknown = history.filter((o) => o.output === undefined).length;
    const stats = `${history.length} ops (${unknown} unknown, ${notSent} not sent), ${acked.length} acknowledged writes; ${events.join(', ')}`;
    assert.ok(acked.length > 200, `too few acknowledged writes: ${stats}`);
    const t0 = Date.now();
    const result = checkOperations(kvModel(initial), history, 60_000);
    const checkMs = Date.now() - t0;
    assert.deepEqual(result, { result: 'ok' }, `history is not linearizable: ${stats}`);

    // no acknowledged write is lost: each is readable at its revision, as written
    const reader = c.client();
    for (let i = 0; i < acked.length; i += 50) {
      await Promise.all(
        acked.slice(i, i + 50).map(async (a) => {
          const res = await reader.kv.range({ key: Buffer.from(a.key), revision: a.revision });
          const kv = res.kvs[0];
          assert.ok(kv, `acknowledged ${a.key}=${a.value} at revision ${a.revision} is gone`);
          assert.equal(kv.value.toString(), a.value, `${a.key} at revision ${a.revision}`);
          assert.equal(String(kv.mod_revision), a.revision, `${a.key}=${a.value}`);
        }),
      );
    }
    await c.waitHashKVAgree(20_000);
    console.log(`linearizability: ${stats}; checked in ${checkMs} ms`);
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${c.logs(20)}`);
  } finally {
    stop = true;
    await c.close();
  }
});

test('the checker catches a real stale read: serializable reads from a partitioned member', {
  timeout: 60_000,
}, async () => {
  // the same recording, but reading serializably from a member cut off from the majority: the
  // history must be rejected, so the check above can fail on real histories
  const c = await Cluster.create();
  try {
    const leader = await c.waitForLeader();
    const isolated = c.members.find((m) => m.name !== leader)!.name;
    const history: KvOperation[] = [];
    const record = async (
      client: number,
      input: KvOperation['input'],
      run: () => Promise<KvOperation['output']>,
    ) => {
      const call = performance.now();
      const output = await run();
      history.push({ client, input, output, call, ret: performance.now() });
    };
    const majority = c.noRetryClient(leader);
    const stale = c.noRetryClient(isolated);
    await record(0, { op: 'put', key: 'stale', value: 'one' }, async () => {
      await majority.put('stale').value('one').exec();
      return { ok: true };
    });
    await c.waitHashKVAgree();
    c.proxy!.isolate(isolated);
    await record(0, { op: 'put', key: 'stale', value: 'two' }, async () => {
      await majority
        .put('stale')
        .value('two')
        .options({ deadline: new Date(Date.now() + 5000) })
        .exec();
      return { ok: true };
    });
    await record(1, { op: 'get', key: 'stale' }, async () => ({
      value: await stale.get('stale').serializable(true).string(),
    }));
    assert.equal(
      (history[2]!.output as { value: string }).value,
      'one',
      'the isolated member saw the new write',
    );
    assert.equal(checkOperations(kvModel(), history).result, 'illegal');
    c.proxy!.healAll();
  } finally {
    await c.close();
  }
});
