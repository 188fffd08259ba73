// A deterministic cluster simulation for property testing the raft package. One seeded PRNG decides
// everything: which node ticks, message loss, delay (hence reordering), duplication, symmetric and
// one-way partitions, crashes that lose all unpersisted state, restarts, compaction, client proposals,
// ReadIndex requests and membership changes. Invariants are checked after every step; a violation
// throws a SimError naming the seed.
import {
  ConfChangeTransition,
  ConfChangeType,
  type ConfChangeV2,
  type ConfState,
  type Entry,
  Message,
  MessageType,
} from '../../gen/raftpb/raft.js';
import { StateType } from '../raft.js';
import { decodeConfChange, RawNode, type Ready } from '../rawnode.js';
import { ReadOnlyOption } from '../read_only.js';
import { emptyConfState, MemoryStorage } from '../storage.js';
import { seededRandom } from '../util.js';

export interface SimOptions {
  seed: number;
  nodes: number;
  /** Steps with faults before healing. */
  steps: number;
  preVote: boolean;
  checkQuorum: boolean;
  membership: boolean;
  /** Encode/decode every message with the protobuf codec (else a structural copy). */
  wire: boolean;
  maxSizePerMsg: number;
  maxInflight: number;
  /** Snapshot + compact when this many entries were applied since the last snapshot. */
  snapshotEvery: number;
  trace?: boolean;
}

export class SimError extends Error {}

const ELECTION = 10;
const HEARTBEAT = 2;

interface InFlight {
  at: number;
  m: Message;
}

interface PendingRead {
  ctx: string;
  /** Highest index of a write completed (applied somewhere) before the read started. */
  mustSee: number;
  index: number; // -1 until the ReadState arrives
}

class SimNode {
  rn: RawNode | null = null;
  appliedIndex = 0;
  hash = 0;
  confState: ConfState = emptyConfState();
  /** Permanently stopped (removed from the cluster). */
  stopped = false;
  reads: PendingRead[] = [];
  readSeq = 0;
  lastSnapIndex = 0;

  constructor(
    readonly id: bigint,
    readonly storage: MemoryStorage,
  ) {}
}

function isMember(cs: ConfState, id: bigint): boolean {
  return (
    cs.voters.includes(id) ||
    cs.learners.includes(id) ||
    cs.votersOutgoing.includes(id) ||
    cs.learnersNext.includes(id)
  );
}

/** FNV-1a style rolling hash of the applied sequence: the simulated state machine. */
function mix(h: number, e: Entry): number {
  h = Math.imul(h ^ e.index, 16777619) >>> 0;
  h = Math.imul(h ^ e.type, 16777619) >>> 0;
  const d = e.data;
  for (let i = 0; i < d.length; i++) h = Math.imul(h ^ d[i], 16777619) >>> 0;
  return h;
}

export class Sim {
  readonly opt: SimOptions;
  readonly rng: () => number;
  time = 0;
  nodes = new Map<bigint, SimNode>();
  net: InFlight[] = [];
  blocked = new Set<string>();
  dropRate = 0.05;
  dupRate = 0.02;
  maxDelay = 3;
  faults = true;
  /** term -> leader id (at most one leader per term, §5.2 Election Safety). */
  leaders = new Map<number, bigint>();
  /** index -> {term, hash after applying it, lowest node term at which it was seen applied}. */
  committed: { term: number; hash: number; byTerm: number }[] = [];
  /** Log Matching (§5.3): "index:term" -> the entry's content and the previous entry's term (-1 unknown). */
  logIndex = new Map<string, { data: string; prev: number }>();
  completedWrite = 0;
  proposals = 0;
  readsServed = 0;
  confChanges = 0;
  log: string[] = [];

  constructor(opt: SimOptions) {
    this.opt = opt;
    this.rng = seededRandom(opt.seed * 2654435761);
    const peers = [];
    for (let i = 1; i <= opt.nodes; i++) peers.push({ id: BigInt(i) });
    for (const p of peers) {
      const n = new SimNode(p.id, new MemoryStorage());
      this.nodes.set(p.id, n);
      this.start(n);
      n.rn!.bootstrap(peers);
    }
    // Spare ids for membership changes.
    if (opt.membership) {
      for (let i = opt.nodes + 1; i <= opt.nodes + 2; i++) {
        const id = BigInt(i);
        const n = new SimNode(id, new MemoryStorage());
        n.stopped = true; // not started until added
        this.nodes.set(id, n);
      }
    }
  }

