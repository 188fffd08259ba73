import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { KeyValue } from '../../gen/mvccpb/kv.js';
import { decodeRevisionKey, encodeRevisionKey } from './etcd-schema.js';
import {
  BboltError,
  FREELIST_PAGE,
  LEAF_PAGE,
  PAGE_HEADER_SIZE,
  PGID_NO_FREELIST,
  readPageHeader,
  writeMetaPage,
  writePageHeader,
} from './format.js';
import { BboltReader } from './reader.js';
import { splitSha256Trailer, withSha256Trailer } from './trailer.js';
import {
  type BucketEntry,
  type BucketInput,
  bboltStream,
  writeBboltBuffer,
  writeBboltFile,
} from './writer.js';

/** A model of a bbolt db: nested maps, sorted when written. */
interface ModelBucket {
  pairs: Map<string, Buffer>; // hex key -> value
  buckets: Map<string, ModelBucket>; // hex name -> bucket
}

function toInput(name: Buffer, m: ModelBucket): BucketInput {
  const entries: [string, BucketEntry][] = [];
  for (const [k, v] of m.pairs) entries.push([k, [Buffer.from(k, 'hex'), v]]);
  for (const [k, b] of m.buckets) entries.push([k, toInput(Buffer.from(k, 'hex'), b)]);
  entries.sort((a, b) => Buffer.compare(Buffer.from(a[0], 'hex'), Buffer.from(b[0], 'hex')));
  return { name, entries: entries.map((e) => e[1]) };
}

function assertMatches(r: BboltReader, path: Buffer[], m: ModelBucket): void {
  const items = [...r.items(path)];
  assert.equal(items.length, m.pairs.size + m.buckets.size);
  for (const it of items) {
    const hex = it.key.toString('hex');
    if (it.isBucket) {
      assert.ok(m.buckets.has(hex), `unexpected bucket ${hex}`);
      assertMatches(r, [...path, it.key], m.buckets.get(hex)!);
    } else {
      assert.ok(m.pairs.get(hex)?.equals(it.value), `value mismatch at ${hex}`);
      assert.ok(r.get(path, it.key)?.equals(it.value));
    }
  }
}

const keyArb = fc.uint8Array({ minLength: 1, maxLength: 40 });
const valueArb = fc.oneof(
  { weight: 8, arbitrary: fc.uint8Array({ maxLength: 200 }) },
  { weight: 1, arbitrary: fc.uint8Array({ minLength: 3000, maxLength: 20000 }) },
);
const pairsArb = fc.uniqueArray(fc.tuple(keyArb, valueArb), {
  maxLength: 300,
  selector: (t) => Buffer.from(t[0]).toString('hex'),
});
const leafBucketArb = pairsArb.map(
  (pairs): ModelBucket => ({
    pairs: new Map(pairs.map(([k, v]) => [Buffer.from(k).toString('hex'), Buffer.from(v)])),
    buckets: new Map(),
  }),
);
const bucketArb = fc
  .tuple(
    leafBucketArb,
    fc.uniqueArray(fc.tuple(keyArb, leafBucketArb), {
      maxLength: 3,
      selector: (t) => Buffer.from(t[0]).toString('hex'),
    }),
  )
  .map(([b, nested]) => {
    for (const [k, child] of nested) {
      const hex = Buffer.from(k).toString('hex');
      b.pairs.delete(hex);
      b.buckets.set(hex, child);
    }
    return b;
  });
const dbArb = fc.uniqueArray(fc.tuple(keyArb, bucketArb), {
  maxLength: 5,
  selector: (t) => Buffer.from(t[0]).toString('hex'),
});

