// Writer for crash.test.ts: applies batches to an MvccStore (with fsync) in a loop and reports each
// committed consistent index on stdout; the test SIGKILLs it at a random moment.
import { MvccStore } from './store.js';

/** The value written for consistent index i (each batch puts key k<i % 50> and, every 7th, deletes one). */
export function valueFor(i: number): Buffer {
  return Buffer.from(`value-${i}-${'x'.repeat(i % 200)}`);
}

async function main() {
  const [dir] = process.argv.slice(2);
  const s = MvccStore.open({ dir: dir!, compactionBatchLimit: 10 });
  let i = s.consistentIndex;
  process.stdout.write(`start ${i}\n`);
  for (;;) {
    i++;
    const idx = i;
    s.applyBatch(idx, () => {
      const t = s.txnWrite();
      t.put(Buffer.from(`k${idx % 50}`), valueFor(idx), 0n);
      if (idx % 7 === 0) t.deleteRange(Buffer.from(`k${(idx + 3) % 50}`), undefined);
      t.end();
      if (idx % 97 === 0 && s.currentRevision > 60) s.compact(s.currentRevision - 50);
    });
    process.stdout.write(`saved ${idx} ${s.currentRevision}\n`);
    if (idx % 16 === 0) await new Promise((r) => setImmediate(r)); // let compaction batches run
  }
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop()!)) void main();