  private trace(s: string): void {
    if (this.opt.trace) console.log(`[t=${this.time}] ${s}`);
    else {
      this.log.push(`[t=${this.time}] ${s}`);
      if (this.log.length > 60) this.log.shift();
    }
  }

  fail(msg: string): never {
    throw new SimError(`${msg}\n  last events:\n    ${this.log.join('\n    ')}`);
  }

  private start(n: SimNode): void {
    const snap = n.storage.snapshot();
    const idx = snap.metadata!.index;
    n.rn = new RawNode({
      id: n.id,
      electionTick: ELECTION,
      heartbeatTick: HEARTBEAT,
      storage: n.storage,
      applied: idx,
      maxSizePerMsg: this.opt.maxSizePerMsg,
      maxInflightMsgs: this.opt.maxInflight,
      checkQuorum: this.opt.checkQuorum,
      preVote: this.opt.preVote,
      readOnlyOption: ReadOnlyOption.Safe,
      random: seededRandom(Math.floor(this.rng() * 2 ** 31)),
    });
    // The state machine restarts from the latest snapshot.
    n.appliedIndex = idx;
    n.hash = idx === 0 ? 0 : snap.data.readUInt32BE(0);
    n.confState = snap.metadata!.confState ?? emptyConfState();
    n.lastSnapIndex = idx;
    n.reads = [];
  }

  private crash(n: SimNode): void {
    this.trace(`crash ${n.id}`);
    n.rn = null;
  }

  live(): SimNode[] {
    const out: SimNode[] = [];
    for (const n of this.nodes.values()) if (n.rn !== null) out.push(n);
    return out;
  }

  private pick<T>(a: T[]): T {
    return a[Math.floor(this.rng() * a.length)];
  }

  private copy(m: Message): Message {
    if (this.opt.wire) return Message.decode(Message.encode(m).finish());
    return {
      ...m,
      entries: m.entries.map((e) => ({ ...e })),
    };
  }

  private send(from: SimNode, msgs: Message[]): void {
    for (const m of msgs) {
      if (m.type === MessageType.MsgSnap) this.freshSnapshot(from, m);
      if (this.faults && (this.blocked.has(`${m.from}>${m.to}`) || this.rng() < this.dropRate)) {
        // The transport knows when a snapshot could not be sent, and says so.
        if (m.type === MessageType.MsgSnap) from.rn!.reportSnapshot(m.to, 2);
        continue;
      }
      const delay = this.faults ? Math.floor(this.rng() * (this.maxDelay + 1)) : Math.floor(this.rng() * 2);
      this.net.push({ at: this.time + delay, m: this.copy(m) });
      if (this.faults && this.rng() < this.dupRate) {
        this.net.push({ at: this.time + delay + Math.floor(this.rng() * 3), m: this.copy(m) });
      }
      if (m.type === MessageType.MsgSnap) from.rn!.reportSnapshot(m.to, 1);
    }
  }

  /**
   * As etcd's server does (createMergedSnapshotMessage), a MsgSnap carries the sender's current applied
   * state and ConfState rather than its last stored snapshot: a member added after that snapshot would
   * otherwise receive a snapshot of a configuration without itself, and refuse it.
   */
  private freshSnapshot(from: SimNode, m: Message): void {
    const data = Buffer.alloc(4);
    data.writeUInt32BE(from.hash);
    const index = from.appliedIndex;
    m.snapshot = { data, metadata: { index, term: from.storage.term(index), confState: from.confState } };
  }

  private deliver(): void {
    if (this.net.length === 0) return;
    const due: InFlight[] = [];
    const rest: InFlight[] = [];
    for (const f of this.net) (f.at <= this.time ? due : rest).push(f);
    this.net = rest;
    for (const f of due) {
      const n = this.nodes.get(f.m.to);
      if (n === undefined || n.rn === null) continue;
      n.rn.step(f.m);
    }
  }

