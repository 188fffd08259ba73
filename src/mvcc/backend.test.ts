import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, test } from 'node:test';
import { tempDirs } from '../testing/temp_dirs.js';
import { Backend, type BatchOptions } from './backend.js';

const tmp = tempDirs('backend-test-');

const B = (s: string) => Buffer.from(s, 'latin1');

function open(dir: string, batch?: Partial<BatchOptions>): Backend {
  return new Backend({ dir, noSync: true, batch: { intervalMs: 60_000, limit: 1000, ...batch } });
}

/** One write of one pair into bucket `t`. */
function put(b: Backend, key: string, value: string): void {
  const t = b.bucket('t');
  b.write(() => t.putSync(B(key), B(value)));
}

/** What the committed file holds under `key`, as another process reads it. */
function committed(b: Backend, key: string): string | undefined {
  const reader = `
    const { open } = await import('lmdb');
    const env = open({ path: ${JSON.stringify(b.dir)}, maxDbs: 32, readOnly: true, keyEncoding: 'binary', encoding: 'binary' });
    const v = env.openDB({ name: 't', keyEncoding: 'binary', encoding: 'binary' }).get(Buffer.from(${JSON.stringify(key)}));
    process.stdout.write(v === undefined ? '<none>' : 'value:' + v.toString('latin1'));
  `;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', reader], {
    encoding: 'utf8',
    cwd: new URL('.', import.meta.url).pathname,
  });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.startsWith('value:') ? r.stdout.slice(6) : undefined;
}

describe('Backend batched commits', () => {
  test('writes are visible on this thread at once and in the file after commit()', async () => {
    const b = open(tmp());
    const t = b.bucket('t');
    put(b, 'a', '1');
    put(b, 'b', '2');
    assert.equal(t.get(B('a'))?.toString(), '1', 'this thread reads through the open batch');
    assert.equal(committed(b, 'a'), undefined, 'not committed yet');
    b.commit();
    assert.equal(committed(b, 'a'), '1');
    assert.equal(committed(b, 'b'), '2');
    await b.close();
  });

  test('a write that throws is undone alone; the rest of the batch commits', async () => {
    const b = open(tmp());
    const t = b.bucket('t');
    put(b, 'kept', '1');
    assert.throws(
      () =>
        b.write(() => {
          t.putSync(B('lost'), B('x'));
          t.putSync(B('kept'), B('overwritten'));
          throw new Error('abort');
        }),
      /abort/,
    );
    assert.equal(t.get(B('lost')), undefined);
    assert.equal(t.get(B('kept'))?.toString(), '1');
    b.commit();
    assert.equal(committed(b, 'kept'), '1');
    assert.equal(committed(b, 'lost'), undefined);
    await b.close();
  });

  test('the batch commits after `limit` writes', async () => {
    const b = open(tmp(), { limit: 3 });
    put(b, '1', '1');
    put(b, '2', '2');
    assert.equal(committed(b, '1'), undefined);
    put(b, '3', '3');
    assert.equal(committed(b, '1'), '1');
    assert.equal(committed(b, '3'), '3');
    await b.close();
  });

  test('the batch commits `intervalMs` after its first write', async () => {
    const b = open(tmp(), { intervalMs: 30 });
    put(b, 'k', 'v');
    assert.equal(committed(b, 'k'), undefined);
    await new Promise((r) => setTimeout(r, 120));
    assert.equal(committed(b, 'k'), 'v');
    await b.close();
  });

  test('readTransaction() commits first, so it sees every write', async () => {
    const b = open(tmp());
    const t = b.bucket('t');
    put(b, 'k', 'v');
    const view = b.readTransaction();
    try {
      assert.equal(committed(b, 'k'), 'v', 'the open batch was committed');
      assert.equal(t.get(B('k'), { transaction: view.txn })?.toString(), 'v');
    } finally {
      view.done();
    }
    await b.close();
  });

  test('while a read view is open, writes commit one by one and the view keeps its snapshot', async () => {
    const b = open(tmp());
    const t = b.bucket('t');
    put(b, 'k', 'old');
    const view = b.readTransaction();
    put(b, 'k', 'new');
    assert.equal(committed(b, 'k'), 'new', 'committed at once while the view is open');
    assert.equal(t.get(B('k'), { transaction: view.txn })?.toString(), 'old');
    view.done();
    put(b, 'k', 'batched');
    assert.equal(committed(b, 'k'), 'new', 'batching resumes once the view is done');
    await b.close();
  });

  test('close() commits; a killed process loses only its uncommitted batch, and the file opens', async () => {
    const dir = tmp();
    const b = open(dir);
    b.write(() => b.bucket('t').putSync(B('closed'), B('yes')));
    await b.close();

    // a child commits one batch, starts another, and is killed before that one commits
    const child = `
      const { Backend } = await import(${JSON.stringify(new URL('./backend.js', import.meta.url).href)});
      const b = new Backend({ dir: ${JSON.stringify(dir)}, noSync: true, batch: { intervalMs: 60000, limit: 1000 } });
      const t = b.bucket('t');
      b.write(() => t.putSync(Buffer.from('first'), Buffer.from('1')));
      b.commit();
      b.write(() => t.putSync(Buffer.from('second'), Buffer.from('2')));
      process.kill(process.pid, 'SIGKILL');
    `;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', child], { encoding: 'utf8' });
    assert.equal(r.signal, 'SIGKILL', r.stderr);

    const again = open(dir);
    const t = again.bucket('t');
    assert.equal(t.get(B('closed'))?.toString(), 'yes');
    assert.equal(t.get(B('first'))?.toString(), '1');
    assert.equal(t.get(B('second')), undefined);
    await again.close();
  });
});
