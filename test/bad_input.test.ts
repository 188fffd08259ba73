// bin/etcd on bad flags and unusable data dirs: a one-line message that says what to fix, a
// non-zero exit, and never a hang.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { ETCD_TS_BIN, removeDir, tempDir } from './helpers/process.js';

function run(args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    execFile(ETCD_TS_BIN, args, { timeout: 15_000 }, (err, _stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : null) : 0;
      resolve({ code, stderr });
    });
  });
}

test('unknown flags and bad values exit 2 or 1 with a message', async () => {
  const unknown = await run(['--nope']);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /flag provided but not defined: -nope/);
  const url = await run(['--listen-client-urls', 'not-a-url']);
  assert.equal(url.code, 1);
  assert.match(url.stderr, /not a URL/);
  const name = await run(['--name', 'x', '--initial-cluster', 'y=http://127.0.0.1:2380']);
  assert.equal(name.code, 1);
  assert.match(name.stderr, /couldn't find local name "x"/);
});

test('an unusable data dir is refused at once, naming the path', async () => {
  const dir = tempDir();
  try {
    const file = join(dir, 'a-file');
    writeFileSync(file, 'not a directory');
    for (const dataDir of [join(file, 'data'), '/proc/etcd-ts-cannot-be-here']) {
      const r = await run(['--data-dir', dataDir]);
      assert.equal(r.code, 1, `exit code for --data-dir ${dataDir}`);
      assert.match(r.stderr, /cannot use data directory/);
      assert.ok(r.stderr.includes(dataDir), r.stderr);
    }
  } finally {
    removeDir(dir);
  }
});