  /** Handles every pending Ready of node n: persist, send, apply, advance (or crash midway). */
  private handleReady(n: SimNode): void {
    const rn = n.rn!;
    while (rn.hasReady()) {
      const rd = rn.ready();
      this.checkLeader(n, rd);
      if (rd.snapshot !== undefined) {
        const meta = rd.snapshot.metadata!;
        n.storage.applySnapshot(rd.snapshot);
        const h = rd.snapshot.data.readUInt32BE(0);
        const c = this.committed[meta.index];
        if (c !== undefined && c.hash !== h)
          this.fail(`node ${n.id} installed snapshot ${meta.index} with wrong state`);
        n.appliedIndex = meta.index;
        n.hash = h;
        n.confState = meta.confState!;
        n.lastSnapIndex = meta.index;
        this.trace(`${n.id} installed snapshot ${meta.index}`);
      }
      if (rd.entries.length > 0) {
        this.checkLogMatching(n, rd.entries);
        n.storage.append(rd.entries);
      }
      if (rd.hardState !== undefined) n.storage.setHardState(rd.hardState);
      // A crash after persisting, before sending anything.
      if (this.faults && this.rng() < 0.002) {
        this.crash(n);
        return;
      }
      this.send(n, rd.messages);
      this.apply(n, rd);
      if (n.rn === null) return; // stopped by its own removal
      for (const rs of rd.readStates) {
        const r = n.reads.find((x) => x.ctx === rs.requestCtx.toString());
        if (r !== undefined && r.index < 0) r.index = rs.index;
      }
      this.serveReads(n);
      rn.advance(rd);
      this.maybeCompact(n);
    }
  }

  private apply(n: SimNode, rd: Ready): void {
    const rn = n.rn!;
    for (const e of rd.committedEntries) {
      if (e.index <= n.appliedIndex) continue;
      if (e.index !== n.appliedIndex + 1)
        this.fail(`node ${n.id} applies ${e.index} after ${n.appliedIndex}`);
      n.hash = mix(n.hash, e);
      n.appliedIndex = e.index;
      // State Machine Safety (§5.4.3): every node applies the same entry at each index.
      const c = this.committed[e.index];
      const term = rn.raft.term;
      if (c === undefined) {
        this.committed[e.index] = { term: e.term, hash: n.hash, byTerm: term };
      } else {
        if (c.term !== e.term || c.hash !== n.hash) {
          this.fail(
            `state machine safety: node ${n.id} applied ${e.index}/${e.term}, others ${e.index}/${c.term}`,
          );
        }
        if (term < c.byTerm) c.byTerm = term;
      }
      const cc = decodeConfChange(e);
      if (cc !== undefined) {
        const wasMember = isMember(n.confState, n.id);
        n.confState = rn.applyConfChange(cc);
        this.trace(
          `${n.id} applied conf change at ${e.index}: ${JSON.stringify(n.confState, (_k, v) => (typeof v === 'bigint' ? Number(v) : v))}`,
        );
        if (wasMember && !isMember(n.confState, n.id)) {
          // As etcd's server does: a member that applied its own removal stops.
          this.trace(`${n.id} removed: stopping`);
          n.rn = null;
          n.stopped = true;
          return;
        }
      } else if (e.data.length > 0) {
        if (e.index > this.completedWrite) this.completedWrite = e.index;
      }
    }
  }

  private serveReads(n: SimNode): void {
    if (n.reads.length === 0) return;
    const keep: PendingRead[] = [];
    for (const r of n.reads) {
      if (r.index >= 0 && n.appliedIndex >= r.index) {
        // Linearizability (§6.4): the read index covers every write completed before the read began.
        if (r.index < r.mustSee) {
          this.fail(`stale read ${r.ctx} on ${n.id}: read index ${r.index} < completed write ${r.mustSee}`);
        }
        this.readsServed++;
      } else {
        keep.push(r);
      }
    }
    n.reads = keep;
  }

