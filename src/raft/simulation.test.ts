// Deterministic simulation of 3- and 5-node clusters under faults (see testing/sim.ts for the fault
// model and invariants). Replay one seed with:  RAFT_SEED=<seed> [RAFT_NODES=3|5] [RAFT_TRACE=1]
//   node --test dist/src/raft/simulation.test.js
// RAFT_SIM_SEEDS=<n> changes how many seeds each configuration runs.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { optionsFor, Sim } from './testing/sim.js';

const SEEDS = Number(process.env.RAFT_SIM_SEEDS ?? 250);
const ONLY = process.env.RAFT_SEED !== undefined ? Number(process.env.RAFT_SEED) : undefined;
const ONLY_NODES = process.env.RAFT_NODES !== undefined ? Number(process.env.RAFT_NODES) : undefined;

function runSeed(seed: number, nodes: number): Sim {
  const sim = new Sim(optionsFor(seed, nodes));
  try {
    sim.run();
  } catch (e) {
    const msg = e instanceof Error ? (e.stack ?? e.message) : String(e);
    assert.fail(
      `raft simulation failed: seed=${seed} nodes=${nodes}\n` +
        `replay: RAFT_SEED=${seed} RAFT_NODES=${nodes} node --test dist/src/raft/simulation.test.js\n${msg}`,
    );
  }
  return sim;
}

for (const nodes of [3, 5]) {
  if (ONLY_NODES !== undefined && ONLY_NODES !== nodes) continue;
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
      for (let seed = 1; seed <= SEEDS; seed++) {
        const sim = runSeed(seed + nodes * 100000, nodes);
        committed += sim.committed.length - 1;
        reads += sim.readsServed;
        elections += sim.leaders.size;
      }
      // The simulation must actually exercise the protocol.
      assert.ok(committed > SEEDS * 20, `too few commits: ${committed}`);
      assert.ok(reads > SEEDS * 2, `too few reads: ${reads}`);
      assert.ok(elections > SEEDS, `too few elections: ${elections}`);
    });
  });
}
