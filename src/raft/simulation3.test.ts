// Deterministic simulation of a 3-node cluster under faults: see testing/sim.ts (fault model,
// invariants) and testing/sim_suite.ts (seeds, replay). Replay a failing seed with
//   RAFT_SEED=<seed> node --test dist/src/raft/simulation3.test.js
import { simulationSuite } from './testing/sim_suite.js';

simulationSuite(3);
