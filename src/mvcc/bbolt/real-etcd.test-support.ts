// Test support: run the real etcd 3.4 / etcdctl binaries (when installed) for interop tests.

import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

export const ETCD_BIN = process.env.ETCD_BIN ?? '/usr/bin/etcd';
export const ETCDCTL_BIN = process.env.ETCDCTL_BIN ?? '/usr/bin/etcdctl';

export function realEtcdAvailable(): boolean {
  return existsSync(ETCD_BIN) && existsSync(ETCDCTL_BIN);
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => resolve(typeof addr === 'object' && addr ? addr.port : 0));
    });
  });
}

export async function etcdctl(args: string[], endpoint?: string): Promise<string> {
  const full = endpoint ? [`--endpoints=${endpoint}`, ...args] : args;
  const { stdout } = await execFileP(ETCDCTL_BIN, full, {
    env: { ...process.env, ETCDCTL_API: '3' },
    maxBuffer: 64 << 20,
  });
  return stdout;
}

export interface RealEtcd {
  endpoint: string;
  peerUrl: string;
  name: string;
  stop(): Promise<void>;
  log(): string;
}

/** Starts a single-member etcd on loopback; resolves once /health answers. */
export async function startEtcd(opts: {
  dataDir: string;
  name?: string;
  peerPort?: number;
}): Promise<RealEtcd> {
  const name = opts.name ?? 'n';
  const clientPort = await freePort();
  const peerPort = opts.peerPort ?? (await freePort());
  const endpoint = `http://127.0.0.1:${clientPort}`;
  const peerUrl = `http://127.0.0.1:${peerPort}`;
  const child: ChildProcess = spawn(
    ETCD_BIN,
    [
      `--name=${name}`,
      `--data-dir=${opts.dataDir}`,
      `--listen-client-urls=${endpoint}`,
      `--advertise-client-urls=${endpoint}`,
      `--listen-peer-urls=${peerUrl}`,
      `--initial-advertise-peer-urls=${peerUrl}`,
      `--initial-cluster=${name}=${peerUrl}`,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let log = '';
  child.stdout?.on('data', (d) => (log += d));
  child.stderr?.on('data', (d) => (log += d));
  let exited = false;
  const exitP = new Promise<void>((resolve) =>
    child.on('exit', () => {
      exited = true;
      resolve();
    }),
  );
  const stop = async () => {
    if (!exited) {
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exitP;
      clearTimeout(t);
    }
  };
  const deadline = Date.now() + 20000;
  for (;;) {
    if (exited) throw new Error(`etcd exited early:\n${log}`);
    try {
      const res = await fetch(`${endpoint}/health`);
      const body = (await res.json()) as { health?: string };
      if (body.health === 'true') break;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`etcd did not become healthy:\n${log}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { endpoint, peerUrl, name, stop, log: () => log };
}
