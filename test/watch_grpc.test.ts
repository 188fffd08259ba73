// The Watch service over the wire, in process: the `etcd3` npm client's watcher, etcd's control
// responses (IDs, errors, cancel, progress), fragmentation, and a slow consumer among fast ones over
// real HTTP/2 flow control.
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Etcd3 } from 'etcd3';
import { watchableOf } from '../src/api/watch_service.js';
import { defaultConfig, type Etcd, startEtcd } from '../src/etcd.js';
import { WatchCreateRequest_FilterType, WatchRequest, WatchResponse } from '../src/gen/etcdserverpb/rpc.js';
import { Event_EventType } from '../src/gen/mvccpb/kv.js';
import { createLogger } from '../src/server/logger.js';
import { freePort, removeDir, tempDir } from './helpers/process.js';

const B = (s: string) => Buffer.from(s);

async function start(
  overrides: Partial<ReturnType<typeof defaultConfig>> = {},
): Promise<{ etcd: Etcd; url: string; dir: string }> {
  const dir = tempDir('etcd-ts-watch-');
  const peer = `http://127.0.0.1:${await freePort()}`;
  const config = {
    ...defaultConfig(),
    name: 'w',
    dataDir: join(dir, 'w.etcd'),
    listenClientUrls: [new URL('http://127.0.0.1:0')],
    advertiseClientUrls: [new URL('http://127.0.0.1:0')],
    listenPeerUrls: [new URL(peer)],
    initialAdvertisePeerUrls: [new URL(peer)],
    initialCluster: new Map([['w', [peer]]]),
    unsafeNoFsync: true,
    logLevel: 'error' as const,
    ...overrides,
  };
  const etcd = await startEtcd(config, createLogger('error'));
  return { etcd, url: etcd.clientUrls[0]!, dir };
}

/** What a test keeps of a response (values dropped, so that thousands of them stay small). */
interface Got {
  watchId: number;
  revision: number;
  created: boolean;
  canceled: boolean;
  fragment: boolean;
  cancelReason: string;
  size: number;
  events: Array<{ type: Event_EventType; key: string; modRevision: number; prev: boolean }>;
}

/** A raw Watch stream over node:http2, decoding responses as they arrive. */
class RawWatch {
  readonly got: Got[] = [];
  bytes = 0;
  private buf = Buffer.alloc(0);
  private waiters: Array<() => void> = [];
  readonly req: http2.ClientHttp2Stream;

  constructor(session: http2.ClientHttp2Session) {
    this.req = session.request({
      ':method': 'POST',
      ':path': '/etcdserverpb.Watch/Watch',
      'content-type': 'application/grpc',
      te: 'trailers',
    });
    this.req.on('data', (chunk: Buffer) => {
      this.bytes += chunk.length;
      this.buf = Buffer.concat([this.buf, chunk]);
      while (this.buf.length >= 5) {
        const len = this.buf.readUInt32BE(1);
        if (this.buf.length < 5 + len) break;
        const r = WatchResponse.decode(this.buf.subarray(5, 5 + len));
        this.got.push({
          watchId: r.watchId,
          revision: r.header!.revision,
          created: r.created,
          canceled: r.canceled,
          fragment: r.fragment,
          cancelReason: r.cancelReason,
          size: len,
          events: r.events.map((e) => ({
            type: e.type,
            key: e.kv!.key.toString(),
            modRevision: e.kv!.modRevision,
            prev: e.prevKv !== undefined,
          })),
        });
        this.buf = this.buf.subarray(5 + len);
      }
      for (const w of this.waiters.splice(0)) w();
    });
  }

  send(req: Partial<WatchRequest>): void {
    const body = WatchRequest.encode(WatchRequest.fromPartial(req)).finish();
    const frame = Buffer.alloc(5 + body.length);
    frame.writeUInt32BE(body.length, 1);
    frame.set(body, 5);
    this.req.write(frame);
  }

  async until(pred: (got: Got[]) => boolean, what: string, ms = 10_000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!pred(this.got)) {
      if (Date.now() > deadline) {
        const seen = this.got.map((r) => `${r.watchId}@${r.revision}:${r.events.length}`).join(' ');
        throw new Error(`timed out waiting for ${what}; got ${this.got.length}: ${seen.slice(-400)}`);
      }
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 50);
      });
    }
  }

  events() {
    return this.got.flatMap((r) => r.events);
  }
}

