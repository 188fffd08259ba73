// The header repair filter and the first-request sniffer on hand-made client byte streams: HPACK
// state carried across requests, CONTINUATION splitting, padding/priority, flags, the dropped
// SETTINGS ACK, and chunking at every byte boundary.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { FALLBACK_AUTHORITY, isValidAuthority, repairAuthority } from './authority.js';
import { Flag, FrameType, frame, headerFrames, PREFACE, readFrameHeader } from './frames.js';
import { type HeaderField, HpackDecoder, HpackEncoder } from './hpack.js';
import { HeaderBlockRepairer } from './repair.js';
import { EMPTY_SETTINGS, H2Sniffer, MAX_SNIFF_BYTES } from './sniff.js';

interface Frame {
  type: number;
  flags: number;
  streamId: number;
  payload: Buffer;
}

function parseFrames(buf: Buffer): Frame[] {
  assert.deepEqual(buf.subarray(0, PREFACE.length), PREFACE);
  const out: Frame[] = [];
  let off = PREFACE.length;
  while (off < buf.length) {
    const h = readFrameHeader(buf, off);
    out.push({ ...h, payload: buf.subarray(off + 9, off + 9 + h.length) });
    off += 9 + h.length;
  }
  assert.equal(off, buf.length);
  return out;
}

/** Header lists of the output, re-assembled from HEADERS + CONTINUATION and decoded statelessly. */
function outputBlocks(
  frames: Frame[],
): Array<{ streamId: number; endStream: boolean; fields: HeaderField[] }> {
  const blocks = [];
  for (let i = 0; i < frames.length; i++) {
    if (frames[i].type !== FrameType.HEADERS) continue;
    const first = frames[i];
    assert.equal(first.flags & (Flag.PADDED | Flag.PRIORITY), 0);
    const parts = [first.payload];
    let last = first;
    while (!(last.flags & Flag.END_HEADERS)) {
      last = frames[++i];
      assert.equal(last.type, FrameType.CONTINUATION);
      assert.equal(last.streamId, first.streamId);
      parts.push(last.payload);
    }
    // literals only: a fresh decoder per block must do (the server's table stays empty)
    const fields = new HpackDecoder().decode(Buffer.concat(parts));
    blocks.push({ streamId: first.streamId, endStream: (first.flags & Flag.END_STREAM) !== 0, fields });
  }
  return blocks;
}

const pairs = (fields: HeaderField[]) => fields.map((f) => [f.name, f.value]);

const request = (i: number, authority: string): HeaderField[] => [
  { name: ':method', value: 'POST' },
  { name: ':scheme', value: 'http' },
  { name: ':path', value: '/etcdserverpb.Maintenance/Status' },
  { name: ':authority', value: authority },
  { name: 'content-type', value: 'application/grpc' },
  { name: 'user-agent', value: 'grpc-go/1.26.0' },
  { name: 'te', value: 'trailers' },
  { name: 'x-call', value: `call-${i}` },
];

/** A grpc-go-like client: Huffman + dynamic table, several calls on one connection. */
function clientBytes(calls: number, authority: string, opts: { ack?: boolean } = {}): Buffer {
  const enc = new HpackEncoder({ huffman: true, indexing: true });
  const parts = [
    PREFACE,
    frame(FrameType.SETTINGS, 0, 0),
    frame(FrameType.WINDOW_UPDATE, 0, 0, Buffer.from([0, 0, 1, 0])),
  ];
  if (opts.ack) parts.push(frame(FrameType.SETTINGS, Flag.ACK, 0));
  for (let i = 0; i < calls; i++) {
    const sid = 1 + 2 * i;
    if (i === 2) enc.setTableSize(64); // shrink mid-connection: evicts, announced in the next block
    parts.push(frame(FrameType.HEADERS, Flag.END_HEADERS, sid, enc.encode(request(i, authority))));
    parts.push(frame(FrameType.DATA, Flag.END_STREAM, sid, Buffer.from([0, 0, 0, 0, 2, 8, i])));
  }
  return Buffer.concat(parts);
}

