// HPACK decoder/encoder: RFC 7541 Appendix C vectors, Huffman round trips, dynamic table
// references and size updates across the blocks of one connection, and malformed input.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  type HeaderField,
  HpackDecoder,
  HpackEncoder,
  HpackError,
  HUFFMAN_CODES,
  huffmanDecode,
  huffmanEncode,
} from './hpack.js';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const pairs = (fields: HeaderField[]) => fields.map((f) => [f.name, f.value]);

test('RFC 7541 C.3: requests without Huffman share a dynamic table', () => {
  const d = new HpackDecoder();
  assert.deepEqual(pairs(d.decode(hex('828684410f7777772e6578616d706c652e636f6d'))), [
    [':method', 'GET'],
    [':scheme', 'http'],
    [':path', '/'],
    [':authority', 'www.example.com'],
  ]);
  assert.deepEqual(pairs(d.decode(hex('828684be58086e6f2d6361636865'))), [
    [':method', 'GET'],
    [':scheme', 'http'],
    [':path', '/'],
    [':authority', 'www.example.com'],
    ['cache-control', 'no-cache'],
  ]);
  assert.deepEqual(pairs(d.decode(hex('828785bf400a637573746f6d2d6b65790c637573746f6d2d76616c7565'))), [
    [':method', 'GET'],
    [':scheme', 'https'],
    [':path', '/index.html'],
    [':authority', 'www.example.com'],
    ['custom-key', 'custom-value'],
  ]);
});

test('RFC 7541 C.4: requests with Huffman share a dynamic table', () => {
  const d = new HpackDecoder();
  assert.deepEqual(pairs(d.decode(hex('828684418cf1e3c2e5f23a6ba0ab90f4ff'))), [
    [':method', 'GET'],
    [':scheme', 'http'],
    [':path', '/'],
    [':authority', 'www.example.com'],
  ]);
  assert.deepEqual(pairs(d.decode(hex('828684be5886a8eb10649cbf'))), [
    [':method', 'GET'],
    [':scheme', 'http'],
    [':path', '/'],
    [':authority', 'www.example.com'],
    ['cache-control', 'no-cache'],
  ]);
  assert.deepEqual(pairs(d.decode(hex('828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf'))), [
    [':method', 'GET'],
    [':scheme', 'https'],
    [':path', '/index.html'],
    [':authority', 'www.example.com'],
    ['custom-key', 'custom-value'],
  ]);
});

test('Huffman: the code is prefix-free and every octet round-trips', () => {
  const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
  assert.deepEqual(huffmanDecode(huffmanEncode(all)), all);
  assert.equal(HUFFMAN_CODES[0x20], 0x14); // ' ' (RFC 7541 Appendix B)
  assert.equal(HUFFMAN_CODES[0x61], 0x3); // 'a'
  assert.equal(HUFFMAN_CODES[256], 0x3fffffff); // EOS
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
      assert.deepEqual(huffmanDecode(huffmanEncode(bytes)), Buffer.from(bytes));
    }),
  );
});

test('Huffman: EOS, bad padding and overlong padding are errors', () => {
  assert.throws(() => huffmanDecode(hex('ffffffff')), HpackError); // EOS (30 ones) inside
  assert.throws(() => huffmanDecode(hex('00')), HpackError); // '0' (00000) then 000: padding not ones
  assert.throws(() => huffmanDecode(hex('1fff')), HpackError); // 'a' (00011) then 11 ones: padding > 7 bits
  assert.deepEqual(huffmanDecode(hex('07')), Buffer.from('0')); // '0' then 111
});

const field = fc.record({
  name: fc.oneof(
    fc.constantFrom(':authority', ':path', 'content-type', 'user-agent', 'te', 'grpc-timeout'),
    fc.stringMatching(/^[a-z][a-z0-9-]{0,20}$/),
  ),
  value: fc.oneof(
    fc.constantFrom('', '/', 'trailers', 'application/grpc'),
    fc.uint8Array({ maxLength: 40 }).map((b) => Buffer.from(b).toString('latin1')),
  ),
});