describe('Watch service', { timeout: 60_000 }, () => {
  let etcd: Etcd;
  let url: string;
  let dir: string;
  let client: Etcd3;
  let session: http2.ClientHttp2Session;
  before(async () => {
    ({ etcd, url, dir } = await start());
    client = new Etcd3({ hosts: url });
    session = http2.connect(url);
  });
  after(async () => {
    client.close();
    session.close();
    await etcd.close();
    removeDir(dir);
  });

  it('the etcd3 npm client watcher gets puts and deletes with their previous values', async () => {
    const watcher = await client.watch().prefix('svc/').withPreviousKV().create();
    const seen: string[] = [];
    watcher.on('put', (kv, prev) =>
      seen.push(`put ${kv.key}=${kv.value}${prev ? ` was ${prev.value}` : ''}`),
    );
    watcher.on('delete', (kv, prev) => seen.push(`delete ${kv.key}${prev ? ` was ${prev.value}` : ''}`));
    await client.put('svc/a').value('1');
    await client.put('other').value('x');
    await client.put('svc/a').value('2');
    await client.delete().key('svc/a');
    const deadline = Date.now() + 5000;
    while (seen.length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(seen, ['put svc/a=1', 'put svc/a=2 was 1', 'delete svc/a was 2']);
    await watcher.cancel();
  });

  it('etcd3 resumes a watch from a past revision', async () => {
    const r1 = await client.put('hist').value('a').exec();
    await client.put('hist').value('b');
    const watcher = await client.watch().key('hist').startRevision(String(r1.header.revision)).create();
    const vals: string[] = [];
    watcher.on('put', (kv) => vals.push(kv.value.toString()));
    const deadline = Date.now() + 5000;
    while (vals.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(vals, ['a', 'b']);
    await watcher.cancel();
  });

  it('answers creates, bad ranges, duplicate IDs, cancels and progress requests as etcd', async () => {
    const w = new RawWatch(session);
    w.send({ createRequest: { key: B('a'), watchId: 0 } as never });
    w.send({ createRequest: { key: B('a'), watchId: 7 } as never });
    w.send({ createRequest: { key: B('a'), watchId: 7 } as never });
    w.send({ createRequest: { key: B('b'), rangeEnd: B('a') } as never });
    w.send({ createRequest: { key: B('a'), filters: [WatchCreateRequest_FilterType.NOPUT] } as never });
    await w.until((g) => g.length === 5, 'five create responses');
    assert.deepEqual(
      w.got.map((r) => [r.watchId, r.created, r.canceled, r.cancelReason]),
      [
        [0, true, false, ''],
        [7, true, false, ''],
        [-1, true, true, 'mvcc: duplicate watch ID provided on the WatchStream'],
        [-1, true, true, 'mvcc: watcher range is empty'],
        [1, true, false, ''],
      ],
    );
    const rev = w.got[0]!.revision;
    const put = await client.put('a').value('v').exec();
    await client.delete().key('a');
    await w.until((g) => g.length === 10, 'events');
    const evs = w.got.slice(5).map((r) => [r.watchId, r.revision, r.events.map((e) => e.type)]);
    const prev = Number(put.header.revision);
    assert.ok(prev > rev);
    const byRevThenId = (x: (typeof evs)[number], y: (typeof evs)[number]) =>
      (x[1] as number) - (y[1] as number) || (x[0] as number) - (y[0] as number);
    assert.deepEqual(evs.sort(byRevThenId), [
      [0, prev, [Event_EventType.PUT]],
      [7, prev, [Event_EventType.PUT]],
      [0, prev + 1, [Event_EventType.DELETE]],
      [1, prev + 1, [Event_EventType.DELETE]],
      [7, prev + 1, [Event_EventType.DELETE]],
    ]);
    w.got.length = 0;
    w.send({ cancelRequest: { watchId: 7 } });
    w.send({ cancelRequest: { watchId: 99 } }); // unknown: no answer
    w.send({ progressRequest: {} });
    await w.until((g) => g.length === 2, 'cancel and progress responses');
    assert.deepEqual(
      w.got.map((r) => [r.watchId, r.canceled, r.revision, r.events.length]),
      [
        [7, true, prev + 1, 0],
        [-1, false, prev + 1, 0],
      ],
    );
    w.req.close();
  });

  it('fragments a revision larger than the limit only for watchers that ask', async () => {
    const small = await start({ maxRequestBytes: 64 * 1024 });
    const s = http2.connect(small.url);
    const c = new Etcd3({ hosts: small.url });
    try {
      const frag = new RawWatch(s);
      const whole = new RawWatch(s);
      frag.send({
        createRequest: { key: B('big/'), rangeEnd: B('big0'), prevKv: true, fragment: true } as never,
      });
      whole.send({ createRequest: { key: B('big/'), rangeEnd: B('big0'), prevKv: true } as never });
      await frag.until((g) => g.length === 1, 'created');
      await whole.until((g) => g.length === 1, 'created');
      for (let i = 0; i < 10; i++) await c.put(`big/${i}`).value('x'.repeat(60_000));
      // (a stream that falls behind gets several revisions merged into one catch-up response)
      const tenPuts = (g: Got[]) => g.flatMap((r) => r.events).length === 10;
      await frag.until(tenPuts, 'the puts');
      await whole.until(tenPuts, 'the puts');
      frag.got.length = 0;
      whole.got.length = 0;
      await c.delete().prefix('big/'); // 10 events of ~120 KB with their prev_kv, in one revision
      await frag.until((g) => g.length >= 1 && !g[g.length - 1]!.fragment, 'the last fragment');
      await whole.until((g) => g.length === 1, 'the delete');
      const pieces = frag.got;
      assert.ok(pieces.length >= 2, `fragmented into ${pieces.length}`);
      assert.deepEqual(
        pieces.map((p) => p.fragment),
        [...pieces.slice(1).map(() => true), false],
      );
      const limit = 64 * 1024 + 512 * 1024;
      for (const p of pieces) assert.ok(p.size < limit + 130_000);
      assert.equal(pieces.flatMap((p) => p.events).length, 10);
      assert.equal(whole.got[0]!.events.length, 10);
      assert.ok(!whole.got[0]!.fragment);
      assert.ok(pieces.every((p) => p.events.every((e) => e.prev && e.type === Event_EventType.DELETE)));
      frag.req.close();
      whole.req.close();
    } finally {
      c.close();
      s.close();
      await small.etcd.close();
      removeDir(small.dir);
    }
  });

  it('a stuck consumer delays no one, holds bounded memory, and catches up with every event', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const slowSession = http2.connect(url);
    const slow = new RawWatch(slowSession);
    const fast = [new RawWatch(session), new RawWatch(session), new RawWatch(session)];
    for (const w of [slow, ...fast])
      w.send({ createRequest: { key: B('load/'), rangeEnd: B('load0') } as never });
    for (const w of [slow, ...fast]) await w.until((g) => g.length === 1, 'created');
    const startRev = slow.got[0]!.revision;
    const value = 'v'.repeat(4000);
    const N = 3000;
    let next = 0;
    /** N puts in batches; every fast watcher must have each batch within 2 s */
    const load = async (watchers: RawWatch[]) => {
      let lagMax = 0;
      for (let i = 0; i < N; i += 50) {
        const batch = [];
        for (let j = 0; j < 50; j++)
          batch.push(
            client
              .put(`load/${next++ % 100}`)
              .value(value)
              .exec(),
          );
        const rev = Math.max(...(await Promise.all(batch)).map((r) => Number(r.header.revision)));
        const t0 = Date.now();
        for (const f of watchers) {
          await f.until((g) => (g.at(-1)?.revision ?? 0) >= rev, 'fast watchers to keep up', 2000);
        }
        lagMax = Math.max(lagMax, Date.now() - t0);
      }
      return lagMax;
    };
    // the same load twice: all streams reading, then with one stuck; the stuck one may not cost memory
    gc();
    const h0 = process.memoryUsage().heapUsed;
    await load([slow, ...fast]);
    gc();
    const h1 = process.memoryUsage().heapUsed;
    slow.req.pause(); // stop reading: HTTP/2 flow control pushes back to the server
    const before = slow.got.length;
    const lagMax = await load(fast);
    gc();
    const h2 = process.memoryUsage().heapUsed;
    const stats = watchableOf(etcd.server)!.stats();
    assert.equal(stats.blockedStreams, 1, 'the stuck stream is blocked');
    // 3000 events of 4 KB (12 MB) were due to the stuck stream: none of it may pile up in the server
    const extra = h2 - h1 - (h1 - h0);
    assert.ok(
      extra < 4 * 1024 * 1024,
      `heap grew ${((h2 - h1) / 1048576).toFixed(1)} MiB with the stuck stream, ${((h1 - h0) / 1048576).toFixed(1)} MiB without`,
    );
    assert.ok(slow.got.length - before < 100, `the stuck stream got ${slow.got.length - before} responses`);
    for (const f of fast) assert.equal(f.events().length, 2 * N);
    assert.ok(lagMax < 2000, `fast watchers lagged ${lagMax} ms`);
    slow.req.resume();
    await slow.until(
      (g) => g.flatMap((r) => r.events).length >= 2 * N,
      'the stuck stream to catch up',
      20_000,
    );
    const revs = slow.events().map((e) => e.modRevision);
    assert.deepEqual(
      revs,
      Array.from({ length: 2 * N }, (_, i) => startRev + 1 + i),
      'every event once, in order',
    );
    assert.equal(watchableOf(etcd.server)!.stats().blockedStreams, 0);
    // and it is live again
    const r = await client.put('load/x').value('live').exec();
    await slow.until((g) => g.at(-1)?.revision === Number(r.header.revision), 'a live event');
    slow.req.close();
    for (const f of fast) f.req.close();
    slowSession.close();
  });
});
