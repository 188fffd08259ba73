// The real etcdctl 3.4 `watch` against bin/etcd: history replay (--rev), live prefix watches,
// --prev-kv, JSON output, interactive mode (watch + progress) and a compacted start revision. When the
// real etcd 3.4.23 is installed, the same session runs against it on the same ports and the outputs
// must match.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { before, describe, it } from 'node:test';
import {
  ETCD_TS_BIN,
  ETCDCTL,
  type EtcdProcess,
  etcdctl,
  freePort,
  hasEtcdctl,
  hasRealEtcd,
  REAL_ETCD,
  removeDir,
  startEtcdProcess,
  tempDir,
} from './helpers/process.js';

interface LongCtl {
  child: ChildProcess;
  out(): string;
  err(): string;
  waitFor(re: RegExp, what: string): Promise<void>;
  write(line: string): void;
  /** SIGKILL; resolves with what it printed */
  stop(): Promise<string>;
  exited: Promise<number | null>;
}

/** Starts a long-running etcdctl (watch) whose output we read as it comes. */
function spawnCtl(endpoint: string, args: string[]): LongCtl {
  const child = spawn(ETCDCTL, [`--endpoints=${endpoint}`, '--dial-timeout=5s', ...args], {
    env: { ...process.env, ETCDCTL_API: '3' },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  const waiters: Array<() => void> = [];
  const poke = () => {
    for (const w of waiters.splice(0)) w();
  };
  child.stdout!.on('data', (b: Buffer) => {
    out += b.toString();
    poke();
  });
  child.stderr!.on('data', (b: Buffer) => {
    err += b.toString();
    poke();
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
  return {
    child,
    out: () => out,
    err: () => err,
    exited,
    write: (line) => child.stdin!.write(`${line}\n`),
    async waitFor(re, what) {
      const deadline = Date.now() + 10_000;
      while (!re.test(out + err)) {
        if (Date.now() > deadline || child.exitCode !== null) {
          throw new Error(`etcdctl ${args.join(' ')}: no ${what}; stdout:\n${out}\nstderr:\n${err}`);
        }
        await new Promise<void>((resolve) => {
          waiters.push(resolve);
          setTimeout(resolve, 50);
        });
      }
    },
    async stop() {
      // a little longer, so that anything extra (a duplicate, a stray event) would show up
      await new Promise((r) => setTimeout(r, 300));
      if (child.exitCode === null) child.kill('SIGKILL');
      await exited;
      return out + (err ? `[stderr]\n${err}` : '');
    },
  };
}

/** The marker puts that wait for a live watch to start: their number varies from run to run. */
const stripReady = (text: string) => text.replace(/^PUT\nfoo\/ready\n(?:yes\nfoo\/ready\n)?yes\n/gm, '');

const count = (text: string, re: RegExp) => (text.match(re) ?? []).length;

/** A watch session a user might run; returns the transcript (what etcdctl printed, per step). */
async function session(bin: string, ports: { client: number; peer: number }): Promise<string[]> {
  const dir = tempDir();
  let proc: EtcdProcess | undefined;
  const live: LongCtl[] = [];
  try {
    proc = await startEtcdProcess({
      bin,
      name: 'watch',
      dataDir: `${dir}/watch.etcd`,
      clientPort: ports.client,
      peerPort: ports.peer,
    });
    const ep = proc.clientUrl;
    const ctl = async (...args: string[]) => {
      const r = await etcdctl(ep, args);
      assert.equal(r.code, 0, `etcdctl ${args.join(' ')}: ${r.stderr}`);
    };
    const out: string[] = [];
    await ctl('put', 'foo', 'a'); // 2
    await ctl('put', 'foo', 'b'); // 3
    await ctl('put', 'foo/x', '1'); // 4
    await ctl('del', 'foo'); // 5
    await ctl('put', 'bar', 'z'); // 6

    // 1. history replay from revision 1 over a prefix
    {
      const w = spawnCtl(ep, ['watch', '--rev', '1', 'foo', '--prefix']);
      live.push(w);
      await w.waitFor(/DELETE\nfoo\n/, 'replayed history');
      out.push(`$ watch --rev 1 foo --prefix\n${await w.stop()}`);
    }
    // 2. history with prev_kv, as JSON (one response carrying all replayed events, header = current)
    {
      const w = spawnCtl(ep, ['watch', '--rev', '2', 'foo', '--prev-kv', '-w', 'json']);
      live.push(w);
      await w.waitFor(/"type":1/, 'replayed delete');
      out.push(`$ watch --rev 2 foo --prev-kv -w json\n${await w.stop()}`);
    }
    // 3. a live prefix watch while keys change
    {
      const w = spawnCtl(ep, ['watch', 'foo', '--prefix', '--prev-kv']);
      live.push(w);
      // the watch is registered asynchronously: write a marker until it shows up
      for (let i = 0; !/foo\/ready/.test(w.out()); i++) {
        assert.ok(i < 100, 'the live watch never started');
        await ctl('put', 'foo/ready', 'yes');
        await new Promise((r) => setTimeout(r, 50));
      }
      await ctl('del', 'foo/ready');
      await ctl('put', 'foo/y', '1');
      await ctl('put', 'foo/y', '2');
      await ctl('put', 'other', 'not watched');
      await ctl('del', 'foo', '--prefix');
      await w.waitFor(/DELETE\nfoo\/y\n2\nfoo\/y\n\n/, 'the prefix delete');
      out.push(`$ watch foo --prefix --prev-kv\n${stripReady(await w.stop())}`);
    }
    // 4. interactive: two watchers on one stream, then a progress request
    {
      const w = spawnCtl(ep, ['watch', '-i']);
      live.push(w);
      w.write('watch --rev 1 foo');
      await w.waitFor(/DELETE\nfoo\n\n/, 'replayed history of foo');
      w.write('watch bar --rev 6 --prev-kv');
      await w.waitFor(/PUT\nbar\nz\n/, 'replayed bar');
      await ctl('put', 'bar', 'zz');
      await w.waitFor(/PUT\nbar\nz\nbar\nzz\n/, 'live bar with prev_kv');
      const rev = JSON.parse((await etcdctl(ep, ['get', 'bar', '-w', 'json'])).stdout).header.revision;
      w.write('progress');
      await w.waitFor(/progress notify: \d+\n(?:.|\n)*progress notify: \d+\n/, 'two progress notifications');
      w.write('bogus');
      await w.waitFor(/Invalid command/, 'the error for an unknown command');
      const text = await w.stop();
      assert.equal(count(text, new RegExp(`progress notify: ${rev}\n`, 'g')), 2, text);
      out.push(`$ watch -i\n${text.replaceAll(`progress notify: ${rev}\n`, 'progress notify: REV\n')}`);
    }
    // 5. a start revision below the compaction point
    {
      await ctl('compact', '4');
      const r = await etcdctl(ep, ['watch', '--rev', '2', 'foo']);
      out.push(`$ watch --rev 2 foo (compacted at 4)\n[exit ${r.code}]\n${r.stdout}${r.stderr}`);
      const w = spawnCtl(ep, ['watch', '--rev', '4', 'foo', '--prefix']);
      live.push(w);
      await w.waitFor(/foo\/x\n1\n/, 'what remains at the compaction revision');
      out.push(`$ watch --rev 4 foo --prefix (compacted at 4)\n${stripReady(await w.stop())}`);
    }
    return out;
  } finally {
    for (const w of live) if (w.child.exitCode === null) w.child.kill('SIGKILL');
    await proc?.kill();
    removeDir(dir);
  }
}

describe('etcdctl watch against etcd-ts', { timeout: 120_000 }, () => {
  const skip = hasEtcdctl() ? false : 'etcdctl not installed (apt-get install etcd-client)';
  let ports: { client: number; peer: number };
  before(async () => {
    ports = { client: await freePort(), peer: await freePort() };
  });

  let ours: string[] = [];
  it('prints the events of history, live changes, prev_kv, interactive watches and compaction', {
    skip,
  }, async () => {
    ours = await session(ETCD_TS_BIN, ports);
    const [hist, json, livePrefix, interactive, compacted, atCompact] = ours;
    assert.equal(
      hist,
      '$ watch --rev 1 foo --prefix\nPUT\nfoo\na\nPUT\nfoo\nb\nPUT\nfoo/x\n1\nDELETE\nfoo\n\n',
    );
    const j = JSON.parse(json!.split('\n')[1]!);
    assert.equal(j.Header.revision, 6);
    assert.equal(j.Events.length, 3);
    assert.deepEqual(
      j.Events.map((e: { prev_kv?: { value: string } }) => e.prev_kv?.value),
      [undefined, 'YQ==', 'Yg=='],
    );
    assert.equal(
      livePrefix,
      '$ watch foo --prefix --prev-kv\n' +
        'DELETE\nfoo/ready\nyes\nfoo/ready\n\n' +
        'PUT\nfoo/y\n1\nPUT\nfoo/y\n1\nfoo/y\n2\n' +
        'DELETE\nfoo/x\n1\nfoo/x\n\nDELETE\nfoo/y\n2\nfoo/y\n\n',
    );
    assert.equal(count(interactive!, /progress notify: REV\n/g), 2, interactive);
    assert.match(compacted!, /watch was canceled \(etcdserver: mvcc: required revision has been compacted\)/);
    assert.match(atCompact!, /PUT\nfoo\/x\n1\n/);
  });

  const refSkip =
    skip || (hasRealEtcd() ? false : 'the real etcd is not installed (apt-get install etcd-server)');
  it('matches the real etcd 3.4.23 running the same session', { skip: refSkip }, async () => {
    if (ours.length === 0) ours = await session(ETCD_TS_BIN, ports);
    const reference = await session(REAL_ETCD, ports);
    const diffs: string[] = [];
    for (let i = 0; i < reference.length; i++) {
      if (ours[i] !== reference[i]) diffs.push(`--- etcd 3.4.23:\n${reference[i]}\n--- etcd-ts:\n${ours[i]}`);
    }
    assert.equal(diffs.length, 0, diffs.join('\n'));
  });
});
