import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { EntryType, Message, MessageType } from '../gen/raftpb/raft.js';
import { encodeMessageFrame, MessageDecoder } from './message_codec.js';
import { isLinkHeartbeat, linkHeartbeat, MsgAppV2Decoder, MsgAppV2Encoder } from './msgappv2_codec.js';
import { httpChunk } from './stream_writer.js';

const LOCAL = 0x1111n;
const REMOTE = 0xfedcba9876543210n;

const entryArb = fc.record({
  term: fc.integer({ min: 0, max: 1_000_000 }),
  index: fc.integer({ min: 0, max: 2 ** 40 }),
  type: fc.constantFrom(EntryType.EntryNormal, EntryType.EntryConfChange, EntryType.EntryConfChangeV2),
  data: fc.uint8Array({ maxLength: 64 }).map((a) => Buffer.from(a)),
});

const messageArb = fc
  .record({
    type: fc.integer({ min: 0, max: 18 }),
    to: fc.bigInt({ min: 1n, max: 2n ** 64n - 1n }),
    from: fc.bigInt({ min: 1n, max: 2n ** 64n - 1n }),
    term: fc.integer({ min: 0, max: 2 ** 40 }),
    logTerm: fc.integer({ min: 0, max: 2 ** 40 }),
    index: fc.integer({ min: 0, max: 2 ** 50 }),
    entries: fc.array(entryArb, { maxLength: 5 }),
    commit: fc.integer({ min: 0, max: 2 ** 50 }),
    reject: fc.boolean(),
    rejectHint: fc.integer({ min: 0, max: 2 ** 40 }),
    context: fc.uint8Array({ maxLength: 16 }).map((a) => Buffer.from(a)),
  })
  .map((m) => Message.fromPartial(m));

/** Feeds `data` to a decoder in the given chunk sizes. */
function chunked(data: Buffer, cuts: number[]): Buffer[] {
  const out: Buffer[] = [];
  let at = 0;
  for (const c of cuts) {
    if (at >= data.length) break;
    out.push(data.subarray(at, at + c));
    at += c;
  }
  if (at < data.length) out.push(data.subarray(at));
  return out;
}

const norm = (m: Message) => Message.toJSON(m);

test('message stream: round trip of arbitrary messages in arbitrary chunking', () => {
  fc.assert(
    fc.property(
      fc.array(messageArb, { maxLength: 8 }),
      fc.array(fc.integer({ min: 1, max: 40 })),
      (msgs, cuts) => {
        const data = Buffer.concat(msgs.map(encodeMessageFrame));
        const dec = new MessageDecoder();
        const got: Message[] = [];
        for (const c of chunked(data, cuts)) dec.push(c, (m) => got.push(m));
        assert.deepEqual(got.map(norm), msgs.map(norm));
        assert.equal(dec.queue.length, 0);
      },
    ),
  );
});

test('message stream: frame layout is 8-byte big-endian length + Message', () => {
  const m = Message.fromPartial({ type: MessageType.MsgHeartbeat, to: 2n, from: 1n, term: 3, commit: 7 });
  const frame = encodeMessageFrame(m);
  const body = Buffer.from(Message.encode(m).finish());
  assert.equal(frame.readBigUInt64BE(0), BigInt(body.length));
  assert.deepEqual(frame.subarray(8), body);
});

test('message stream: oversize frame is refused', () => {
  const dec = new MessageDecoder(10);
  const big = encodeMessageFrame(
    Message.fromPartial({ type: MessageType.MsgApp, context: Buffer.alloc(64) }),
  );
  assert.throws(() => dec.push(big, () => {}), /limit exceeded/);
});

