// Multi-member clusters of bin/etcd processes on loopback for integration tests. Every member
// listens for peers on its own port and advertises a port of a PeerProxy (peer_proxy.ts), so a test
// can cut links; --initial-cluster lists the advertised URLs, so every member dials through the proxy.

import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { noop } from 'cockatiel';
import { Etcd3, type IOptions } from 'etcd3';
import { PeerProxy } from './peer_proxy.js';
import { ETCD_TS_BIN, etcdctl, freePort, removeDir, tempDir } from './process.js';

export interface ClusterOptions {
  /** Member names; default infra0..infra{size-1}. */
  names?: string[];
  size?: number;
  token?: string;
  heartbeatMs?: number;
  electionMs?: number;
  snapshotCount?: number;
  /** Put a PeerProxy on every peer link (default true). */
  proxy?: boolean;
  extraArgs?: string[];
  bin?: string;
  startTimeoutMs?: number;
}

export interface MemberProc {
  readonly child: ChildProcess;
  output(): string;
  readonly exited: Promise<number | null>;
}

export class Member {
  proc: MemberProc | undefined;
  /** Output of earlier runs of this member (kept for failure messages). */
  history = '';
  constructor(
    readonly name: string,
    readonly clientPort: number,
    readonly peerPort: number,
    readonly advertisedPeerPort: number,
    readonly dataDir: string,
  ) {}
  get clientUrl(): string {
    return `http://127.0.0.1:${this.clientPort}`;
  }
  get listenPeerUrl(): string {
    return `http://127.0.0.1:${this.peerPort}`;
  }
  get peerUrl(): string {
    return `http://127.0.0.1:${this.advertisedPeerPort}`;
  }
  get running(): boolean {
    return (
      this.proc !== undefined && this.proc.child.exitCode === null && this.proc.child.signalCode === null
    );
  }
  output(): string {
    return this.history + (this.proc?.output() ?? '');
  }
}

export interface StartMemberOptions {
  state?: 'new' | 'existing';
  /** --initial-cluster; default: all members of this Cluster object. */
  initialCluster?: string;
  extraArgs?: string[];
  /** --initial-cluster-token; default: the cluster's. */
  token?: string;
  /** Wait for "ready to serve client requests" (default true). */
  waitReady?: boolean;
  readyText?: RegExp;
  timeoutMs?: number;
}

const OUTPUT_CAP = 2_000_000;

