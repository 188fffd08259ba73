import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { KeyValue } from '../gen/mvccpb/kv.js';
import { decodeKeyValue, decodeKeyValueReusing, encodeKeyValue, encodeTombstone } from './kv_codec.js';
import { bytesToRev, isTombstoneKey, revToBytes } from './revision.js';

const int64 = fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n });
const revNum = fc.oneof(
  fc.integer({ min: 0, max: 1000 }),
  fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
);
const kvArb = fc.record({
  key: fc.uint8Array({ minLength: 1, maxLength: 300 }).map((a) => Buffer.from(a)),
  createRevision: revNum,
  modRevision: revNum,
  version: revNum,
  value: fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)),
  lease: fc.oneof(fc.constant(0n), int64),
});

test('KeyValue bytes are the generated codec bytes (and gogoproto’s), and decode back', () => {
  fc.assert(
    fc.property(kvArb, (rec) => {
      const kv: KeyValue = { ...rec };
      const mine = encodeKeyValue(kv);
      const ref = Buffer.from(KeyValue.encode(kv).finish());
      assert.deepEqual(mine, ref);
      assert.deepEqual(decodeKeyValue(mine), kv);
      const reused = decodeKeyValueReusing(mine, kv.key);
      mine.fill(0);
      assert.deepEqual(reused, kv);
      assert.deepEqual(decodeKeyValue(ref), KeyValue.decode(ref));
    }),
    { numRuns: 500 },
  );
});

test('a tombstone value holds only the key', () => {
  const k = Buffer.from('some/key');
  assert.deepEqual(
    encodeTombstone(k),
    Buffer.from(KeyValue.encode(KeyValue.fromPartial({ key: k })).finish()),
  );
});

test('revision keys are etcd’s: big-endian main, "_", big-endian sub, "t" for tombstones', () => {
  assert.equal(revToBytes(1, 2).toString('hex'), '00000000000000015f0000000000000002');
  assert.equal(revToBytes(2 ** 40 + 5, 0, true).toString('hex'), '00000100000000055f000000000000000074');
  fc.assert(
    fc.property(revNum, fc.integer({ min: 0, max: 2 ** 32 }), fc.boolean(), (main, sub, t) => {
      const b = revToBytes(main, sub, t);
      assert.deepEqual(bytesToRev(b), { main, sub });
      assert.equal(isTombstoneKey(b), t);
    }),
  );
  fc.assert(
    fc.property(revNum, revNum, (a, b) => {
      const c = Buffer.compare(revToBytes(a, 0), revToBytes(b, 0));
      assert.equal(Math.sign(c), Math.sign(a - b));
    }),
  );
});
