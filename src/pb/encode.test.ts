import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { KeyValue } from '../gen/mvccpb/kv.js';
import { Entry, EntryType, Message, MessageType } from '../gen/raftpb/raft.js';
import { encodeToBuffer } from './encode.js';

test('encodeToBuffer gives the bytes finish() gives, after the requested headroom', () => {
  fc.assert(
    fc.property(
      fc.record({
        key: fc.uint8Array({ maxLength: 64 }),
        value: fc.uint8Array({ maxLength: 5000 }),
        createRevision: fc.integer({ min: 0, max: 2 ** 40 }),
        modRevision: fc.integer({ min: 0, max: 2 ** 40 }),
        version: fc.integer({ min: 0, max: 1000 }),
        lease: fc.bigInt({ min: 0n, max: 2n ** 63n - 1n }),
      }),
      fc.integer({ min: 0, max: 9 }),
      (kv, headroom) => {
        const msg = KeyValue.fromPartial({ ...kv, key: Buffer.from(kv.key), value: Buffer.from(kv.value) });
        const want = Buffer.from(KeyValue.encode(msg).finish());
        const got = encodeToBuffer(KeyValue, msg, headroom);
        assert.equal(got.length, headroom + want.length);
        assert.deepEqual(got.subarray(headroom), want);
      },
    ),
  );
});

test('encodeToBuffer: nested messages, consecutive calls, a huge message, then small ones again', () => {
  const entries = [1, 2, 3].map((i) =>
    Entry.fromPartial({ term: 2, index: i, type: EntryType.EntryNormal, data: Buffer.alloc(i * 10, i) }),
  );
  const m = Message.fromPartial({ type: MessageType.MsgApp, to: 2n, from: 1n, term: 2, entries, commit: 1 });
  const a = encodeToBuffer(Message, m);
  const b = encodeToBuffer(Message, m);
  assert.deepEqual(a, Buffer.from(Message.encode(m).finish()));
  assert.deepEqual(b, a);
  a[a.length - 1] ^= 0xff; // results must not share bytes
  assert.deepEqual(b, Buffer.from(Message.encode(m).finish()));
  const big = Entry.fromPartial({ term: 1, index: 1, data: Buffer.alloc(3 << 20, 7) });
  assert.deepEqual(encodeToBuffer(Entry, big), Buffer.from(Entry.encode(big).finish()));
  assert.deepEqual(encodeToBuffer(Message, m), b);
});

test('encodeToBuffer: an encoder that throws leaves the shared writer usable', () => {
  const bad = {
    encode: () => {
      throw new Error('boom');
    },
  };
  assert.throws(() => encodeToBuffer(bad as never, {}), /boom/);
  const e = Entry.fromPartial({ term: 1, index: 9 });
  assert.deepEqual(encodeToBuffer(Entry, e), Buffer.from(Entry.encode(e).finish()));
});