test('repairAuthority: scheme and path dropped, unix sockets and garbage become localhost', () => {
  assert.equal(repairAuthority('http://127.0.0.1:2379'), '127.0.0.1:2379');
  assert.equal(repairAuthority('https://[::1]:2379/'), '[::1]:2379');
  assert.equal(repairAuthority('http://user@host:1/x?y#z'), 'host:1');
  assert.equal(repairAuthority('unix:///run/etcd.sock'), FALLBACK_AUTHORITY);
  assert.equal(repairAuthority('unix:/run/etcd.sock'), FALLBACK_AUTHORITY);
  assert.equal(repairAuthority('unix://localhost:2379'), 'localhost:2379');
  assert.equal(repairAuthority(''), FALLBACK_AUTHORITY);
  assert.equal(repairAuthority('a b'), FALLBACK_AUTHORITY);
  assert.equal(repairAuthority('localhost:2379'), 'localhost:2379');
  assert.ok(isValidAuthority('127.0.0.1:2379'));
  assert.ok(!isValidAuthority('http://127.0.0.1:2379'));
  fc.assert(
    fc.property(fc.string(), (s) => {
      assert.ok(isValidAuthority(repairAuthority(s)));
    }),
  );
});

test('repairer: every block re-encoded as literals, :authority repaired, other frames untouched', () => {
  const input = clientBytes(5, 'http://127.0.0.1:2379');
  const out = Buffer.concat(new HeaderBlockRepairer().push(input));
  const frames = parseFrames(out);
  const inFrames = parseFrames(input);
  assert.deepEqual(
    frames.filter((f) => f.type !== FrameType.HEADERS),
    inFrames.filter((f) => f.type !== FrameType.HEADERS),
  );
  const blocks = outputBlocks(frames);
  assert.equal(blocks.length, 5);
  blocks.forEach((b, i) => {
    assert.equal(b.streamId, 1 + 2 * i);
    assert.equal(b.endStream, false);
    assert.deepEqual(pairs(b.fields), pairs(request(i, '127.0.0.1:2379')));
  });
});

test('repairer: output is the same whatever the chunking (byte by byte, random cuts)', () => {
  const input = clientBytes(4, 'unix:///tmp/etcd.sock');
  const whole = Buffer.concat(new HeaderBlockRepairer().push(input));
  const r = new HeaderBlockRepairer();
  const bytewise = Buffer.concat([...input].flatMap((b) => r.push(Buffer.from([b]))));
  assert.deepEqual(bytewise, whole);
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 1, max: input.length - 1 }), { maxLength: 20 }), (cuts) => {
      const points = [0, ...[...new Set(cuts)].sort((a, b) => a - b), input.length];
      const rr = new HeaderBlockRepairer();
      const parts = [];
      for (let i = 1; i < points.length; i++)
        parts.push(...rr.push(input.subarray(points[i - 1], points[i])));
      assert.deepEqual(Buffer.concat(parts), whole);
    }),
  );
  assert.equal(r.blocks, 4);
  assert.equal(r.repaired, 4);
});

test('repairer: padding, priority, CONTINUATION in, END_STREAM kept, large blocks split at 16 KiB', () => {
  const enc = new HpackEncoder({ huffman: true, indexing: true });
  const big: HeaderField[] = [...request(0, 'http://h:1'), { name: 'x-big', value: 'v'.repeat(40_000) }];
  const block = enc.encode(big);
  // HEADERS with padding and priority carrying the first 100 bytes, the rest in two CONTINUATIONs
  const pad = 7;
  const headersPayload = Buffer.concat([
    Buffer.from([pad]),
    Buffer.from([0, 0, 0, 0, 15]),
    block.subarray(0, 100),
    Buffer.alloc(pad),
  ]);
  const mid = 100 + Math.floor((block.length - 100) / 2);
  const input = Buffer.concat([
    PREFACE,
    frame(FrameType.HEADERS, Flag.PADDED | Flag.PRIORITY | Flag.END_STREAM, 3, headersPayload),
    frame(FrameType.CONTINUATION, 0, 3, block.subarray(100, mid)),
    frame(FrameType.CONTINUATION, Flag.END_HEADERS, 3, block.subarray(mid)),
    frame(FrameType.HEADERS, Flag.END_HEADERS | Flag.END_STREAM, 5, enc.encode(request(1, 'h:1'))),
  ]);
  const frames = parseFrames(Buffer.concat(new HeaderBlockRepairer().push(input)));
  assert.ok(frames.every((f) => f.payload.length <= 16384));
  assert.ok(frames.length >= 4, 'the 40 KB block needs a HEADERS and at least two CONTINUATIONs');
  assert.equal(frames.filter((f) => f.flags & Flag.END_HEADERS).length, 2);
  assert.ok(
    frames.filter((f) => f.type === FrameType.CONTINUATION).every((f) => (f.flags & Flag.END_STREAM) === 0),
  );
  const blocks = outputBlocks(frames);
  assert.deepEqual(
    blocks.map((b) => [b.streamId, b.endStream]),
    [
      [3, true],
      [5, true],
    ],
  );
  assert.deepEqual(
    pairs(blocks[0].fields),
    pairs([...request(0, 'h:1'), { name: 'x-big', value: 'v'.repeat(40_000) }]),
  );
  assert.deepEqual(pairs(blocks[1].fields), pairs(request(1, 'h:1')));
});

