// Test helper (not part of the API): appends batches to a WAL in a loop and reports each saved
// batch on stdout, until it is killed. Used by crash.test.ts.
import * as fs from 'node:fs';
import type { Entry } from '../gen/raftpb/raft.js';
import { Wal, walExists } from './wal.js';

export const payload = (i: number): Buffer => Buffer.from(`entry-${i}-${'p'.repeat(i % 300)}`);

function main(): void {
  const [dir, batchArg, segArg] = process.argv.slice(2);
  const batch = Number(batchArg);
  const opts = { segmentSizeBytes: Number(segArg) };
  let w: Wal;
  let last = 0;
  if (walExists(dir!)) {
    w = Wal.open(dir!, { index: 0, term: 0 }, opts);
    const r = w.readAll();
    last = r.entries.at(-1)?.index ?? 0;
  } else {
    w = Wal.create(dir!, Buffer.from('crash-test'), opts);
  }
  fs.writeSync(1, `start ${last}\n`);
  for (;;) {
    const ents: Entry[] = [];
    for (let i = 0; i < batch; i++) {
      const index = last + 1 + i;
      ents.push({ term: 1, index, type: 0, data: payload(index) });
    }
    last += batch;
    w.save({ term: 1, vote: 1n, commit: last }, ents);
    fs.writeSync(1, `saved ${last}\n`);
  }
}

if (process.argv[1]?.endsWith('crash_child.js')) main();
