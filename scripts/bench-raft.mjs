// Raft core benchmark: a 3-node cluster in one process, no I/O, messages delivered synchronously.
// Prints entries committed per second and heap bytes allocated per entry, proposing 1 and 64 entries per
// proposal. Run after `npm run build`:  node scripts/bench-raft.mjs [seconds-per-case]
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

if (typeof globalThis.gc !== 'function') {
  // Re-run with a large young generation and gc() exposed, so allocation can be measured between GCs.
  const r = spawnSync(
    process.execPath,
    ['--expose-gc', '--max-semi-space-size=256', fileURLToPath(import.meta.url), ...process.argv.slice(2)],
    { stdio: 'inherit' },
  );
  process.exit(r.status ?? 1);
}

const { RawNode, MemoryStorage } = await import('../dist/src/raft/index.js');
const { PerformanceObserver } = await import('node:perf_hooks');

const seconds = Number(process.argv[2] ?? 2);
const PAYLOAD = Buffer.alloc(100, 7);

function cluster() {
  const ids = [1n, 2n, 3n];
  const nodes = new Map();
  for (const id of ids) {
    const storage = MemoryStorage.withVoters(ids);
    const rn = new RawNode({
      id,
      electionTick: 10,
      heartbeatTick: 1,
      storage,
      maxInflightMsgs: 4096,
      maxSizePerMsg: 1 << 20,
    });
    nodes.set(id, { rn, storage, applied: 0 });
  }
  return nodes;
}

/** Handles Ready for every node and delivers messages until the cluster is quiet. */
function pump(nodes) {
  let busy = true;
  while (busy) {
    busy = false;
    for (const n of nodes.values()) {
      if (!n.rn.hasReady()) continue;
      busy = true;
      const rd = n.rn.ready();
      if (rd.entries.length > 0) n.storage.append(rd.entries);
      if (rd.hardState !== undefined) n.storage.setHardState(rd.hardState);
      const ce = rd.committedEntries;
      if (ce.length > 0) n.applied = ce[ce.length - 1].index;
      n.rn.advance(rd);
      for (const m of rd.messages) nodes.get(m.to).rn.step(m);
    }
  }
}

function run(batch) {
  const nodes = cluster();
  const leader = nodes.get(1n);
  leader.rn.campaign();
  pump(nodes);
  const batchData = Array.from({ length: batch }, () => PAYLOAD);
  // Compact now and then so memory use stays flat.
  const compact = () => {
    for (const n of nodes.values()) {
      const ci = n.applied - 1000;
      if (ci > n.storage.firstIndex()) n.storage.compact(ci);
    }
  };
  const round = () => {
    // A few proposals in flight per round, as a busy server would have.
    for (let k = 0; k < 4; k++) {
      if (batch === 1) leader.rn.propose(PAYLOAD);
      else leader.rn.proposeBatch(batchData);
    }
    pump(nodes);
  };
  // Warm up.
  for (let i = 0; i < 2000; i++) round();
  compact();

  // Throughput.
  const start0 = leader.applied;
  const t0 = process.hrtime.bigint();
  let rounds = 0;
  while (Number(process.hrtime.bigint() - t0) < seconds * 1e9) {
    for (let i = 0; i < 50; i++) round();
    rounds += 50;
    if (rounds % 1000 === 0) compact();
  }
  const dt = Number(process.hrtime.bigint() - t0) / 1e9;
  const entries = leader.applied - start0;

  // Allocation: bytes allocated between two points with no GC in between.
  let gcs = 0;
  const obs = new PerformanceObserver((list) => {
    gcs += list.getEntries().length;
  });
  obs.observe({ entryTypes: ['gc'] });
  let bestPerEntry = Number.POSITIVE_INFINITY;
  for (let attempt = 0; attempt < 5; attempt++) {
    compact();
    globalThis.gc();
    const before = process.memoryUsage().heapUsed;
    const a0 = leader.applied;
    const g0 = gcs;
    const n = batch === 1 ? 2000 : 100;
    for (let i = 0; i < n; i++) round();
    const after = process.memoryUsage().heapUsed;
    if (gcs === g0) bestPerEntry = Math.min(bestPerEntry, (after - before) / (leader.applied - a0));
  }
  obs.disconnect();
  return { batch, entriesPerSec: entries / dt, bytesPerEntry: bestPerEntry };
}

console.log(`raft core, 3 nodes in-process, ${PAYLOAD.length}-byte entries, ${seconds}s per case`);
for (const batch of [1, 64]) {
  const r = run(batch);
  const bpe = Number.isFinite(r.bytesPerEntry) ? `${Math.round(r.bytesPerEntry)} B` : 'n/a (GC interfered)';
  console.log(
    `batch ${String(batch).padStart(2)}: ${Math.round(r.entriesPerSec).toLocaleString('en-US')} entries/s committed, ` +
      `${bpe} allocated per entry (all 3 nodes, incl. messages)`,
  );
}
