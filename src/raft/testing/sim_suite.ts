// The simulation test suite for one cluster size (used by simulation3.test.ts and simulation5.test.ts,
// separate files so the runner can run them in parallel). Replay one seed with:
//   RAFT_SEED=<seed> [RAFT_TRACE=1] node --test dist/src/raft/simulation<nodes>.test.js
// RAFT_SIM_SEEDS=<n> changes how many seeds run (default 1500 per cluster size).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { optionsFor, Sim } from './sim.js';

const SEEDS = Number(process.env.RAFT_SIM_SEEDS ?? 1500);
const ONLY = process.env.RAFT_SEED !== undefined ? Number(process.env.RAFT_SEED) : undefined;

function runSeed(seed: number, nodes: number): Sim {
  const sim = new Sim(optionsFor(seed, nodes));
  try {
    sim.run();
  } catch (e) {
    const msg = e instanceof Error ? (e.stack ?? e.message) : String(e);
    assert.fail(
      `raft simulation failed: seed=${seed} nodes=${nodes}\n` +
        `replay: RAFT_SEED=${seed} node --test dist/src/raft/simulation${nodes}.test.js\n${msg}`,
    );
  }
  return sim;
}

export function simulationSuite(nodes: number): void {
  describe(`simulation: ${nodes} nodes`, () => {
    if (ONLY !== undefined) {
      it(`seed ${ONLY}`, () => {
        const sim = runSeed(ONLY, nodes);
        console.log(
          `seed ${ONLY}: committed=${sim.committed.length - 1} reads=${sim.readsServed} leaders=${sim.leaders.size} confChanges=${sim.confChanges}`,
        );
      });
      return;
    }
    it(`${SEEDS} seeds: election safety, log matching, leader completeness, state machine safety, linearizable reads, liveness`, () => {
      let committed = 0;
      let reads = 0;
      let elections = 0;
      let confChanges = 0;
      for (let seed = 1; seed <= SEEDS; seed++) {
        const sim = runSeed(seed + nodes * 100000, nodes);
        committed += sim.committed.length - 1;
        reads += sim.readsServed;
        elections += sim.leaders.size;
        confChanges += sim.confChanges;
      }
      // The simulation must actually exercise the protocol.
      assert.ok(committed > SEEDS * 20, `too few commits: ${committed}`);
      assert.ok(reads > SEEDS * 2, `too few reads: ${reads}`);
      assert.ok(elections > SEEDS, `too few elections: ${elections}`);
      assert.ok(confChanges > SEEDS / 2, `too few membership changes: ${confChanges}`);
    });
  });
}