/** A sequence of MsgApps as a leader sends them: consecutive, with occasional term changes/gaps. */
const appStreamArb = fc
  .array(
    fc.record({
      n: fc.integer({ min: 0, max: 4 }),
      bump: fc.integer({ min: 0, max: 5 }), // 0 => new term, 1 => gap (probe), else continue
      commit: fc.integer({ min: 0, max: 1000 }),
      heartbeat: fc.boolean(),
    }),
    { maxLength: 30 },
  )
  .map((steps) => {
    const out: Message[] = [];
    let term = 1;
    let last = 0;
    let lastTerm = 0;
    for (const s of steps) {
      if (s.heartbeat) out.push(linkHeartbeat());
      if (s.bump === 0) term++;
      if (s.bump === 1) last = Math.max(0, last - 2);
      const entries = [];
      for (let i = 1; i <= s.n; i++) {
        entries.push({
          term,
          index: last + i,
          type: EntryType.EntryNormal,
          data: Buffer.from(`v${last + i}`),
        });
      }
      out.push(
        Message.fromPartial({
          type: MessageType.MsgApp,
          to: LOCAL,
          from: REMOTE,
          term,
          logTerm: lastTerm,
          index: last,
          entries,
          commit: s.commit,
        }),
      );
      if (s.n > 0) {
        last += s.n;
        lastTerm = term;
      }
    }
    return out;
  });

test('msgappv2: round trip, shortcut frames included, in arbitrary chunking', () => {
  let shortcuts = 0;
  fc.assert(
    fc.property(appStreamArb, fc.array(fc.integer({ min: 1, max: 23 })), (msgs, cuts) => {
      const enc = new MsgAppV2Encoder();
      const parts: Buffer[] = [];
      for (const m of msgs) {
        const before = parts.length;
        enc.encode(m, parts);
        if (parts[before][0] === 1) shortcuts++;
      }
      const data = Buffer.concat(parts);
      const dec = new MsgAppV2Decoder(LOCAL, REMOTE);
      const got: Message[] = [];
      for (const c of chunked(data, cuts)) dec.push(c, (m) => got.push(m));
      assert.deepEqual(got.map(norm), msgs.map(norm));
    }),
  );
  assert.ok(shortcuts > 0, 'the AppEntries shortcut was exercised');
});

test('msgappv2: known-term shortcut layout', () => {
  const enc = new MsgAppV2Encoder();
  const parts: Buffer[] = [];
  const e = (index: number) => ({ term: 5, index, type: EntryType.EntryNormal, data: Buffer.from('x') });
  const first = Message.fromPartial({
    type: MessageType.MsgApp,
    to: LOCAL,
    from: REMOTE,
    term: 5,
    logTerm: 4,
    index: 10,
    entries: [e(11)],
    commit: 10,
  });
  const second = Message.fromPartial({
    type: MessageType.MsgApp,
    to: LOCAL,
    from: REMOTE,
    term: 5,
    logTerm: 5,
    index: 11,
    entries: [e(12), e(13)],
    commit: 11,
  });
  enc.encode(first, parts);
  assert.equal(parts[0][0], 2, 'first message is a full one');
  const n = parts.length;
  enc.encode(second, parts);
  const frame = Buffer.concat(parts.slice(n));
  assert.equal(frame[0], 1, 'continuation uses AppEntries');
  assert.equal(frame.readBigUInt64BE(1), 2n);
  const size = Number(frame.readBigUInt64BE(9));
  assert.equal(frame.readBigUInt64BE(frame.length - 8), 11n, 'commit at the end');
  assert.equal(frame.length, 1 + 8 + 2 * (8 + size) + 8);
  const hb: Buffer[] = [];
  enc.encode(linkHeartbeat(), hb);
  assert.deepEqual(Buffer.concat(hb), Buffer.from([0]));

  const dec = new MsgAppV2Decoder(LOCAL, REMOTE);
  const got: Message[] = [];
  dec.push(Buffer.concat([...parts, ...hb]), (m) => got.push(m));
  assert.equal(got.length, 3);
  assert.deepEqual(norm(got[1]), norm(second));
  assert.ok(isLinkHeartbeat(got[2]));
});

test('msgappv2: unknown frame type is an error', () => {
  const dec = new MsgAppV2Decoder(LOCAL, REMOTE);
  assert.throws(() => dec.push(Buffer.from([9]), () => {}), /failed to parse type 9 in msgappv2 stream/);
});

test('httpChunk frames data as one HTTP/1.1 chunk', () => {
  assert.equal(httpChunk(Buffer.from('hello')).toString('latin1'), '5\r\nhello\r\n');
  const big = Buffer.alloc(300, 0x61);
  assert.equal(httpChunk(big).toString('latin1'), `12c\r\n${'a'.repeat(300)}\r\n`);
});