  private maybeCompact(n: SimNode): void {
    if (n.appliedIndex - n.lastSnapIndex < this.opt.snapshotEvery) return;
    const data = Buffer.alloc(4);
    data.writeUInt32BE(n.hash);
    n.storage.createSnapshot(n.appliedIndex, n.confState, data);
    n.lastSnapIndex = n.appliedIndex;
    // Keep a few entries so slightly lagging followers still catch up from the log.
    const keep = Math.floor(this.rng() * 5);
    const ci = n.appliedIndex - keep;
    if (ci > n.storage.firstIndex()) n.storage.compact(ci);
  }

  private checkLogMatching(n: SimNode, ents: Entry[]): void {
    let prevTerm = -1;
    for (let k = 0; k < ents.length; k++) {
      const e = ents[k];
      if (k > 0) prevTerm = ents[k - 1].term;
      else {
        try {
          prevTerm = e.index - 1 === 0 ? 0 : n.storage.term(e.index - 1);
        } catch {
          prevTerm = -1;
        }
        // Entries may replace a suffix of storage: the previous one is then still the stored one.
      }
      const key = `${e.index}:${e.term}`;
      const data = `${e.type}:${e.data.toString('latin1')}`;
      const old = this.logIndex.get(key);
      if (old === undefined) {
        this.logIndex.set(key, { data, prev: prevTerm });
      } else if (old.data !== data || (old.prev >= 0 && prevTerm >= 0 && old.prev !== prevTerm)) {
        this.fail(
          `log matching: node ${n.id} has ${key} = ${data}/prev ${prevTerm}, seen as ${old.data}/prev ${old.prev}`,
        );
      } else if (old.prev < 0) {
        old.prev = prevTerm;
      }
    }
  }

  private checkLeader(n: SimNode, rd: Ready): void {
    const r = n.rn!.raft;
    if (rd.softState === undefined || rd.softState.raftState !== StateType.Leader) return;
    // Election Safety (§5.2): at most one leader per term.
    const prev = this.leaders.get(r.term);
    if (prev !== undefined && prev !== n.id) this.fail(`two leaders in term ${r.term}: ${prev} and ${n.id}`);
    this.leaders.set(r.term, n.id);
    this.trace(`${n.id} is leader of term ${r.term}`);
    // Leader Completeness (§5.4): a leader holds every entry committed in an earlier term.
    const first = r.raftLog.firstIndex();
    for (let i = this.committed.length - 1; i >= 1; i--) {
      const c = this.committed[i];
      if (c === undefined || c.byTerm >= r.term) continue;
      if (i < first - 1) break;
      const t = r.raftLog.zeroTermOnErr(i);
      if (t !== c.term)
        this.fail(`leader completeness: leader ${n.id} (term ${r.term}) has ${i}/${t}, committed ${c.term}`);
    }
  }

  // -------------------------------------------------------------------------------------------
  // Client actions and faults

  private propose(): void {
    const live = this.live();
    if (live.length === 0) return;
    const n = this.pick(live);
    const batch = this.rng() < 0.2 ? 1 + Math.floor(this.rng() * 4) : 1;
    const datas: Buffer[] = [];
    for (let i = 0; i < batch; i++) datas.push(Buffer.from(`w${this.proposals++}`));
    try {
      n.rn!.proposeBatch(datas);
    } catch {
      // dropped: no leader known, transfer in progress, ...
    }
  }

  private read(): void {
    const live = this.live();
    if (live.length === 0) return;
    const n = this.pick(live);
    const ctx = `r${n.id}-${n.readSeq++}`;
    n.reads.push({ ctx, mustSee: this.completedWrite, index: -1 });
    n.rn!.readIndex(Buffer.from(ctx));
  }

  private leader(): SimNode | undefined {
    let best: SimNode | undefined;
    for (const n of this.live()) {
      const r = n.rn!.raft;
      if (r.state === StateType.Leader && (best === undefined || r.term > best.rn!.raft.term)) best = n;
    }
    return best;
  }

