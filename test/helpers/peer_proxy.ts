// A TCP forwarder in front of every member's peer port, so a test can cut and heal raft traffic
// between members, per direction. Members advertise the proxy's port and listen on their real one;
// every member dials the advertised URLs, so every peer connection passes through here.
//
// A peer connection is dialed by one member (the source) to another (the destination). The proxy
// parses each HTTP request on it (head, then the body by Content-Length or chunked encoding) to learn
// who dialed (X-PeerURLs, or X-Server-From once member IDs are known) and which way raft messages
// flow on it: a pipeline or snapshot POST carries messages source -> destination; a stream GET
// (/raft/stream/...) carries messages destination -> source in its response. `cut(a, b)` drops every
// connection on which messages flow from a to b, now and later, until `heal(a, b)`.
// Requests that name no source (version and member probes) are dropped only when the destination
// is cut off from every other member in that direction.
import net from 'node:net';

export interface ProxiedMember {
  name: string;
  /** The port members dial (advertised in --initial-advertise-peer-urls and --initial-cluster). */
  proxyPort: number;
  /** The member's own peer port (--listen-peer-urls). */
  targetPort: number;
}

interface Flow {
  from: string;
  to: string;
}

interface Conn {
  dst: string;
  src: string | undefined;
  flows: Flow[];
  unknown: boolean;
  client: net.Socket;
  upstream: net.Socket;
}

const MAX_HEAD = 64 * 1024;

/** Incremental parser of HTTP/1.1 requests in the client -> server direction. */
class RequestParser {
  private buf: Buffer = Buffer.alloc(0);
  private state: 'head' | 'body' | 'chunk-size' | 'chunk-data' | 'trailer' = 'head';
  private remaining = 0;

  constructor(
    private readonly onHead: (method: string, path: string, headers: Map<string, string>) => void,
  ) {}

  /** Returns false when the bytes are not HTTP (the caller then stops parsing). */
  push(data: Buffer): boolean {
    this.buf = this.buf.length === 0 ? data : Buffer.concat([this.buf, data]);
    for (;;) {
      if (this.state === 'head') {
        const end = this.buf.indexOf('\r\n\r\n');
        if (end < 0) return this.buf.length <= MAX_HEAD;
        const lines = this.buf.subarray(0, end).toString('latin1').split('\r\n');
        this.buf = this.buf.subarray(end + 4);
        const [method = '', path = ''] = (lines[0] ?? '').split(' ');
        const headers = new Map<string, string>();
        for (const line of lines.slice(1)) {
          const i = line.indexOf(':');
          if (i > 0) headers.set(line.slice(0, i).trim().toLowerCase(), line.slice(i + 1).trim());
        }
        this.onHead(method, path, headers);
        if ((headers.get('transfer-encoding') ?? '').toLowerCase().includes('chunked')) {
          this.state = 'chunk-size';
        } else {
          this.remaining = Number(headers.get('content-length') ?? '0') || 0;
          this.state = this.remaining > 0 ? 'body' : 'head';
        }
      } else if (this.state === 'body' || this.state === 'chunk-data') {
        const n = Math.min(this.remaining, this.buf.length);
        this.buf = this.buf.subarray(n);
        this.remaining -= n;
        if (this.remaining > 0) return true;
        this.state = this.state === 'body' ? 'head' : 'chunk-size';
      } else if (this.state === 'chunk-size') {
        const end = this.buf.indexOf('\r\n');
        if (end < 0) return this.buf.length < 1024;
        const line = this.buf.subarray(0, end).toString('latin1');
        this.buf = this.buf.subarray(end + 2);
        if (line === '') continue; // the CRLF after a chunk's data
        const size = Number.parseInt(line.split(';')[0]!, 16);
        if (Number.isNaN(size)) return false;
        if (size === 0) this.state = 'trailer';
        else {
          this.remaining = size;
          this.state = 'chunk-data';
        }
      } else {
        // trailer: header lines until an empty line
        const end = this.buf.indexOf('\r\n');
        if (end < 0) return this.buf.length < MAX_HEAD;
        const empty = end === 0;
        this.buf = this.buf.subarray(end + 2);
        if (empty) this.state = 'head';
      }
    }
  }
}

export class PeerProxy {
  private readonly servers = new Map<string, net.Server>();
  private readonly members = new Map<string, ProxiedMember>();
  private readonly urlToName = new Map<string, string>();
  private readonly idToName = new Map<string, string>();
  private readonly cuts = new Set<string>();
  private readonly conns = new Set<Conn>();
  /** Connections refused or dropped because of a cut, per "from>to" (for assertions and debugging). */
  readonly dropped = new Map<string, number>();

