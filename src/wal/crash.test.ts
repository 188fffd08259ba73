import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { payload } from './crash_child.js';
import { Wal } from './wal.js';

const child = fileURLToPath(new URL('./crash_child.js', import.meta.url));
const SEG = 256 * 1024;

/** Runs the writer until `ms` after it started, SIGKILLs it, returns the last index it reported saved. */
function runAndKill(dir: string, batch: number, ms: number): Promise<{ start: number; saved: number }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [child, dir, String(batch), String(SEG)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
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
      const all = [...out.matchAll(/saved (\d+)\n/g)];
      resolve({ start, saved: all.length ? Number(all.at(-1)![1]) : start });
    });
  });
}

test('every batch a SIGKILLed writer reported as saved is read back', { timeout: 60000 }, async (t) => {
  const dir = join(fs.mkdtempSync(join(tmpdir(), 'wal-crash-')), 'wal');
  let reported = 0;
  for (let round = 0; round < 6; round++) {
    const batch = [1, 7, 64][round % 3]!;
    const { start, saved } = await runAndKill(dir, batch, 150 + round * 40);
    assert.ok(start >= reported, `round ${round}: writer restarted at ${start}, below reported ${reported}`);
    assert.ok(saved > start, `round ${round}: nothing saved`);
    reported = saved;
    const w = Wal.open(dir, { index: 0, term: 0 }, { segmentSizeBytes: SEG });
    const { entries, hardState } = w.readAll();
    w.close();
    assert.ok(
      entries.length >= reported,
      `round ${round}: ${entries.length} entries read, ${reported} reported`,
    );
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i]!;
      if (e.index !== i + 1 || !e.data.equals(payload(i + 1)))
        assert.fail(`round ${round}: entry ${i + 1} wrong`);
    }
    assert.ok(hardState.commit >= reported);
  }
  const segments = fs.readdirSync(dir).filter((n) => n.endsWith('.wal')).length;
  t.diagnostic(`${reported} entries reported saved over 6 kills, ${segments} segments`);
  assert.ok(segments > 1, 'segments were cut');
});