  private confChange(): void {
    const l = this.leader();
    if (l === undefined) return;
    const cfg = l.rn!.raft.prs.config;
    if (cfg.voters.isJoint()) return;
    const voters = [...cfg.voters.incoming];
    const learners = [...cfg.learners];
    const spares = [...this.nodes.values()].filter(
      (n) => !cfg.voters.has(n.id) && !cfg.learners.has(n.id) && n.rn === null && n.storage.lastIndex() === 0,
    );
    const choice = this.rng();
    let cc: ConfChangeV2;
    const one = (type: ConfChangeType, id: bigint): ConfChangeV2 => ({
      transition: ConfChangeTransition.ConfChangeTransitionAuto,
      changes: [{ type, nodeId: id }],
      context: Buffer.alloc(0),
    });
    if (choice < 0.3 && spares.length > 0) {
      const s = this.pick(spares);
      cc = one(ConfChangeType.ConfChangeAddLearnerNode, s.id);
      // The new member starts with an empty log and learns everything from the leader.
      s.stopped = false;
      this.start(s);
    } else if (choice < 0.55 && learners.length > 0) {
      cc = one(ConfChangeType.ConfChangeAddNode, this.pick(learners)); // promote
    } else if (choice < 0.7 && voters.length > 3) {
      cc = one(ConfChangeType.ConfChangeRemoveNode, this.pick(voters));
    } else if (choice < 0.8 && learners.length > 0) {
      cc = one(ConfChangeType.ConfChangeRemoveNode, this.pick(learners));
    } else if (choice < 0.9 && voters.length >= 3 && learners.length > 0) {
      // Joint consensus: promote a learner and demote a voter at once (auto-leave).
      const v = this.pick(
        voters.filter((x) => x !== l.id).length > 0 ? voters.filter((x) => x !== l.id) : voters,
      );
      cc = {
        transition:
          this.rng() < 0.5
            ? ConfChangeTransition.ConfChangeTransitionAuto
            : ConfChangeTransition.ConfChangeTransitionJointImplicit,
        changes: [
          { type: ConfChangeType.ConfChangeAddNode, nodeId: this.pick(learners) },
          { type: ConfChangeType.ConfChangeAddLearnerNode, nodeId: v },
        ],
        context: Buffer.alloc(0),
      };
    } else {
      return;
    }
    try {
      l.rn!.proposeConfChange(cc);
      this.confChanges++;
      this.trace(
        `propose conf change ${JSON.stringify(cc.changes, (_k, v) => (typeof v === 'bigint' ? Number(v) : v))}`,
      );
    } catch {
      // dropped
    }
  }

  private partition(): void {
    this.blocked.clear();
    const ids = [...this.nodes.keys()];
    const kind = this.rng();
    if (kind < 0.4) {
      // Symmetric: split into two groups.
      const side = new Map<bigint, boolean>();
      for (const id of ids) side.set(id, this.rng() < 0.5);
      for (const a of ids)
        for (const b of ids) if (side.get(a) !== side.get(b)) this.blocked.add(`${a}>${b}`);
      this.trace('partition (symmetric)');
    } else if (kind < 0.7) {
      // One-way: a random node cannot send to (or cannot hear from) the others.
      const x = this.pick(ids);
      const outbound = this.rng() < 0.5;
      for (const b of ids) if (b !== x) this.blocked.add(outbound ? `${x}>${b}` : `${b}>${x}`);
      this.trace(`partition (one-way ${outbound ? 'from' : 'to'} ${x})`);
    } else {
      this.trace('partition healed');
    }
  }

  /** One simulation step: faults, client actions, ticks, deliveries, Ready handling, invariants. */
  step(): void {
    this.time++;
    const rng = this.rng;
    if (this.faults) {
      if (rng() < 0.02) this.partition();
      if (rng() < 0.01) {
        const live = this.live();
        if (live.length > 0) this.crash(this.pick(live));
      }
      if (rng() < 0.03) {
        const down = [...this.nodes.values()].filter((n) => n.rn === null && !n.stopped);
        if (down.length > 0) {
          const n = this.pick(down);
          this.trace(`restart ${n.id}`);
          this.start(n);
        }
      }
      if (this.opt.membership && rng() < 0.03) this.confChange();
      if (rng() < 0.005) {
        const l = this.leader();
        if (l !== undefined) {
          const to = this.pick([...l.rn!.raft.prs.config.voters.incoming]);
          this.trace(`transfer leadership ${l.id} -> ${to}`);
          l.rn!.transferLeader(to);
        }
      }
    }
    if (rng() < 0.3) this.propose();
    if (rng() < 0.1) this.read();
    for (const n of this.nodes.values()) {
      if (n.rn !== null && (!this.faults || rng() < 0.9)) n.rn.tick();
    }
    this.deliver();
    for (const n of this.nodes.values()) if (n.rn !== null) this.handleReady(n);
  }