/** An etcd3 client that never retries on its own (so each call is one attempt, for histories). */
export function noRetryClient(hosts: string | string[], extra: Partial<IOptions> = {}): Etcd3 {
  return new Etcd3({
    hosts,
    dialTimeout: 2000,
    faultHandling: { host: () => noop, global: noop },
    ...extra,
  });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export class Cluster {
  readonly members: Member[] = [];
  readonly proxy: PeerProxy | undefined;
  readonly dir: string;
  private readonly clients = new Set<Etcd3>();

  private constructor(
    readonly opts: Required<Omit<ClusterOptions, 'names' | 'size'>>,
    proxy: boolean,
  ) {
    this.dir = tempDir('etcd-ts-cluster-');
    this.proxy = proxy ? new PeerProxy() : undefined;
  }

  /** Creates the members (ports, data dirs, proxies) and, unless `start` is false, starts them all. */
  static async create(options: ClusterOptions = {}, start = true): Promise<Cluster> {
    const names = options.names ?? Array.from({ length: options.size ?? 3 }, (_, i) => `infra${i}`);
    const c = new Cluster(
      {
        token: options.token ?? 'etcd-cluster-1',
        heartbeatMs: options.heartbeatMs ?? 50,
        electionMs: options.electionMs ?? 500,
        snapshotCount: options.snapshotCount ?? 0,
        proxy: options.proxy ?? true,
        extraArgs: options.extraArgs ?? [],
        bin: options.bin ?? ETCD_TS_BIN,
        startTimeoutMs: options.startTimeoutMs ?? 30_000,
      },
      options.proxy ?? true,
    );
    try {
      for (const name of names) await c.addMember(name);
      if (start) await Promise.all(names.map((n) => c.start(n, { state: 'new' })));
    } catch (err) {
      await c.close();
      throw err;
    }
    return c;
  }

  /** Allocates ports and a data dir for a member (and its proxy); does not start it. */
  async addMember(name: string): Promise<Member> {
    const clientPort = await freePort();
    const peerPort = await freePort();
    const advertised = this.proxy ? await freePort() : peerPort;
    const m = new Member(name, clientPort, peerPort, advertised, join(this.dir, `${name}.etcd`));
    if (this.proxy) await this.proxy.add({ name, proxyPort: advertised, targetPort: peerPort });
    this.members.push(m);
    return m;
  }

  member(name: string): Member {
    const m = this.members.find((x) => x.name === name);
    if (m === undefined) throw new Error(`no member ${name}`);
    return m;
  }

  initialCluster(names: string[] = this.members.map((m) => m.name)): string {
    return names.map((n) => `${n}=${this.member(n).peerUrl}`).join(',');
  }

  running(): Member[] {
    return this.members.filter((m) => m.running);
  }

  /** Comma-separated client URLs (of running members, or of the given names). */
  endpoints(names?: string[]): string {
    return (names ? names.map((n) => this.member(n)) : this.running()).map((m) => m.clientUrl).join(',');
  }

  async start(name: string, so: StartMemberOptions = {}): Promise<Member> {
    const m = this.member(name);
    if (m.running) throw new Error(`${name} is already running`);
    if (m.proc) m.history += m.proc.output();
    const o = this.opts;
    const args = [
      '--name',
      name,
      '--data-dir',
      m.dataDir,
      '--listen-client-urls',
      m.clientUrl,
      '--advertise-client-urls',
      m.clientUrl,
      '--listen-peer-urls',
      m.listenPeerUrl,
      '--initial-advertise-peer-urls',
      m.peerUrl,
      '--initial-cluster',
      so.initialCluster ?? this.initialCluster(),
      '--initial-cluster-token',
      so.token ?? o.token,
      '--initial-cluster-state',
      so.state ?? 'new',
      '--heartbeat-interval',
      String(o.heartbeatMs),
      '--election-timeout',
      String(o.electionMs),
      ...(o.snapshotCount > 0 ? ['--snapshot-count', String(o.snapshotCount)] : []),
      ...o.extraArgs,
      ...(so.extraArgs ?? []),
    ];
    const child = spawn(o.bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const onData = (b: Buffer) => {
      out += b.toString();
      if (out.length > OUTPUT_CAP) out = out.slice(out.length - OUTPUT_CAP / 2);
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    m.proc = { child, output: () => out, exited };
    if (so.waitReady === false) return m;
    await this.waitForOutput(
      m,
      so.readyText ?? /ready to serve client requests/,
      so.timeoutMs ?? o.startTimeoutMs,
    );
    return m;
  }

  /** Waits until the member's output (of its current run) matches `re`. */
  async waitForOutput(m: Member, re: RegExp, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (re.test(m.proc?.output() ?? '')) return;
      if (!m.running) throw new Error(`${m.name} exited before ${re}; output:\n${tail(m.output())}`);
      if (Date.now() > deadline)
        throw new Error(`${m.name}: no ${re} in ${timeoutMs} ms; output:\n${tail(m.output())}`);
      await sleep(50);
    }
  }

  /** SIGKILL and wait for exit. */
  async kill(name: string): Promise<void> {
    const m = this.member(name);
    if (!m.proc) return;
    if (m.running) m.proc.child.kill('SIGKILL');
    await m.proc.exited;
  }

  /** SIGTERM and wait for exit (SIGKILL after 10 s). */
  async stop(name: string): Promise<void> {
    const m = this.member(name);
    if (!m.proc) return;
    if (m.running) m.proc.child.kill('SIGTERM');
    const t = setTimeout(() => m.running && m.proc?.child.kill('SIGKILL'), 10_000);
    await m.proc.exited;
    clearTimeout(t);
  }

  /** Restarts a stopped member on its data dir (the initial-cluster flags are then ignored). */
  async restart(name: string, so: StartMemberOptions = {}): Promise<Member> {
    await this.kill(name);
    return this.start(name, so);
  }

  /** A client to the given members (default all running); closed by close(). */
  client(names?: string[], extra: Partial<IOptions> = {}): Etcd3 {
    const hosts = (names ? names.map((n) => this.member(n)) : this.running()).map((m) => m.clientUrl);
    const c = new Etcd3({ hosts, dialTimeout: 3000, ...extra });
    this.clients.add(c);
    return c;
  }

  /** A client to one member that never retries; closed by close(). */
  noRetryClient(name: string, extra: Partial<IOptions> = {}): Etcd3 {
    const c = noRetryClient(this.member(name).clientUrl, extra);
    this.clients.add(c);
    return c;
  }

  /** Maintenance.Status of one member, or undefined when it does not answer within `timeoutMs`. */
  async status(name: string, timeoutMs = 2000) {
    const c = noRetryClient(this.member(name).clientUrl, { dialTimeout: timeoutMs });
    try {
      return await c.maintenance.status({ deadline: new Date(Date.now() + timeoutMs) });
    } catch {
      return undefined;
    } finally {
      c.close();
    }
  }

  /** Member ID (decimal string, as etcd3 returns it) -> name, from a member list. */
  async memberIds(via?: string): Promise<Map<string, string>> {
    const c = noRetryClient(this.member(via ?? this.running()[0]!.name).clientUrl);
    try {
      const res = await c.cluster.memberList({}, { deadline: new Date(Date.now() + 5000) });
      const map = new Map<string, string>();
      for (const m of res.members) {
        const byUrl = this.members.find((x) => m.peerURLs.includes(x.peerUrl));
        map.set(String(m.ID), m.name || byUrl?.name || '');
        if (byUrl && this.proxy) this.proxy.setMemberId(byUrl.name, BigInt(m.ID).toString(16));
      }
      return map;
    } finally {
      c.close();
    }
  }

  /**
   * Waits until every member in `among` (default: running) answers Status and they all name the
   * same leader, which is one of them; returns the leader's name.
   */
  async waitForLeader(timeoutMs = 10_000, among?: string[]): Promise<string> {
    const names = among ?? this.running().map((m) => m.name);
    const deadline = Date.now() + timeoutMs;
    let last = '';
    for (;;) {
      const statuses = await Promise.all(names.map((n) => this.status(n, 1000)));
      const leaders = new Set(statuses.map((s) => (s ? String(s.leader) : 'none')));
      if (leaders.size === 1 && !leaders.has('none') && !leaders.has('0')) {
        const ids = await this.memberIds(names[0]).catch(() => new Map<string, string>());
        const leader = ids.get([...leaders][0]!);
        if (leader !== undefined && names.includes(leader)) return leader;
        last = `leader ${[...leaders][0]} is not among ${names.join(',')}`;
      } else {
        last = statuses
          .map((s, i) => `${names[i]}: ${s ? `leader ${s.leader} term ${s.raftTerm}` : 'no answer'}`)
          .join('; ');
      }
      if (Date.now() > deadline) throw new Error(`no agreed leader within ${timeoutMs} ms: ${last}`);
      await sleep(100);
    }
  }

  /**
   * Waits until the given members (default: running) are at the same revision and their HashKV
   * at that revision (etcdctl endpoint hashkv --rev) agrees; returns the hash. Throws with the
   * per-member values on timeout.
   */
  async waitHashKVAgree(timeoutMs = 15_000, names?: string[]): Promise<{ hash: number; revision: string }> {
    const ms = names ? names.map((n) => this.member(n)) : this.running();
    const deadline = Date.now() + timeoutMs;
    let last = '';
    for (;;) {
      const statuses = await Promise.all(ms.map((m) => this.status(m.name, 2000)));
      const revs = new Set(statuses.map((s) => (s ? String(s.header.revision) : 'none')));
      if (revs.size === 1 && !revs.has('none')) {
        const rev = [...revs][0]!;
        const r = await etcdctl(this.endpoints(ms.map((m) => m.name)), [
          'endpoint',
          'hashkv',
          '--rev',
          rev,
          '-w',
          'json',
        ]);
        if (r.code === 0) {
          const hs = JSON.parse(r.stdout) as { Endpoint: string; HashKV: { hash: number } }[];
          const hashes = new Set(hs.map((h) => h.HashKV.hash));
          if (hs.length === ms.length && hashes.size === 1) return { hash: [...hashes][0]!, revision: rev };
          last = `at revision ${rev}: ${hs.map((h) => `${h.Endpoint} ${h.HashKV.hash}`).join('; ')}`;
        } else {
          last = `etcdctl endpoint hashkv --rev ${rev}: ${r.stderr}`;
        }
      } else {
        last = statuses
          .map((s, i) => `${ms[i]!.name}: ${s ? `revision ${s.header.revision}` : 'no answer'}`)
          .join('; ');
      }
      if (Date.now() > deadline) throw new Error(`HashKV did not agree within ${timeoutMs} ms: ${last}`);
      await sleep(200);
    }
  }

  /** Kills every member, closes clients and proxies, removes the data dirs. */
  async close(): Promise<void> {
    for (const c of this.clients) c.close();
    this.clients.clear();
    await Promise.all(this.members.map((m) => this.kill(m.name)));
    await this.proxy?.close();
    removeDir(this.dir);
  }

  /** Recent output of every member, for assertion messages. */
  logs(lines = 30): string {
    return this.members.map((m) => `--- ${m.name}\n${tail(m.output(), lines)}`).join('\n');
  }
}

export function tail(s: string, lines = 40): string {
  return s.split('\n').slice(-lines).join('\n');
}

/** Writers that put unique keys through whichever members are running; records what was acknowledged. */
export class WriteLoad {
  readonly acked = new Map<string, string>();
  readonly errors: string[] = [];
  private stopped = false;
  private readonly loops: Promise<void>[] = [];
  private seq = 0;
  lastAck = 0;

  constructor(
    private readonly c: Cluster,
    writers: number,
    private readonly prefix: string,
  ) {
    for (let i = 0; i < writers; i++) this.loops.push(this.loop(i));
  }

  private async loop(w: number): Promise<void> {
    const clients = new Map<string, Etcd3>();
    let turn = w;
    while (!this.stopped) {
      const up = this.c.running();
      if (up.length === 0) {
        await sleep(50);
        continue;
      }
      const m = up[turn++ % up.length]!;
      let client = clients.get(m.name);
      if (!client) clients.set(m.name, (client = this.c.noRetryClient(m.name)));
      const key = `${this.prefix}${w}/${this.seq++}`;
      try {
        await client
          .put(key)
          .value(key)
          .options({ deadline: new Date(Date.now() + 3000) })
          .exec();
        this.acked.set(key, key);
        this.lastAck = Date.now();
      } catch (err) {
        this.errors.push(`${m.name}: ${(err as Error).message}`);
        await sleep(20);
      }
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.loops);
  }
}

/** Asserts that every acknowledged key reads back with its value through `name` (a linearizable read). */
export async function assertAllAcked(
  c: Cluster,
  name: string,
  prefix: string,
  acked: Map<string, string>,
): Promise<void> {
  const client = c.noRetryClient(name);
  const all = await client.getAll().prefix(prefix).strings();
  const missing = [...acked].filter(([k, v]) => all[k] !== v).map(([k]) => k);
  assert.deepEqual(
    missing.slice(0, 20),
    [],
    `${missing.length} of ${acked.size} acknowledged writes missing through ${name}`,
  );
}

/** Resolves to the promise's value, or to `fallback` after `ms` (the timer does not outlive it). */
export async function within<T, F>(p: Promise<T>, ms: number, fallback: F): Promise<T | F> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<F>((r) => (timer = setTimeout(() => r(fallback), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}
