// Quorum arithmetic: majority configurations and joint configurations (thesis §4.3, joint consensus).
// A commit index or an election outcome in a joint configuration needs a majority of BOTH halves.

/** A majority configuration: a set of voter ids. */
export type MajorityConfig = Set<bigint>;

export enum VoteResult {
  /** Not decided yet: some votes are missing. */
  VotePending = 1,
  /** Lost: a majority can no longer be reached. */
  VoteLost = 2,
  /** Won: a majority voted yes. */
  VoteWon = 3,
}

/** Returns the acknowledged (durably matched) index of a voter, or undefined if unknown. */
export interface AckedIndexer {
  ackedIndex(id: bigint): number | undefined;
}

/** The value used as "infinite" commit index of an empty configuration (it never constrains a joint min). */
export const MaxIndex = Number.MAX_SAFE_INTEGER;

/**
 * Reused for every call: this runs on each append acknowledgement, and Array.prototype.sort allocates a
 * work array per call. Insertion sort is also the fastest sort for a handful of voters.
 */
let scratch = new Float64Array(8);

/**
 * The largest index acknowledged by a majority of `c` (§5.3/§5.4: an entry is committed once stored on a
 * majority). An empty configuration returns MaxIndex, so joint min() ignores it.
 */
export function majorityCommittedIndex(c: MajorityConfig, l: AckedIndexer): number {
  const n = c.size;
  if (n === 0) return MaxIndex;
  if (scratch.length < n) scratch = new Float64Array(n * 2);
  const a = scratch;
  let k = 0;
  for (const id of c) {
    // insert in descending order
    const v = l.ackedIndex(id) ?? 0;
    let j = k++;
    while (j > 0 && a[j - 1]! < v) {
      a[j] = a[j - 1]!;
      j--;
    }
    a[j] = v;
  }
  // Sorted high to low, the index at position floor(n/2) (the (n/2+1)-th highest) is held by a majority.
  return a[n >> 1]!;
}

/** Outcome of an election given the votes so far (true = granted). */
export function majorityVoteResult(c: MajorityConfig, votes: Map<bigint, boolean>): VoteResult {
  if (c.size === 0) return VoteResult.VoteWon; // an empty config wins every vote (joint convenience)
  let yes = 0;
  let missing = 0;
  for (const id of c) {
    const v = votes.get(id);
    if (v === undefined) missing++;
    else if (v) yes++;
  }
  const q = (c.size >> 1) + 1;
  if (yes >= q) return VoteResult.VoteWon;
  if (yes + missing >= q) return VoteResult.VotePending;
  return VoteResult.VoteLost;
}

/** A joint configuration: incoming (the new) and outgoing (the old; empty when not in a joint state). */
export class JointConfig {
  incoming: MajorityConfig;
  outgoing: MajorityConfig;

  constructor(incoming: MajorityConfig = new Set(), outgoing: MajorityConfig = new Set()) {
    this.incoming = incoming;
    this.outgoing = outgoing;
  }

  clone(): JointConfig {
    return new JointConfig(new Set(this.incoming), new Set(this.outgoing));
  }

  isJoint(): boolean {
    return this.outgoing.size > 0;
  }

  /** All voter ids of both halves, sorted. */
  ids(): bigint[] {
    const s = new Set<bigint>(this.incoming);
    for (const id of this.outgoing) s.add(id);
    return sortIds(s);
  }

  has(id: bigint): boolean {
    return this.incoming.has(id) || this.outgoing.has(id);
  }

  /** Joint consensus: committed on both halves, i.e. the minimum of the two majorities' indexes. */
  committedIndex(l: AckedIndexer): number {
    const a = majorityCommittedIndex(this.incoming, l);
    const b = majorityCommittedIndex(this.outgoing, l);
    return Math.min(a, b);
  }

  /** Joint consensus: an election is won only with majorities in both halves, lost if either is lost. */
  voteResult(votes: Map<bigint, boolean>): VoteResult {
    const r1 = majorityVoteResult(this.incoming, votes);
    const r2 = majorityVoteResult(this.outgoing, votes);
    if (r1 === r2) return r1;
    if (r1 === VoteResult.VoteLost || r2 === VoteResult.VoteLost) return VoteResult.VoteLost;
    return VoteResult.VotePending;
  }

  toString(): string {
    const f = (s: Set<bigint>) => `(${sortIds(s).join(' ')})`;
    return this.isJoint() ? `${f(this.incoming)}&&${f(this.outgoing)}` : f(this.incoming);
  }
}

export function sortIds(s: Iterable<bigint>): bigint[] {
  return Array.from(s).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}
