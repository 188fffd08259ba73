// Starts real bin/etcd processes (and the real etcd, when installed) on free loopback ports for
// integration tests, and runs etcdctl against them.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const ETCD_TS_BIN = join(ROOT, 'bin', 'etcd');
export const REAL_ETCD = '/usr/bin/etcd';
export const ETCDCTL = process.env.ETCDCTL ?? '/usr/bin/etcdctl';

export const hasEtcdctl = () => existsSync(ETCDCTL);
export const hasRealEtcd = () => existsSync(REAL_ETCD);

const PORT_DIR = join(tmpdir(), 'etcd-ts-test-ports');
const reserved = new Set<number>();

/**
 * Reserves a port for this process across concurrently running test processes: a file per port,
 * created exclusively, naming the owner's pid (a dead owner's reservation may be taken over).
 */
function reservePort(port: number): boolean {
  if (reserved.has(port)) return false;
  mkdirSync(PORT_DIR, { recursive: true });
  const file = join(PORT_DIR, String(port));
  try {
    writeFileSync(file, String(process.pid), { flag: 'wx' });
  } catch {
    let owner: number;
    try {
      owner = Number(readFileSync(file, 'utf8'));
    } catch {
      return false; // its owner is just releasing it: pick another
    }
    let alive = false;
    try {
      process.kill(owner, 0);
      alive = true;
    } catch {}
    if (alive && owner !== process.pid) return false;
    writeFileSync(file, String(process.pid));
  }
  reserved.add(port);
  return true;
}

process.once('exit', () => {
  for (const port of reserved) rmSync(join(PORT_DIR, String(port)), { force: true });
});

/**
 * A free loopback port for a server a test starts. Picked at random below the kernel's ephemeral
 * range (32768+), where outgoing connections take their ports, and reserved so that neither this
 * process nor a concurrently running test file hands it out twice before a server binds it.
 */
export async function freePort(): Promise<number> {
  for (;;) {
    const port = 24_200 + Math.floor(Math.random() * 8_500);
    if (!reservePort(port)) continue;
    const free = await new Promise<boolean>((resolve) => {
      const srv = net.createServer();
      srv.once('error', () => resolve(false));
      srv.listen({ port, host: '127.0.0.1', exclusive: true }, () => srv.close(() => resolve(true)));
    });
    if (free) return port;
  }
}

export function tempDir(prefix = 'etcd-ts-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export interface EtcdProcess {
  readonly child: ChildProcess;
  readonly clientUrl: string;
  readonly peerUrl: string;
  readonly dataDir: string;
  readonly name: string;
  output(): string;
  /** SIGKILL and wait for exit. */
  kill(): Promise<void>;
  /** SIGTERM and wait for exit. */
  stop(): Promise<number | null>;
}

export interface StartOptions {
  bin?: string;
  name?: string;
  dataDir?: string;
  clientPort?: number;
  peerPort?: number;
  extraArgs?: string[];
  /** Text in the output that means "ready" (default: etcd's "ready to serve client requests"). */
  readyText?: RegExp;
  timeoutMs?: number;
}

export async function startEtcdProcess(opts: StartOptions = {}): Promise<EtcdProcess> {
  const name = opts.name ?? 'default';
  const dataDir = opts.dataDir ?? join(tempDir(), `${name}.etcd`);
  const clientPort = opts.clientPort ?? (await freePort());
  const peerPort = opts.peerPort ?? (await freePort());
  const clientUrl = `http://127.0.0.1:${clientPort}`;
  const peerUrl = `http://127.0.0.1:${peerPort}`;
  const args = [
    '--name',
    name,
    '--data-dir',
    dataDir,
    '--listen-client-urls',
    clientUrl,
    '--advertise-client-urls',
    clientUrl,
    '--listen-peer-urls',
    peerUrl,
    '--initial-advertise-peer-urls',
    peerUrl,
    '--initial-cluster',
    `${name}=${peerUrl}`,
    ...(opts.extraArgs ?? []),
  ];
  const child = spawn(opts.bin ?? ETCD_TS_BIN, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const ready = opts.readyText ?? /ready to serve client requests/;
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`etcd did not become ready in time; output:\n${out}`)),
      opts.timeoutMs ?? 20_000,
    );
    const onData = (b: Buffer) => {
      out += b.toString();
      if (ready.test(out)) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`etcd exited with code ${code} before it was ready; output:\n${out}`));
    });
  });
  return {
    child,
    clientUrl,
    peerUrl,
    dataDir,
    name,
    output: () => out,
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      return exited;
    },
  };
}

export interface CtlResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the real etcdctl (API v3) against the given endpoints. */
export function etcdctl(endpoints: string, args: string[], input?: string): Promise<CtlResult> {
  return new Promise((resolve) => {
    const child = execFile(
      ETCDCTL,
      [`--endpoints=${endpoints}`, '--dial-timeout=5s', '--command-timeout=10s', ...args],
      { env: { ...process.env, ETCDCTL_API: '3' }, timeout: 30_000 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
    if (input !== undefined) child.stdin!.end(input);
  });
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}