test('repairer: drops only the first SETTINGS ACK when asked', () => {
  const input = Buffer.concat([
    PREFACE,
    frame(FrameType.SETTINGS, Flag.ACK, 0),
    frame(FrameType.SETTINGS, Flag.ACK, 0),
    frame(FrameType.PING, 0, 0, Buffer.alloc(8, 1)),
  ]);
  const frames = parseFrames(
    Buffer.concat(new HeaderBlockRepairer({ dropFirstSettingsAck: true }).push(input)),
  );
  assert.deepEqual(
    frames.map((f) => [f.type, f.flags]),
    [
      [FrameType.SETTINGS, Flag.ACK],
      [FrameType.PING, 0],
    ],
  );
  assert.equal(parseFrames(Buffer.concat(new HeaderBlockRepairer().push(input))).length, 3);
});

test('repairer: protocol and HPACK errors throw', () => {
  const r = () => new HeaderBlockRepairer();
  // DATA in the middle of a header block
  assert.throws(() =>
    r().push(Buffer.concat([PREFACE, frame(FrameType.HEADERS, 0, 1, Buffer.from([0x82])), frame(0, 0, 1)])),
  );
  // CONTINUATION without HEADERS
  assert.throws(() => r().push(Buffer.concat([PREFACE, frame(FrameType.CONTINUATION, Flag.END_HEADERS, 1)])));
  // index beyond the tables
  assert.throws(() =>
    r().push(
      Buffer.concat([PREFACE, frame(FrameType.HEADERS, Flag.END_HEADERS, 1, Buffer.from([0xff, 0x10]))]),
    ),
  );
  // block too large
  assert.throws(() =>
    new HeaderBlockRepairer({ maxHeaderBlockBytes: 10 }).push(
      Buffer.concat([PREFACE, frame(FrameType.HEADERS, Flag.END_HEADERS, 1, Buffer.alloc(11, 0x82))]),
    ),
  );
});

test('headerFrames: an empty block is one HEADERS frame with END_HEADERS', () => {
  const f = parseFrames(Buffer.concat([PREFACE, headerFrames(1, Buffer.alloc(0), true)]));
  assert.deepEqual(
    f.map((x) => [x.type, x.flags, x.payload.length]),
    [[FrameType.HEADERS, Flag.END_STREAM | Flag.END_HEADERS, 0]],
  );
});

test('sniffer: a first request in the first bytes decides at once', () => {
  const good = clientBytes(1, '127.0.0.1:2379');
  const d = new H2Sniffer().push(good);
  assert.equal(d.kind, 'fast');
  assert.equal(d.kind === 'fast' && d.head, good);
  const bad = clientBytes(1, 'http://127.0.0.1:2379');
  const e = new H2Sniffer().push(bad);
  assert.deepEqual(e, { kind: 'repair', head: bad, dropFirstSettingsAck: false, reason: 'authority' });
});

