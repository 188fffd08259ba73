// A synchronous in-memory network of Raft state machines for unit tests (messages are delivered
// immediately and in order until the network is quiet), with per-link drops and isolation.
import { type Entry, EntryType, type Message, MessageType } from '../../gen/raftpb/raft.js';
import { type Config, Raft } from '../raft.js';
import { ReadOnlyOption } from '../read_only.js';
import { MemoryStorage } from '../storage.js';
import { None, newMessage, seededRandom } from '../util.js';

export function ids(...n: number[]): bigint[] {
  return n.map((x) => BigInt(x));
}

export function newTestRaft(
  id: number,
  voters: number[],
  election = 10,
  heartbeat = 1,
  storage?: MemoryStorage,
  extra: Partial<Config> = {},
): Raft {
  const st = storage ?? MemoryStorage.withVoters(ids(...voters));
  return new Raft({
    id: BigInt(id),
    electionTick: election,
    heartbeatTick: heartbeat,
    storage: st,
    maxInflightMsgs: 256,
    readOnlyOption: ReadOnlyOption.Safe,
    random: seededRandom(id * 7919),
    ...extra,
  });
}

/** Entries with the given terms at indexes 1..n. */
export function entsWithTerms(...terms: number[]): Entry[] {
  return terms.map((term, i) => ({ term, index: i + 1, type: EntryType.EntryNormal, data: Buffer.alloc(0) }));
}

/** A storage whose log holds entries with these terms (and a matching hard state term). */
export function storageWithTerms(voters: number[], ...terms: number[]): MemoryStorage {
  const st = MemoryStorage.withVoters(ids(...voters));
  st.append(entsWithTerms(...terms));
  st.setHardState({ term: terms.length ? terms[terms.length - 1] : 0, vote: None, commit: 0 });
  return st;
}

export function msg(type: MessageType, from: number, to: number, fields: Partial<Message> = {}): Message {
  return { ...newMessage(type, BigInt(to), BigInt(from), 0), ...fields };
}

export function prop(to: number, data = 'somedata'): Message {
  return msg(MessageType.MsgProp, to, to, {
    entries: [{ term: 0, index: 0, type: EntryType.EntryNormal, data: Buffer.from(data) }],
  });
}

export function readMessages(r: Raft): Message[] {
  const m = r.msgs;
  r.msgs = [];
  return m;
}

export class Network {
  peers = new Map<bigint, Raft | null>();
  /** "from>to" -> drop probability (1 = always). */
  dropm = new Map<string, number>();
  ignorem = new Set<MessageType>();
  private rng = seededRandom(42);
  /** Every message delivered (for assertions). */
  delivered: Message[] = [];

  /** Peers get ids 1..n in order; null is a black hole (a crashed node). */
  constructor(peers: (Raft | null)[]) {
    peers.forEach((p, i) => {
      this.peers.set(BigInt(i + 1), p);
    });
  }

  static of(n: number, extra: Partial<Config> = {}): Network {
    const all = Array.from({ length: n }, (_, i) => i + 1);
    return new Network(all.map((id) => newTestRaft(id, all, 10, 1, undefined, extra)));
  }

  get(id: number): Raft {
    return this.peers.get(BigInt(id))!;
  }

  send(...msgs: Message[]): void {
    const q = msgs.slice();
    while (q.length > 0) {
      const m = q.shift()!;
      const p = this.peers.get(m.to);
      if (p === undefined || p === null) continue;
      this.delivered.push(m);
      p.step(m);
      for (const out of readMessages(p)) if (!this.filter(out)) q.push(out);
    }
  }

  private filter(m: Message): boolean {
    if (this.ignorem.has(m.type)) return true;
    if (m.type === MessageType.MsgHup) throw new Error('unexpected msgHup');
    const perc = this.dropm.get(`${m.from}>${m.to}`) ?? 0;
    return perc > 0 && this.rng() < perc;
  }

  drop(from: number, to: number, perc: number): void {
    this.dropm.set(`${from}>${to}`, perc);
  }

  cut(a: number, b: number): void {
    this.drop(a, b, 2);
    this.drop(b, a, 2);
  }

  isolate(id: number): void {
    for (const other of this.peers.keys()) {
      if (other !== BigInt(id)) this.cut(id, Number(other));
    }
  }

  ignore(t: MessageType): void {
    this.ignorem.add(t);
  }

  recover(): void {
    this.dropm.clear();
    this.ignorem.clear();
  }

  hup(id: number): void {
    this.send(msg(MessageType.MsgHup, id, id));
  }
}
