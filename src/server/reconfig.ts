// Cluster reconfiguration: the Cluster service's member changes and Maintenance.MoveLeader, with
// etcd's checks before anything is proposed (peer URLs not taken, one learner at most, a quorum of
// started members kept under --strict-reconfig-check, a learner promoted only once caught up).
// Changes go through the log as raft conf-change entries; the caller is answered when the entry
// is applied.
import type { Member } from '../gen/etcdserverpb/rpc.js';
import { ConfChange, ConfChangeType } from '../gen/raftpb/raft.js';
import { Code, Errors, EtcdError } from './errors.js';
import { memberId } from './member_id.js';
import { type ClusterMember, type Membership, memberToJson } from './membership.js';
import type { RaftNode } from './raft_node.js';
import type { WaitRegistry } from './wait.js';

/** etcd allows one learner at a time. */
const MAX_LEARNERS = 1;

function normalizePeerUrls(urls: string[]): string[] {
  const out: string[] = [];
  for (const raw of urls) {
    let u: URL;
    try {
      u = new URL(raw);
    } catch {
      throw Errors.memberBadURLs;
    }
    if (
      (u.protocol !== 'http:' && u.protocol !== 'https:') ||
      u.port === '' ||
      (u.pathname !== '/' && u.pathname !== '')
    ) {
      throw Errors.memberBadURLs;
    }
    out.push(`${u.protocol}//${u.host}`);
  }
  if (out.length === 0) throw Errors.memberBadURLs;
  return out.sort();
}

/** A new member's ID, as etcd makes it for `member add`: its peer URLs and the time, hashed. */
function memberIdForAdd(peerUrls: string[]): bigint {
  return memberId(peerUrls, '', Math.floor(Date.now() / 1000));
}

export interface ReconfigurationDeps {
  memberId: bigint;
  membership: Membership;
  raft: RaftNode;
  wait: WaitRegistry;
  strictReconfigCheck: boolean;
  heartbeatMs: number;
  /** when the peer's stream became active, undefined if it is not (transport) */
  activeSince(id: bigint): number | undefined;
  waitForLeader(): Promise<void>;
  newId(): bigint;
  timeoutMs(): number;
  members(): Member[];
}

export class Reconfiguration {
  /** wait IDs of MemberRemove calls removing this very member */
  private readonly selfRemovalWaits = new Set<bigint>();

  constructor(private readonly d: ReconfigurationDeps) {}

  /** The cluster removed this member: whoever asked for that removal has the answer. */
  answerSelfRemoval(): void {
    for (const id of this.selfRemovalWaits) this.d.wait.trigger(id, undefined);
  }

  /** Adds a member (a voter, or a learner) by a conf-change entry; etcd's checks first. */
  async memberAdd(peerURLs: string[], isLearner: boolean): Promise<{ member: Member; members: Member[] }> {
    const urls = normalizePeerUrls(peerURLs);
    for (const m of this.d.membership.all()) {
      if (m.peerURLs.some((u) => urls.includes(u))) throw Errors.peerURLExist;
    }
    if (isLearner && this.d.membership.all().filter((m) => m.isLearner).length >= MAX_LEARNERS) {
      throw Errors.tooManyLearners;
    }
    if (!isLearner && this.d.strictReconfigCheck) {
      // after the add, the started members must still form a quorum of the larger cluster; growing
      // a lone member to two is allowed (that is how a cluster is restored from one member)
      const voters = this.d.membership.voters().length + 1;
      const started = this.startedVoters();
      if (!(started === 1 && voters === 2) && started < Math.floor(voters / 2) + 1) {
        throw Errors.memberNotEnoughStarted;
      }
    }
    const m: ClusterMember = {
      id: memberIdForAdd(urls),
      name: '',
      peerURLs: urls,
      clientURLs: [],
      isLearner,
    };
    await this.proposeConfChange(
      isLearner ? ConfChangeType.ConfChangeAddLearnerNode : ConfChangeType.ConfChangeAddNode,
      m.id,
      memberToJson(m),
    );
    return { member: this.d.membership.toWire(this.d.membership.get(m.id) ?? m), members: this.d.members() };
  }