test('sniffer: a client waiting for the server preface gets one; its ACK is cut out', () => {
  const all = clientBytes(1, '127.0.0.1:2379', { ack: true });
  const ackAt = PREFACE.length + 9 + 13; // after SETTINGS and WINDOW_UPDATE
  const s = new H2Sniffer();
  assert.deepEqual(s.push(all.subarray(0, ackAt)), { kind: 'more', sendSettings: true });
  assert.deepEqual(s.push(all.subarray(ackAt, ackAt + 9)), { kind: 'more', sendSettings: false });
  const d = s.push(all.subarray(ackAt + 9));
  assert.equal(d.kind, 'fast');
  const withoutAck = Buffer.concat([all.subarray(0, ackAt), all.subarray(ackAt + 9)]);
  assert.deepEqual(d.kind === 'fast' && d.head, withoutAck);
  assert.deepEqual(EMPTY_SETTINGS, Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]));

  // same with a bad authority: repaired, ACK already cut
  const bad = clientBytes(1, 'http://x:1', { ack: true });
  const s2 = new H2Sniffer();
  s2.push(bad.subarray(0, ackAt));
  const d2 = s2.push(bad.subarray(ackAt));
  assert.equal(d2.kind, 'repair');
  assert.equal(d2.kind === 'repair' && d2.dropFirstSettingsAck, false);
});

test('sniffer: a good request that overtakes the ACK waits for the ACK, then takes the fast path without it', () => {
  const all = clientBytes(1, '127.0.0.1:2379');
  const at = PREFACE.length + 9 + 13;
  const s = new H2Sniffer();
  assert.deepEqual(s.push(all.subarray(0, at)), { kind: 'more', sendSettings: true });
  // the request arrives before the client's ACK of our SETTINGS: keep reading
  assert.deepEqual(s.push(all.subarray(at)), { kind: 'more', sendSettings: false });
  const ack = frame(FrameType.SETTINGS, Flag.ACK, 0);
  const d = s.push(ack);
  assert.deepEqual(d, { kind: 'fast', head: all, reason: 'first request' });
});

test('sniffer: a request with a bad authority that overtakes the ACK goes through the filter, which drops the ACK', () => {
  const all = clientBytes(1, 'http://127.0.0.1:2379');
  const at = PREFACE.length + 9 + 13;
  const s = new H2Sniffer();
  assert.deepEqual(s.push(all.subarray(0, at)), { kind: 'more', sendSettings: true });
  const d = s.push(all.subarray(at));
  assert.equal(d.kind, 'repair');
  assert.equal((d as { dropFirstSettingsAck: boolean }).dropFirstSettingsAck, true);
});

test('sniffer: partial frames do not trigger the server preface; odd frames and timeouts fall back', () => {
  const all = clientBytes(1, '127.0.0.1:2379');
  const s = new H2Sniffer();
  const inHeaders = PREFACE.length + 9 + 13 + 12;
  assert.deepEqual(s.push(all.subarray(0, inHeaders)), { kind: 'more', sendSettings: false });
  assert.equal(s.push(all.subarray(inHeaders)).kind, 'fast');

  const ping = Buffer.concat([
    PREFACE,
    frame(FrameType.SETTINGS, 0, 0),
    frame(FrameType.PING, 0, 0, Buffer.alloc(8)),
  ]);
  assert.equal(new H2Sniffer().push(ping).kind, 'fast');

  const idle = new H2Sniffer();
  idle.push(Buffer.concat([PREFACE, frame(FrameType.SETTINGS, 0, 0)]));
  assert.equal(idle.timeout().kind, 'repair', 'our SETTINGS is still unacknowledged');
  const idle2 = new H2Sniffer();
  idle2.push(Buffer.concat([PREFACE, frame(FrameType.SETTINGS, 0, 0)]));
  idle2.push(frame(FrameType.SETTINGS, Flag.ACK, 0));
  assert.equal(idle2.timeout().kind, 'fast');

  // an ACK nobody asked for, an undecodable block, a huge frame: the fast path, let the server judge
  assert.equal(
    new H2Sniffer().push(Buffer.concat([PREFACE, frame(FrameType.SETTINGS, Flag.ACK, 0)])).kind,
    'fast',
  );
  assert.equal(
    new H2Sniffer().push(
      Buffer.concat([PREFACE, frame(FrameType.HEADERS, Flag.END_HEADERS, 1, Buffer.from([0x80]))]),
    ).kind,
    'fast',
  );
  const huge = Buffer.alloc(9);
  huge.writeUIntBE(MAX_SNIFF_BYTES + 1, 0, 3);
  huge[3] = FrameType.HEADERS;
  assert.equal(new H2Sniffer().push(Buffer.concat([PREFACE, huge])).kind, 'fast');
});
