// Cluster membership: the members raft replicates (added/removed/promoted by conf-change entries,
// named by the attributes each member publishes), persisted in the backend's `members` bucket in
// etcd's JSON form so data dirs and snapshots stay interchangeable with etcd's.
import type { Member } from '../gen/etcdserverpb/rpc.js';
import type { MvccStore } from '../mvcc/store.js';

export const MEMBERS_BUCKET = 'members';
export const MEMBERS_REMOVED_BUCKET = 'members_removed';

export interface ClusterMember {
  id: bigint;
  /** empty until the member publishes its attributes */
  name: string;
  peerURLs: string[];
  clientURLs: string[];
  isLearner: boolean;
}

/**
 * etcd's Member JSON: {"id":<uint64>,"peerURLs":[...],"isLearner":true?,"name":..?,"clientURLs":[..]?}.
 * Written by hand because the ID is a 64-bit integer that JSON.stringify cannot print exactly.
 */
export function memberToJson(m: ClusterMember, withAttributes = true): string {
  let s = `{"id":${m.id.toString()},"peerURLs":${JSON.stringify(m.peerURLs)}`;
  if (m.isLearner) s += ',"isLearner":true';
  if (withAttributes && m.name !== '') s += `,"name":${JSON.stringify(m.name)}`;
  if (withAttributes && m.clientURLs.length > 0) s += `,"clientURLs":${JSON.stringify(m.clientURLs)}`;
  return `${s}}`;
}

export function memberFromJson(text: string): ClusterMember {
  const idMatch = /"id"\s*:\s*(\d+)/.exec(text);
  if (!idMatch) throw new Error(`member JSON without an id: ${text}`);
  const o = JSON.parse(text) as {
    peerURLs?: string[];
    isLearner?: boolean;
    name?: string;
    clientURLs?: string[];
  };
  return {
    id: BigInt(idMatch[1]!),
    name: o.name ?? '',
    peerURLs: o.peerURLs ?? [],
    clientURLs: o.clientURLs ?? [],
    isLearner: o.isLearner === true,
  };
}

export class Membership {
  private readonly members = new Map<bigint, ClusterMember>();
  private readonly removed = new Set<bigint>();

  constructor(
    private readonly store: MvccStore,
    public clusterId: bigint,
  ) {
    this.load();
  }

  private load(): void {
    for (const { value } of this.store.bucket(MEMBERS_BUCKET).getRange({})) {
      const m = memberFromJson(value.toString());
      this.members.set(m.id, m);
    }
    for (const { key } of this.store.bucket(MEMBERS_REMOVED_BUCKET).getRange({})) {
      this.removed.add(BigInt(`0x${key.toString()}`));
    }
  }

  /** The backend was replaced (a snapshot from the leader): read the members from it again. */
  reload(): void {
    this.members.clear();
    this.removed.clear();
    this.load();
  }

  /** IDs of removed members (etcd's members_removed bucket). */
  removedIds(): bigint[] {
    return [...this.removed].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  }

  get size(): number {
    return this.members.size;
  }

  get(id: bigint): ClusterMember | undefined {
    return this.members.get(id);
  }

  all(): ClusterMember[] {
    return [...this.members.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  isRemoved(id: bigint): boolean {
    return this.removed.has(id);
  }

  voters(): ClusterMember[] {
    return this.all().filter((m) => !m.isLearner);
  }

  // ---- changes, applied from the log (inside the apply transaction) ----

  add(m: ClusterMember): void {
    this.members.set(m.id, { ...m });
    this.persist(m.id);
  }

  remove(id: bigint): void {
    this.members.delete(id);
    this.removed.add(id);
    const key = Buffer.from(id.toString(16));
    this.store.bucket(MEMBERS_BUCKET).removeSync(key);
    this.store.bucket(MEMBERS_REMOVED_BUCKET).putSync(key, Buffer.from('removed'));
  }

  updatePeerURLs(id: bigint, peerURLs: string[]): void {
    const m = this.members.get(id);
    if (!m) return;
    m.peerURLs = [...peerURLs];
    this.persist(id);
  }

  promote(id: bigint): void {
    const m = this.members.get(id);
    if (!m) return;
    m.isLearner = false;
    this.persist(id);
  }

  setAttributes(id: bigint, name: string, clientURLs: string[]): void {
    const m = this.members.get(id);
    if (!m) return;
    m.name = name;
    m.clientURLs = [...clientURLs];
    this.persist(id);
  }

  private persist(id: bigint): void {
    const m = this.members.get(id)!;
    this.store.bucket(MEMBERS_BUCKET).putSync(Buffer.from(id.toString(16)), Buffer.from(memberToJson(m)));
  }

  toWire(m: ClusterMember): Member {
    return { ID: m.id, name: m.name, peerURLs: m.peerURLs, clientURLs: m.clientURLs, isLearner: m.isLearner };
  }
}