  /** Removes every fault, restarts crashed members and stops nodes no longer in the configuration. */
  heal(): void {
    this.faults = false;
    this.blocked.clear();
    const l = this.latestConfig();
    for (const n of this.nodes.values()) {
      const member = l === undefined || l.has(n.id);
      if (!member) {
        n.stopped = true;
        n.rn = null;
      } else if (n.rn === null && !n.stopped) {
        this.start(n);
      }
    }
    this.trace('healed');
  }

  /** Members (voters and learners) of the most recently applied configuration anywhere. */
  latestConfig(): Set<bigint> | undefined {
    let best: SimNode | undefined;
    for (const n of this.nodes.values()) {
      if (n.storage.lastIndex() === 0 && n.appliedIndex === 0) continue;
      if (best === undefined || n.appliedIndex > best.appliedIndex) best = n;
    }
    if (best === undefined) return undefined;
    const cs = best.confState;
    return new Set([...cs.voters, ...cs.learners, ...cs.votersOutgoing, ...cs.learnersNext]);
  }

  /** Liveness: after healing, a leader emerges and a new proposal is applied by every live member. */
  checkLiveness(maxSteps: number): void {
    const marker = Buffer.from(`final-${this.opt.seed}`);
    let proposedAt = -1;
    let index = 0;
    for (let s = 0; s < maxSteps; s++) {
      this.step();
      const l = this.leader();
      if (l === undefined) continue;
      if (proposedAt < 0 || s - proposedAt > 5 * ELECTION) {
        try {
          l.rn!.propose(marker);
          proposedAt = s;
        } catch {
          // transfer in progress
        }
      }
      if (index === 0) {
        for (const e of l.storage.allEntries()) if (e.data.equals(marker)) index = e.index;
        if (index === 0) continue;
      }
      // Members of the leader's configuration (removed nodes that never learned it are ignored).
      const prs = l.rn!.raft.prs.progress;
      const live = this.live().filter((n) => prs.has(n.id));
      if (live.every((n) => n.appliedIndex >= index)) {
        // Everyone converged on the same state.
        const h = this.committed[index]?.hash;
        for (const n of live) {
          if (n.appliedIndex === index && n.hash !== h) this.fail(`node ${n.id} diverged at ${index}`);
        }
        return;
      }
    }
    const st = this.live()
      .map(
        (n) =>
          `${n.id}:${StateType[n.rn!.raft.state]}@${n.rn!.raft.term} applied=${n.appliedIndex} ${n.rn!.raft.prs.config}`,
      )
      .join('; ');
    this.fail(`liveness: no progress within ${maxSteps} steps after healing (${st})`);
  }

  run(): void {
    for (let i = 0; i < this.opt.steps; i++) this.step();
    this.heal();
    this.checkLiveness(60 * ELECTION);
  }
}

/** Options vary with the seed so every feature combination is covered across seeds. */
export function optionsFor(seed: number, nodes: number): SimOptions {
  return {
    seed,
    nodes,
    steps: 400,
    preVote: seed % 2 === 0,
    checkQuorum: seed % 4 < 2,
    membership: seed % 3 !== 2,
    wire: seed % 10 === 0,
    maxSizePerMsg: seed % 5 === 0 ? 64 : 1 << 20,
    maxInflight: seed % 7 === 0 ? 2 : 64,
    snapshotEvery: seed % 2 === 0 ? 20 : 60,
    trace: process.env.RAFT_TRACE === '1',
  };
}
