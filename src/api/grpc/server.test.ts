// The gRPC transport against Node's own HTTP/2 client: framing, status trailers, errors, streams.
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { after, before, test } from 'node:test';
import {
  KVDefinition,
  RangeRequest,
  RangeResponse,
  WatchDefinition,
  WatchRequest,
  WatchResponse,
} from '../../gen/etcdserverpb/rpc.js';
import { Code, EtcdError } from '../../server/errors.js';
import { ClientListener } from '../listener.js';
import { frameMessage } from './framing.js';
import { GrpcServer } from './server.js';

let listener: ClientListener;
let port: number;
let client: http2.ClientHttp2Session;

before(async () => {
  const grpc = new GrpcServer({ maxReceiveBytes: 1024 });
  grpc.unary(KVDefinition.methods.range, KVDefinition.fullName, (req) => {
    if (req.key.toString() === 'fail') throw new EtcdError(Code.OUT_OF_RANGE, 'etcdserver: 100% failure');
    if (req.key.toString() === 'async') return Promise.resolve(RangeResponse.fromPartial({ count: 7 }));
    return RangeResponse.fromPartial({ count: req.key.length });
  });
  grpc.bidi(WatchDefinition.methods.watch, WatchDefinition.fullName, (stream) => {
    stream.onMessage((req) => {
      if (req.cancelRequest) stream.end();
      else
        stream.send(WatchResponse.fromPartial({ watchId: req.createRequest?.watchId ?? 0, created: true }));
    });
  });
  listener = new ClientListener({
    onStream: (stream, headers) => grpc.handle(stream, headers),
    onHttp1: (_req, res) => res.end('http1 ok'),
  });
  port = (await listener.listen('127.0.0.1', 0)).port;
  client = http2.connect(`http://127.0.0.1:${port}`);
});

after(async () => {
  client.close();
  await listener.close();
});

interface Reply {
  headers: http2.IncomingHttpHeaders;
  trailers: http2.IncomingHttpHeaders;
  messages: Buffer[];
}

function call(path: string, body: Buffer): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = client.request({
      ':method': 'POST',
      ':path': path,
      'content-type': 'application/grpc',
      te: 'trailers',
    });
    let headers: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    req.on('response', (h) => (headers = h));
    req.on('trailers', (t) => (trailers = t));
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const all = Buffer.concat(chunks);
      const messages: Buffer[] = [];
      for (let off = 0; off < all.length; ) {
        const len = all.readUInt32BE(off + 1);
        messages.push(all.subarray(off + 5, off + 5 + len));
        off += 5 + len;
      }
      resolve({ headers, trailers, messages });
    });
    req.on('error', reject);
    req.end(body);
  });
}

const statusOf = (r: Reply) => r.trailers['grpc-status'] ?? r.headers['grpc-status'];
const messageOf = (r: Reply) =>
  decodeURIComponent(String(r.trailers['grpc-message'] ?? r.headers['grpc-message']));

test('unary call: response message then grpc-status 0', async () => {
  const r = await call(
    '/etcdserverpb.KV/Range',
    frameMessage(RangeRequest.encode(RangeRequest.fromPartial({ key: Buffer.from('abc') })).finish()),
  );
  assert.equal(statusOf(r), '0');
  assert.equal(RangeResponse.decode(r.messages[0]!).count, 3);
  const a = await call(
    '/etcdserverpb.KV/Range',
    frameMessage(RangeRequest.encode(RangeRequest.fromPartial({ key: Buffer.from('async') })).finish()),
  );
  assert.equal(RangeResponse.decode(a.messages[0]!).count, 7);
});

test('handler errors become etcd status codes with percent-encoded messages', async () => {
  const r = await call(
    '/etcdserverpb.KV/Range',
    frameMessage(RangeRequest.encode(RangeRequest.fromPartial({ key: Buffer.from('fail') })).finish()),
  );
  assert.equal(statusOf(r), String(Code.OUT_OF_RANGE));
  assert.equal(messageOf(r), 'etcdserver: 100% failure');
});

test('unknown methods and services are UNIMPLEMENTED, as grpc-go words it', async () => {
  const m = await call('/etcdserverpb.KV/Nope', frameMessage(Buffer.alloc(0)));
  assert.equal(statusOf(m), String(Code.UNIMPLEMENTED));
  assert.equal(messageOf(m), 'unknown method Nope for service etcdserverpb.KV');
  const s = await call('/foo.Bar/Baz', frameMessage(Buffer.alloc(0)));
  assert.equal(messageOf(s), 'unknown service foo.Bar');
});

test('malformed protobuf is INVALID_ARGUMENT and the server keeps serving', async () => {
  const bad = await call('/etcdserverpb.KV/Range', frameMessage(Buffer.from([0x0a, 0xff, 0xff, 0xff, 0x0f])));
  assert.equal(statusOf(bad), String(Code.INVALID_ARGUMENT));
  const good = await call(
    '/etcdserverpb.KV/Range',
    frameMessage(RangeRequest.encode(RangeRequest.fromPartial({ key: Buffer.from('k') })).finish()),
  );
  assert.equal(statusOf(good), '0');
});

test('a message over the receive limit is RESOURCE_EXHAUSTED before it is buffered', async () => {
  const r = await call('/etcdserverpb.KV/Range', frameMessage(Buffer.alloc(5000)));
  assert.equal(statusOf(r), String(Code.RESOURCE_EXHAUSTED));
  assert.match(messageOf(r), /received message larger than max \(5000 vs\. 1024\)/);
});

test('bidi stream: messages split across chunks are reassembled, answered in order', async () => {
  const msgs = [1, 2, 3].map((id) =>
    frameMessage(WatchRequest.encode(WatchRequest.fromPartial({ createRequest: { watchId: id } })).finish()),
  );
  msgs.push(
    frameMessage(WatchRequest.encode(WatchRequest.fromPartial({ cancelRequest: { watchId: 1 } })).finish()),
  );
  const all = Buffer.concat(msgs);
  const r = await new Promise<Reply>((resolve, reject) => {
    const req = client.request({
      ':method': 'POST',
      ':path': '/etcdserverpb.Watch/Watch',
      'content-type': 'application/grpc',
    });
    let trailers: http2.IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    req.on('trailers', (t) => (trailers = t));
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const buf = Buffer.concat(chunks);
      const messages: Buffer[] = [];
      for (let off = 0; off < buf.length; ) {
        const len = buf.readUInt32BE(off + 1);
        messages.push(buf.subarray(off + 5, off + 5 + len));
        off += 5 + len;
      }
      resolve({ headers: {}, trailers, messages });
    });
    req.on('error', reject);
    for (let i = 0; i < all.length; i += 3) req.write(all.subarray(i, i + 3)); // 3-byte chunks
  });
  assert.equal(statusOf(r), '0');
  assert.deepEqual(
    r.messages.map((m) => WatchResponse.decode(m).watchId),
    [1, 2, 3],
  );
});

test('plain HTTP/1.1 shares the port', async () => {
  const text = await fetch(`http://127.0.0.1:${port}/version`).then((r) => r.text());
  assert.equal(text, 'http1 ok');
});
