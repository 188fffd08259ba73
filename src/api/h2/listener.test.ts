// ClientListener with Node's own HTTP/2 client, which sends whatever :authority it is given, with
// Huffman strings and dynamic-table references (nghttp2's encoder): the repair path end to end,
// the fast path left alone, clients that wait for the server preface, idle clients, HTTP/1.1.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import http from 'node:http';
import http2 from 'node:http2';
import { after, before, test } from 'node:test';
import { ClientListener } from '../listener.js';

let listener: ClientListener;
let port: number;

before(async () => {
  listener = new ClientListener(
    {
      onStream(stream, headers) {
        const path = headers[':path'] ?? '/';
        if (path.startsWith('/big/')) {
          // a large response: exercises server-to-client backpressure through the filter
          const n = Number(path.slice(5));
          stream.respond({ ':status': 200 });
          stream.end(Buffer.alloc(n, 'z'));
          return;
        }
        // echo the authority and a digest of the request body
        const hash = createHash('sha256');
        let size = 0;
        stream.on('data', (d: Buffer) => {
          hash.update(d);
          size += d.length;
        });
        stream.on('end', () => {
          stream.respond({ ':status': 200 });
          stream.end(
            `${headers[':authority']} ${headers['x-n'] ?? ''} ${size} ${hash.digest('hex').slice(0, 16)}`,
          );
        });
      },
      onHttp1: (_req, res) => res.end('http1 ok'),
    },
    { sniffTimeoutMs: 300 },
  );
  port = (await listener.listen('127.0.0.1', 0)).port;
});

after(() => listener.close());

function request(
  client: http2.ClientHttp2Session,
  headers: http2.OutgoingHttpHeaders,
  body?: Buffer,
): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const req = client.request({ ':method': body ? 'POST' : 'GET', ...headers });
    const chunks: Buffer[] = [];
    req.on('data', (d: Buffer) => chunks.push(d));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
    req.end(body);
  });
}

const connect = () => {
  const c = http2.connect(`http://127.0.0.1:${port}`);
  c.on('error', () => {});
  return c;
};

const digest = (b: Buffer) => createHash('sha256').update(b).digest('hex').slice(0, 16);

test('a connection whose first request has a scheme in :authority is repaired, request after request', async () => {
  const before = listener.repairedConnections;
  const c = connect();
  const good = `127.0.0.1:${port}`;
  const authorities = [`http://${good}`, good, 'unix:///run/etcd.sock', `http://${good}/some/path`];
  for (let i = 0; i < 6; i++) {
    for (const a of authorities) {
      // the same headers again and again: nghttp2 indexes them and refers back; x-n changes
      const body = (await request(c, { ':path': '/echo', ':authority': a, 'x-n': `r${i}` })).toString();
      const want = a.startsWith('unix') ? 'localhost' : good;
      assert.equal(body, `${want} r${i} 0 ${digest(Buffer.alloc(0))}`);
    }
  }
  assert.equal(listener.repairedConnections, before + 1);
  c.close();
});

test('repaired connections carry large headers, bodies both ways and concurrent streams', async () => {
  const c = connect();
  const bad = `http://127.0.0.1:${port}`;
  await request(c, { ':path': '/echo', ':authority': bad });
  const upload = Buffer.alloc(3 << 20);
  for (let i = 0; i < upload.length; i++) upload[i] = (i * 7919) & 0xff;
  const results = await Promise.all([
    request(c, { ':path': '/echo', ':authority': bad, 'x-n': 'x'.repeat(50_000) }, upload),
    request(c, { ':path': '/big/5000000', ':authority': bad }),
    ...Array.from({ length: 50 }, (_, i) =>
      request(c, { ':path': '/echo', ':authority': bad, 'x-n': `c${i}` }),
    ),
  ]);
  assert.equal(
    results[0].toString(),
    `127.0.0.1:${port} ${'x'.repeat(50_000)} ${upload.length} ${digest(upload)}`,
  );
  assert.equal(results[1].length, 5_000_000);
  for (const [i, r] of results.slice(2).entries()) {
    assert.match(r.toString(), new RegExp(`^127\\.0\\.0\\.1:${port} c${i} 0 `));
  }
  c.close();
});

