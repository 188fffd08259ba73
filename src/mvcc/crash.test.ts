import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { valueFor } from './crash_child.js';
import { MvccStore } from './store.js';

const child = fileURLToPath(new URL('./crash_child.js', import.meta.url));

/** Runs the writer for about `ms`, SIGKILLs it; returns the last [index, revision] it reported committed. */
function runAndKill(dir: string, ms: number): Promise<{ start: number; saved: number; rev: number }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [child, dir], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    let start = -1;
    p.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (start < 0) {
        const m = /^start (\d+)\n/.exec(out);
        if (m) {
          start = Number(m[1]);
          setTimeout(() => p.kill('SIGKILL'), ms);
        }
      }
    });
    p.on('error', reject);
    p.on('exit', (code, signal) => {
      if (signal !== 'SIGKILL') return reject(new Error(`writer exited with ${code}`));
      const all = [...out.matchAll(/saved (\d+) (\d+)\n/g)];
      const last = all.at(-1);
      resolve({ start, saved: last ? Number(last[1]) : start, rev: last ? Number(last[2]) : 0 });
    });
  });
}

test('a SIGKILLed writer loses nothing it reported committed, and replays nothing twice', {
  timeout: 60000,
}, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mvcc-crash-'));
  try {
    let reported = 0;
    for (let round = 0; round < 4; round++) {
      const { start, saved, rev } = await runAndKill(dir, 200 + round * 50);
      assert.ok(start >= reported, `round ${round}: restarted at ${start}, below reported ${reported}`);
      assert.ok(saved > start, `round ${round}: nothing saved`);
      reported = saved;
      const s = MvccStore.open({ dir });
      try {
        // the store holds exactly the batches up to its consistent index: at least what was reported,
        // at most one more (committed but killed before it was reported)
        const ci = s.consistentIndex;
        assert.ok(
          ci === saved || ci === saved + 1,
          `round ${round}: consistent index ${ci}, reported ${saved}`,
        );
        assert.ok(s.currentRevision >= rev);
        const kv = s.range(Buffer.from(`k${ci % 50}`), undefined).kvs[0];
        assert.ok(kv?.value.equals(valueFor(ci)), `round ${round}: the last batch's write is there`);
        // every key holds its latest write at or below ci
        const all = s.range(Buffer.from([0]), Buffer.from([0])).kvs;
        for (const x of all) {
          const n = Number(x.key.toString().slice(1));
          let last = ci;
          while (last % 50 !== n) last--;
          assert.ok(x.value.equals(valueFor(last)), `round ${round}: k${n} is stale`);
        }
        await s.compactionsDone();
      } finally {
        await s.close();
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