  /** Starts forwarding proxyPort -> targetPort on 127.0.0.1 for one member. */
  async add(m: ProxiedMember): Promise<void> {
    this.members.set(m.name, m);
    this.urlToName.set(`http://127.0.0.1:${m.proxyPort}`, m.name);
    this.urlToName.set(`http://localhost:${m.proxyPort}`, m.name);
    const server = net.createServer((client) => this.accept(m, client));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(m.proxyPort, '127.0.0.1', () => resolve());
    });
    this.servers.set(m.name, server);
  }

  /** Lets the proxy recognise X-Server-From (hex member ID) as well as X-PeerURLs. */
  setMemberId(name: string, idHex: string): void {
    this.idToName.set(idHex.toLowerCase().replace(/^0+/, ''), name);
  }

  names(): string[] {
    return [...this.members.keys()];
  }

  /** Drops raft messages flowing from `from` to `to` (one direction). */
  cut(from: string, to: string): void {
    this.cuts.add(`${from}>${to}`);
    for (const c of [...this.conns]) if (this.blocked(c)) this.drop(c);
  }

  heal(from: string, to: string): void {
    this.cuts.delete(`${from}>${to}`);
  }

  /** Cuts every link between `name` and the other members, both directions. */
  isolate(name: string): void {
    for (const other of this.members.keys()) {
      if (other === name) continue;
      this.cut(name, other);
      this.cut(other, name);
    }
  }

  /** Splits the members into groups that cannot reach each other. */
  partition(...groups: string[][]): void {
    for (const a of groups) {
      for (const b of groups) {
        if (a === b) continue;
        for (const x of a) for (const y of b) this.cut(x, y);
      }
    }
  }

  healAll(): void {
    this.cuts.clear();
  }

  isCut(from: string, to: string): boolean {
    return this.cuts.has(`${from}>${to}`);
  }

  async close(): Promise<void> {
    for (const c of this.conns) {
      c.client.destroy();
      c.upstream.destroy();
    }
    this.conns.clear();
    await Promise.all(
      [...this.servers.values()].map((s) => new Promise<void>((resolve) => s.close(() => resolve()))),
    );
    this.servers.clear();
  }

  private isolatedInbound(dst: string): boolean {
    const others = [...this.members.keys()].filter((n) => n !== dst);
    return others.length > 0 && others.every((o) => this.cuts.has(`${o}>${dst}`));
  }

  private blocked(c: Conn): boolean {
    if (c.unknown && this.isolatedInbound(c.dst)) return true;
    return c.flows.some((f) => this.cuts.has(`${f.from}>${f.to}`));
  }

  private drop(c: Conn): void {
    const key = c.flows.length > 0 ? `${c.flows[0]!.from}>${c.flows[0]!.to}` : `?>${c.dst}`;
    this.dropped.set(key, (this.dropped.get(key) ?? 0) + 1);
    c.client.destroy();
    c.upstream.destroy();
    this.conns.delete(c);
  }

  private sourceOf(headers: Map<string, string>): string | undefined {
    for (const u of (headers.get('x-peerurls') ?? '').split(',')) {
      const name = this.urlToName.get(u.trim().replace(/\/+$/, ''));
      if (name !== undefined) return name;
    }
    const from = headers.get('x-server-from');
    if (from !== undefined) return this.idToName.get(from.toLowerCase().replace(/^0+/, ''));
    return undefined;
  }

  private accept(m: ProxiedMember, client: net.Socket): void {
    const upstream = net.connect(m.targetPort, '127.0.0.1');
    const conn: Conn = { dst: m.name, src: undefined, flows: [], unknown: false, client, upstream };
    this.conns.add(conn);
    let parsing = true;
    const parser = new RequestParser((method, path, headers) => {
      const src = this.sourceOf(headers) ?? conn.src;
      conn.src = src;
      if (src === undefined) {
        conn.unknown = true;
      } else if (method === 'GET' && path.startsWith('/raft/stream')) {
        conn.flows.push({ from: m.name, to: src });
      } else {
        conn.flows.push({ from: src, to: m.name });
      }
    });
    const close = () => {
      this.conns.delete(conn);
      client.destroy();
      upstream.destroy();
    };
    client.on('data', (data: Buffer) => {
      if (parsing && !parser.push(data)) {
        parsing = false;
        conn.unknown = true;
      }
      if (this.blocked(conn)) {
        this.drop(conn);
        return;
      }
      if (!upstream.write(data)) client.pause();
    });
    upstream.on('drain', () => client.resume());
    upstream.on('data', (data: Buffer) => {
      if (!client.write(data)) upstream.pause();
    });
    client.on('drain', () => upstream.resume());
    client.on('error', close);
    upstream.on('error', close);
    client.on('close', close);
    upstream.on('close', close);
  }
}