describe('bbolt writer -> reader round trip', () => {
  it('random buckets, nested buckets, large values (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        dbArb,
        fc.constantFrom(1024, 4096, 8192),
        fc.double({ min: 0.1, max: 1, noNaN: true }),
        fc.boolean(),
        async (db, pageSize, fillPercent, inlineBuckets) => {
          const root: ModelBucket = { pairs: new Map(), buckets: new Map() };
          for (const [k, b] of db) root.buckets.set(Buffer.from(k).toString('hex'), b);
          const input = toInput(Buffer.from('root'), root).entries as BucketInput[];
          const buf = await writeBboltBuffer(input, { pageSize, fillPercent, inlineBuckets });
          assert.equal(buf.length % pageSize, 0);
          const r = BboltReader.open(buf);
          assert.equal(r.pageSize, pageSize);
          assert.deepEqual(r.check(), []);
          assertMatches(r, [], root);
        },
      ),
      { numRuns: 60 },
    );
  });

  it('100k etcd-style revision keys, ranges and point reads', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'bbolt-test-'));
    try {
      const n = 100_000;
      function* revs(): Generator<[Buffer, Buffer]> {
        for (let i = 1; i <= n; i++) {
          const key = Buffer.from(`/registry/pods/default/pod-${i % 5000}`);
          const kv = KeyValue.encode({
            key,
            createRevision: i,
            modRevision: i + 1,
            version: 1,
            value: Buffer.alloc(i % 97, i & 0xff),
            lease: 0n,
          }).finish();
          yield [encodeRevisionKey(i + 1, 0), Buffer.from(kv)];
        }
      }
      const path = join(dir, 'db');
      const res = await writeBboltFile(path, [
        { name: 'meta', entries: [['consistent_index', Buffer.alloc(8)]] },
        { name: 'key', entries: revs() },
      ]);
      assert.equal(res.pairs, n + 1);
      const r = BboltReader.open(path);
      try {
        assert.deepEqual(r.check(), []);
        assert.deepEqual(
          r.bucketNames().map((b) => b.toString()),
          ['key', 'meta'],
        );
        let count = 0;
        let prev = 0n;
        for (const [k, v] of r.entries('key')) {
          const rev = decodeRevisionKey(k);
          assert.ok(rev.main > prev);
          prev = rev.main;
          if (count % 9973 === 0) assert.equal(KeyValue.decode(v).modRevision, Number(rev.main));
          count++;
        }
        assert.equal(count, n);
        const kv = KeyValue.decode(r.get('key', encodeRevisionKey(50_001))!);
        assert.equal(kv.createRevision, 50_000);
        const range = [...r.entries('key', { gte: encodeRevisionKey(777), lt: encodeRevisionKey(1777) })];
        assert.equal(range.length, 1000);
        assert.equal(decodeRevisionKey(range[0]![0]).main, 777n);
        assert.equal(decodeRevisionKey(range.at(-1)![0]).main, 1776n);
        assert.equal(r.get('key', encodeRevisionKey(n + 5)), undefined);
        // In-memory read agrees with the file read.
        const m = BboltReader.open(await readFile(path));
        assert.equal(m.count('key'), n);
      } finally {
        r.close();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('large values span overflow pages', async () => {
    const big = Buffer.alloc(5 * 1024 * 1024 + 123);
    for (let i = 0; i < big.length; i += 4096) big[i] = i % 251;
    const buf = await writeBboltBuffer([
      {
        name: 'b',
        entries: [
          ['a', 'small'],
          ['b', big],
          ['c', Buffer.alloc(4080, 1)],
          ['d', Buffer.alloc(4096 * 3, 2)],
        ],
      },
    ]);
    const r = BboltReader.open(buf);
    assert.deepEqual(r.check(), []);
    assert.ok(r.get('b', 'b')!.equals(big));
    assert.equal(r.get('b', 'd')!.length, 4096 * 3);
    assert.equal(r.get('b', 'a')!.toString(), 'small');
    // Some page in the file has overflow pages.
    let overflow = 0;
    for (let p = 2; p < r.meta.pgid; p++)
      overflow = Math.max(overflow, readPageHeader(buf, p * 4096).overflow);
    assert.ok(overflow >= 1280, `max overflow ${overflow}`);
  });

  it('empty buckets and an empty db', async () => {
    const empty = BboltReader.open(await writeBboltBuffer([]));
    assert.deepEqual(empty.bucketNames(), []);
    assert.deepEqual(empty.check(), []);
    for (const inlineBuckets of [true, false]) {
      const r = BboltReader.open(
        await writeBboltBuffer(
          [
            { name: 'z', entries: [] },
            { name: 'a', entries: [] },
            { name: 'm', entries: [{ name: 'inner', entries: [] }] },
          ],
          { inlineBuckets },
        ),
      );
      assert.deepEqual(r.bucketNames().map(String), ['a', 'm', 'z']);
      assert.equal(r.count('a'), 0);
      assert.deepEqual([...r.entries('z')], []);
      assert.deepEqual(r.bucketNames('m').map(String), ['inner']);
      assert.equal(r.count(['m', 'inner']), 0);
      assert.equal(r.hasBucket('nope'), false);
      assert.throws(
        () => r.get('nope', 'k'),
        (e: unknown) => e instanceof BboltError && e.code === 'ENOBUCKET',
      );
      assert.deepEqual(r.check(), []);
    }
  });

  it('inline buckets are stored inline, bucket sequence kept', async () => {
    const buf = await writeBboltBuffer([{ name: 'small', entries: [['k', 'v']], sequence: 42n }]);
    const r = BboltReader.open(buf);
    assert.equal(r.sequence('small'), 42n);
    const rootItems = [...r.items([])];
    assert.equal(rootItems.length, 1);
    assert.equal(rootItems[0]!.value.readBigUInt64LE(0), 0n, 'root pgid 0 = inline');
    assert.equal(r.get('small', 'k')!.toString(), 'v');
    // 2 metas + root leaf + freelist: the bucket took no page of its own.
    assert.equal(r.meta.pgid, 4n);
  });

  it('accepts async sources and streams a db with sha256 trailer', async () => {
    async function* entries(): AsyncGenerator<[string, string]> {
      for (let i = 0; i < 5000; i++) yield [`k${String(i).padStart(5, '0')}`, `v${i}`];
    }
    async function* buckets(): AsyncGenerator<BucketInput> {
      yield { name: 'a', entries: entries() };
      yield { name: 'b', entries: [['x', 'y']] };
    }
    const chunks: Buffer[] = [];
    for await (const c of bboltStream(buckets(), { chunkSize: 10000 })) chunks.push(c);
    const snap = Buffer.concat(chunks);
    assert.equal(snap.length % 4096, 32);
    const split = splitSha256Trailer(snap);
    assert.equal(split.ok, true);
    const r = BboltReader.open(snap);
    assert.equal(r.trailer, 'verified');
    assert.equal(r.count('a'), 5000);
    assert.equal(r.get('a', 'k04999')!.toString(), 'v4999');
    // withSha256Trailer produces the same bytes from a trailer-less stream.
    const plain: Buffer[] = [];
    for await (const c of bboltStream(buckets(), { sha256Trailer: false })) plain.push(c);
    const again: Buffer[] = [];
    for await (const c of withSha256Trailer(plain)) again.push(c);
    assert.ok(Buffer.concat(again).equals(snap));
  });

  it('writes files atomically, with an optional sha256 trailer', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'bbolt-test-'));
    try {
      const path = join(dir, 'snap.db');
      const res = await writeBboltFile(path, [{ name: 'b', entries: [['k', 'v']] }], { sha256Trailer: true });
      const file = await readFile(path);
      assert.equal(file.length, res.size + 32);
      assert.ok(res.sha256?.equals(file.subarray(res.size)));
      assert.equal(BboltReader.open(path).trailer, 'verified');
      await assert.rejects(
        writeBboltFile(path, [
          {
            name: 'b',
            entries: [
              ['z', '1'],
              ['a', '2'],
            ],
          },
        ]),
      );
      assert.deepEqual(await readdir(dir), ['snap.db'], 'failed write leaves the old file and no .part');
      assert.ok((await readFile(path)).equals(file));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('rejects unsorted, duplicate and empty keys', async () => {
    const isInput = (e: unknown) => e instanceof BboltError && e.code === 'EINPUT';
    await assert.rejects(
      writeBboltBuffer([
        {
          name: 'b',
          entries: [
            ['b', '1'],
            ['a', '2'],
          ],
        },
      ]),
      isInput,
    );
    await assert.rejects(
      writeBboltBuffer([
        {
          name: 'b',
          entries: [
            ['a', '1'],
            ['a', '2'],
          ],
        },
      ]),
      isInput,
    );
    await assert.rejects(writeBboltBuffer([{ name: 'b', entries: [['', '1']] }]), isInput);
    await assert.rejects(
      writeBboltBuffer([
        { name: 'b', entries: [] },
        { name: 'b', entries: [] },
      ]),
      isInput,
    );
  });
});