test('encoder/decoder round trip across many blocks, with and without Huffman and indexing', () => {
  fc.assert(
    fc.property(
      fc.array(fc.array(field, { maxLength: 12 }), { maxLength: 12 }),
      fc.boolean(),
      fc.boolean(),
      fc.integer({ min: 0, max: 4096 }),
      (blocks, huffman, indexing, tableSize) => {
        const enc = new HpackEncoder({ huffman, indexing, tableSize });
        const dec = new HpackDecoder();
        for (const block of blocks) assert.deepEqual(pairs(dec.decode(enc.encode(block))), pairs(block));
        if (blocks.length > 0) assert.equal(dec.tableSize, tableSize);
      },
    ),
  );
});

test('dynamic table: references to earlier blocks, eviction, and size updates honoured', () => {
  const enc = new HpackEncoder({ huffman: true, indexing: true });
  const dec = new HpackDecoder();
  const req = (i: number): HeaderField[] => [
    { name: ':method', value: 'POST' },
    { name: ':path', value: '/etcdserverpb.Maintenance/Status' },
    { name: ':authority', value: 'http://127.0.0.1:2379' },
    { name: 'user-agent', value: 'grpc-go/1.26.0' },
    { name: 'x-request', value: `n${i}` },
  ];
  const first = enc.encode(req(0));
  const second = enc.encode(req(1));
  assert.ok(second.length < first.length / 2, 'the second block refers to the first one');
  assert.deepEqual(pairs(dec.decode(first)), pairs(req(0)));
  assert.deepEqual(pairs(dec.decode(second)), pairs(req(1)));
  // the encoder shrinks its table to 0 (evicting everything), then grows it again
  enc.setTableSize(0);
  const third = enc.encode(req(2));
  assert.equal(third[0], 0x20, 'starts with a size update to 0');
  assert.deepEqual(pairs(dec.decode(third)), pairs(req(2)));
  assert.equal(dec.tableSize, 0);
  enc.setTableSize(100);
  assert.deepEqual(pairs(dec.decode(enc.encode(req(3)))), pairs(req(3)));
  assert.deepEqual(pairs(dec.decode(enc.encode(req(4)))), pairs(req(4)));
  assert.equal(dec.tableSize, 100);
  // a stale reference into the evicted part of the table is an error
  assert.throws(() => dec.decode(Buffer.from([0x80 | 70])), /beyond the tables/);
});

test('decoder errors: index 0, size update above the limit or after a field, truncation', () => {
  assert.throws(() => new HpackDecoder().decode(Buffer.from([0x80])), /index 0/);
  assert.throws(() => new HpackDecoder(4096).decode(hex('3fe21f')), /above the limit/); // size 4097
  assert.throws(() => new HpackDecoder().decode(hex('8220')), /after a header field/);
  assert.throws(() => new HpackDecoder().decode(hex('400a6375')), /truncated/);
  assert.throws(() => new HpackDecoder().decode(hex('ff')), /truncated integer/);
  assert.throws(() => new HpackDecoder().decode(hex('ffffffffffff0f')), /too large/);
});

test('never-indexed fields stay never-indexed; literal encoding leaves the peer table empty', () => {
  const enc = new HpackEncoder();
  const block = enc.encode([
    { name: 'authorization', value: 'secret', sensitive: true },
    { name: 'x-custom', value: 'v' },
  ]);
  assert.equal(block[0] & 0xf0, 0x10);
  const dec = new HpackDecoder();
  assert.deepEqual(dec.decode(block), [
    { name: 'authorization', value: 'secret', sensitive: true },
    { name: 'x-custom', value: 'v' },
  ]);
  // nothing was added: index 62 does not exist
  assert.throws(() => dec.decode(Buffer.from([0x80 | 62])), /beyond the tables/);
});
