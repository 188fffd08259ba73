// Measures save() throughput with real fdatasync: `node dist/src/wal/bench.js [dir]`.
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Entry } from '../gen/raftpb/raft.js';
import { Wal } from './wal.js';

function run(base: string, batch: number, dataBytes: number, ms: number, unsafeNoFsync = false): void {
  const dir = join(fs.mkdtempSync(join(base, 'wal-bench-')), 'wal');
  const w = Wal.create(dir, Buffer.from('bench'), { unsafeNoFsync });
  const data = Buffer.alloc(dataBytes, 7);
  let index = 0;
  let batches = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < ms) {
    const ents: Entry[] = [];
    for (let i = 0; i < batch; i++) ents.push({ term: 1, index: ++index, type: 0, data });
    w.save({ term: 1, vote: 1n, commit: index }, ents);
    batches++;
  }
  const secs = (performance.now() - t0) / 1000;
  const { fsyncs, fsyncMs } = w.stats;
  w.close();
  fs.rmSync(join(dir, '..'), { recursive: true, force: true });
  console.log(
    `${unsafeNoFsync ? 'no-fsync ' : ''}batch=${String(batch).padStart(3)} entry=${dataBytes}B: ${(batches / secs).toFixed(0)} batches/s, ` +
      `${(index / secs).toFixed(0)} entries/s, ${((index * dataBytes) / secs / 1e6).toFixed(1)} MB/s payload, ` +
      (fsyncs
        ? `fdatasync avg ${(fsyncMs / fsyncs).toFixed(3)} ms (${((fsyncMs / 1000 / secs) * 100).toFixed(0)}% of time)`
        : ''),
  );
}

const base = process.argv[2] ?? tmpdir();
for (const [batch, size] of [
  [1, 100],
  [64, 100],
  [1, 1024],
  [64, 1024],
  [256, 1024],
] as const) {
  run(base, batch, size, 2000);
}
// CPU cost of encoding + write(2) alone
run(base, 64, 100, 1000, true);
run(base, 64, 1024, 1000, true);