  async memberRemove(id: bigint): Promise<Member[]> {
    const m = this.d.membership.get(id);
    if (m === undefined) throw Errors.memberNotFound; // a removed ID too, as etcd answers it
    if (this.d.strictReconfigCheck && !m.isLearner) {
      const voters = this.d.membership.voters().length - 1;
      const up = this.startedVoters() - (this.isStarted(id) ? 1 : 0);
      if (up < Math.floor(voters / 2) + 1) throw Errors.memberNotEnoughStarted;
      // a member that is down is safe to remove; otherwise the reachable members must keep a quorum
      if (id !== this.d.memberId && this.d.activeSince(id) !== undefined) {
        const all = this.d.membership.voters();
        const active = all.filter(
          (v) => v.id === this.d.memberId || this.d.activeSince(v.id) !== undefined,
        ).length;
        if (active - 1 < 1 + Math.floor((all.length - 1) / 2)) throw Errors.unhealthy;
      }
    }
    await this.proposeConfChange(ConfChangeType.ConfChangeRemoveNode, id, '');
    return this.d.members().filter((x) => x.ID !== id);
  }

  async memberUpdate(id: bigint, peerURLs: string[]): Promise<Member[]> {
    const m = this.d.membership.get(id);
    if (m === undefined) throw Errors.memberNotFound;
    const urls = normalizePeerUrls(peerURLs);
    for (const o of this.d.membership.all()) {
      if (o.id !== id && o.peerURLs.some((u) => urls.includes(u))) throw Errors.peerURLExist;
    }
    await this.proposeConfChange(
      ConfChangeType.ConfChangeUpdateNode,
      id,
      memberToJson({ ...m, peerURLs: urls }, false),
    );
    return this.d.members();
  }

  async memberPromote(id: bigint): Promise<Member[]> {
    const m = this.d.membership.get(id);
    if (m === undefined) throw Errors.memberNotFound;
    if (!m.isLearner) throw Errors.memberNotLearner;
    if (this.d.raft.isLeader()) {
      // only a learner whose log is close to the leader's may vote (etcd: 90% of the leader's match)
      const progress = this.d.raft.node.status().progress;
      const leaderMatch = progress?.get(this.d.memberId)?.match ?? 0;
      const learnerMatch = progress?.get(id)?.match ?? 0;
      if (learnerMatch < leaderMatch * 0.9) throw Errors.learnerNotReady;
    }
    await this.proposeConfChange(
      ConfChangeType.ConfChangeAddNode,
      id,
      memberToJson({ ...m, isLearner: false }, false),
    );
    return this.d.members();
  }

  /** Hands leadership to `target` (leader only) and waits until it has taken over. */
  async moveLeader(target: bigint): Promise<void> {
    if (!this.d.raft.isLeader()) throw Errors.notLeader;
    const m = this.d.membership.get(target);
    if (m === undefined || m.isLearner) throw Errors.badLeaderTransferee;
    if (target === this.d.memberId) return;
    this.d.raft.node.transferLeader(target);
    this.d.raft.schedule();
    const deadline = Date.now() + this.d.timeoutMs();
    while (Date.now() < deadline) {
      if (this.d.raft.lead === target) return;
      await new Promise((r) => setTimeout(r, this.d.heartbeatMs));
    }
    throw new EtcdError(Code.UNAVAILABLE, 'etcdserver: request timed out, leader transfer took too long');
  }

  /** etcd's "started": the member has published its attributes (it has a name). */
  private isStarted(id: bigint): boolean {
    return (this.d.membership.get(id)?.name ?? '') !== '';
  }

  private startedVoters(): number {
    return this.d.membership.voters().filter((m) => this.isStarted(m.id)).length;
  }

  private async proposeConfChange(type: ConfChangeType, nodeId: bigint, context: string): Promise<void> {
    await this.d.waitForLeader();
    const id = this.d.newId();
    const result = this.d.wait.register(id, this.d.timeoutMs(), Errors.timeout);
    if (type === ConfChangeType.ConfChangeRemoveNode && nodeId === this.d.memberId)
      this.selfRemovalWaits.add(id);
    try {
      this.d.raft.node.proposeConfChange(
        ConfChange.fromPartial({ id, type, nodeId, context: Buffer.from(context) }),
      );
      this.d.raft.schedule();
    } catch {
      this.d.wait.trigger(id, Errors.leaderChanged);
    }
    try {
      await result;
    } finally {
      this.selfRemovalWaits.delete(id);
    }
  }
}