describe('bbolt reader on damaged input', () => {
  const sample = () =>
    writeBboltBuffer([
      { name: 'b', entries: Array.from({ length: 2000 }, (_, i) => [`k${1e6 + i}`, `v${i}`] as const) },
    ]);
  const code = (c: string) => (e: unknown) => e instanceof BboltError && e.code === c;

  it('rejects a file that is not bbolt', () => {
    assert.throws(() => BboltReader.open(Buffer.alloc(10000, 0x41)), code('ENOTBBOLT'));
    assert.throws(() => BboltReader.open(Buffer.from('hello')), code('ENOTBBOLT'));
  });

  it('falls back to the other meta when one is corrupt, fails when both are', async () => {
    const buf = await sample();
    const good = BboltReader.open(buf);
    assert.equal(good.meta.txid, 2n);
    const a = Buffer.from(buf);
    a[PAGE_HEADER_SIZE + 20] ^= 0xff; // meta 0 root pgid: checksum now wrong
    const ra = BboltReader.open(a);
    assert.equal(ra.meta.txid, 1n);
    assert.equal(ra.count('b'), 2000);
    const b = Buffer.from(a);
    b[4096 + PAGE_HEADER_SIZE + 20] ^= 0xff;
    assert.throws(() => BboltReader.open(b), code('ECHECKSUM'));
  });

  it('detects truncation, a bad trailer and a damaged page', async () => {
    const buf = await sample();
    assert.throws(() => BboltReader.open(buf.subarray(0, buf.length - 4096)), code('ETRUNCATED'));
    const snap = Buffer.concat([buf, Buffer.alloc(32, 9)]);
    assert.throws(() => BboltReader.open(snap), code('ETRAILER'));
    assert.equal(BboltReader.open(snap, { trailer: 'ignore' }).trailer, 'ignored');
    const bad = Buffer.from(buf);
    const root = Number(BboltReader.open(buf).meta.root.root);
    bad.writeUInt16LE(0x40, root * 4096 + 8); // root page flags: unknown type
    assert.throws(() => BboltReader.open(bad).bucketNames(), code('ECORRUPT'));
  });

  it('reads a freelist with the 0xFFFF count overflow', () => {
    // Hand-built db: metas, page 2 empty root leaf, pages 3.. a freelist of 70000 ids.
    const ps = 4096;
    const ids = 70_000;
    const flPages = Math.ceil((PAGE_HEADER_SIZE + (ids + 1) * 8) / ps);
    const pages = 3 + flPages;
    const buf = Buffer.alloc(pages * ps);
    writePageHeader(buf.subarray(2 * ps), { id: 2n, flags: LEAF_PAGE, count: 0, overflow: 0 });
    const fl = buf.subarray(3 * ps);
    writePageHeader(fl, { id: 3n, flags: FREELIST_PAGE, count: 0xffff, overflow: flPages - 1 });
    fl.writeBigUInt64LE(BigInt(ids), PAGE_HEADER_SIZE);
    for (let i = 0; i < ids; i++) fl.writeBigUInt64LE(BigInt(1_000_000 - i), PAGE_HEADER_SIZE + (i + 1) * 8);
    for (const t of [0n, 1n]) {
      writeMetaPage(buf.subarray(Number(t) * ps), t, {
        pageSize: ps,
        flags: 0,
        root: { root: 2n, sequence: 0n },
        freelist: 3n,
        pgid: BigInt(pages),
        txid: t,
      });
    }
    const r = BboltReader.open(buf);
    const free = r.freePages();
    assert.equal(free.length, ids);
    assert.equal(free[0], 1_000_000n - BigInt(ids - 1));
    assert.notEqual(r.meta.freelist, PGID_NO_FREELIST);
  });

  it('reads from a path and from a buffer alike', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'bbolt-test-'));
    try {
      const buf = await sample();
      await writeFile(join(dir, 'db'), buf);
      const r = BboltReader.open(join(dir, 'db'));
      assert.deepEqual([...r.entries('b')], [...BboltReader.open(buf).entries('b')]);
      r.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