test('clients that wait for the server preface get one; well-behaved ones still take the fast path', async () => {
  for (const [authority, repaired] of [
    [`127.0.0.1:${port}`, 0],
    [`http://127.0.0.1:${port}`, 1],
  ] as const) {
    const before = listener.repairedConnections;
    const c = connect();
    // like grpc-go and grpc-js: no request before the server's SETTINGS (here: the listener's)
    await new Promise((resolve) => c.once('remoteSettings', resolve));
    await new Promise((resolve) => setTimeout(resolve, 20)); // let the ACK go out first
    for (let i = 0; i < 3; i++) {
      const body = await request(c, { ':path': '/echo', ':authority': authority, 'x-n': `w${i}` });
      assert.match(body.toString(), new RegExp(`^127\\.0\\.0\\.1:${port} w${i} `));
    }
    // the real server's settings arrived too, and its SETTINGS ACK bookkeeping is intact
    await new Promise<void>((resolve, reject) => c.ping((err) => (err ? reject(err) : resolve())));
    assert.equal(c.remoteSettings.initialWindowSize, 1 << 20);
    assert.equal(listener.repairedConnections, before + repaired);
    c.close();
  }
});

test('idle clients: a PING or the sniff timeout hands them over', async () => {
  const before = listener.repairedConnections;
  const c = connect();
  await new Promise((resolve) => c.once('remoteSettings', resolve));
  await new Promise<void>((resolve, reject) => c.ping((err) => (err ? reject(err) : resolve())));
  assert.ok((await request(c, { ':path': '/echo' })).toString().startsWith(`127.0.0.1:${port} `));
  c.close();

  const d = connect();
  await new Promise((resolve) => d.once('remoteSettings', resolve));
  await new Promise((resolve) => setTimeout(resolve, 500)); // beyond sniffTimeoutMs
  assert.ok((await request(d, { ':path': '/echo' })).toString().startsWith(`127.0.0.1:${port} `));
  assert.equal(listener.repairedConnections, before);
  d.close();
});

test('HTTP/1.1 on the same port is unaffected', async () => {
  const body = await new Promise<string>((resolve, reject) => {
    http
      .get(`http://127.0.0.1:${port}/health`, (res) => {
        let s = '';
        res.on('data', (d) => (s += d));
        res.on('end', () => resolve(s));
      })
      .on('error', reject);
  });
  assert.equal(body, 'http1 ok');
});

test('closing the listener closes repaired connections', async () => {
  const l = new ClientListener({
    onStream: (stream) => {
      stream.respond({ ':status': 200 });
      stream.end('ok');
    },
    onHttp1: (_req, res) => res.end(),
  });
  const p = (await l.listen('127.0.0.1', 0)).port;
  const c = http2.connect(`http://127.0.0.1:${p}`);
  c.on('error', () => {});
  assert.equal((await request(c, { ':path': '/', ':authority': `http://127.0.0.1:${p}` })).toString(), 'ok');
  assert.equal(l.repairedConnections, 1);
  const closed = new Promise((resolve) => c.once('close', resolve));
  await l.close();
  await closed;
});

test('connections accepted before serve() wait, unread, and are served once it is called', {
  timeout: 10_000,
}, async () => {
  const held = new ClientListener(undefined, { sniffTimeoutMs: 300 });
  const heldPort = (await held.listen('127.0.0.1', 0)).port;
  try {
    let answered = 0;
    const h1 = new Promise<string>((resolve, reject) => {
      http
        .get({ host: '127.0.0.1', port: heldPort, path: '/x', agent: false }, (res) => {
          let body = '';
          res.on('data', (d: Buffer) => (body += d.toString()));
          res.on('end', () => resolve(body));
        })
        .on('error', reject);
    }).finally(() => answered++);
    const h2client = http2.connect(`http://127.0.0.1:${heldPort}`);
    const h2 = request(h2client, { ':path': '/y' }).finally(() => answered++);
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(answered, 0, 'nothing is answered before serve()');
    held.serve({
      onStream(stream, headers) {
        stream.respond({ ':status': 200 });
        stream.end(`h2 ${headers[':path']}`);
      },
      onHttp1: (req, res) => res.end(`h1 ${req.url}`),
    });
    assert.equal(await h1, 'h1 /x');
    assert.equal((await h2).toString(), 'h2 /y');
    h2client.close();
  } finally {
    await held.close();
  }
});
