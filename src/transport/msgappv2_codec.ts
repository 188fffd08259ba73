// etcd's "msgappv2" stream encoding, used only for MsgApp. Each frame starts with a type byte:
//   0 link heartbeat                       (nothing else)
//   1 AppEntries: a MsgApp that continues exactly where the previous one ended, in the same term
//     (index == last sent index, logTerm == term == last term): u64 entry count, then per entry
//     u64 size + marshaled raftpb.Entry, then u64 commit. From/To/Term/LogTerm/Index are implied.
//   2 a full message: u64 size + marshaled raftpb.Message; resets the (term, index) state.
// Encoder and decoder keep the same (term, index) state; both start at (0, 0) per connection.
import { type Entry, Entry as EntryCodec, Message, MessageType } from '../gen/raftpb/raft.js';
import { encodeToBuffer } from '../pb/encode.js';
import { ByteQueue, putUInt64 } from './byte_queue.js';
import { READ_BYTES_LIMIT } from './constants.js';

const TYPE_LINK_HEARTBEAT = 0;
const TYPE_APP_ENTRIES = 1;
const TYPE_APP = 2;

/** A heartbeat of the link itself (not raft's): MsgHeartbeat with from = to = 0. */
export function isLinkHeartbeat(m: Message): boolean {
  return m.type === MessageType.MsgHeartbeat && m.from === 0n && m.to === 0n;
}

export function linkHeartbeat(): Message {
  return Message.fromPartial({ type: MessageType.MsgHeartbeat });
}

const HEARTBEAT_FRAME = Buffer.from([TYPE_LINK_HEARTBEAT]);

export class MsgAppV2Encoder {
  private term = 0;
  private index = 0;

  /** Encodes one message into the frames it takes (appended to `out`). */
  encode(m: Message, out: Buffer[]): void {
    if (isLinkHeartbeat(m)) {
      out.push(HEARTBEAT_FRAME);
      return;
    }
    if (this.index === m.index && this.term === m.logTerm && m.logTerm === m.term) {
      // One buffer per frame: type, count, (size, entry)*, commit.
      const n = m.entries.length;
      const bodies: Uint8Array[] = new Array(n);
      let total = 1 + 8 + 8;
      for (let i = 0; i < n; i++) {
        bodies[i] = encodeToBuffer(EntryCodec, m.entries[i]);
        total += 8 + bodies[i].length;
      }
      const buf = Buffer.allocUnsafe(total);
      buf[0] = TYPE_APP_ENTRIES;
      putUInt64(buf, n, 1);
      let at = 9;
      for (let i = 0; i < n; i++) {
        putUInt64(buf, bodies[i].length, at);
        buf.set(bodies[i], at + 8);
        at += 8 + bodies[i].length;
      }
      putUInt64(buf, m.commit, at);
      out.push(buf);
      this.index += n;
      return;
    }
    const buf = encodeToBuffer(Message, m, 9);
    buf[0] = TYPE_APP;
    putUInt64(buf, buf.length - 9, 1);
    out.push(buf);
    this.term = m.term;
    this.index = m.entries.length > 0 ? m.entries[m.entries.length - 1].index : m.index;
  }
}

enum St {
  Type,
  AppSize,
  AppBody,
  EntryCount,
  EntrySize,
  EntryBody,
  Commit,
}

export class MsgAppV2Decoder {
  readonly queue = new ByteQueue();
  private term = 0;
  private index = 0;
  private st = St.Type;
  private need = 1;
  // the AppEntries frame being assembled
  private cur: Message | undefined;
  private left = 0;

  /** `local` is this member, `remote` the sender: they fill the implied From/To of AppEntries. */
  constructor(
    private readonly local: bigint,
    private readonly remote: bigint,
    private readonly limit = READ_BYTES_LIMIT,
  ) {}

  /** Decodes every complete frame in order, link heartbeats included. Throws on a bad stream. */
  push(chunk: Buffer, onMessage: (m: Message) => void): void {
    const q = this.queue;
    q.push(chunk);
    while (q.length >= this.need) {
      switch (this.st) {
        case St.Type: {
          const t = q.takeUInt8();
          if (t === TYPE_LINK_HEARTBEAT) {
            onMessage(linkHeartbeat());
          } else if (t === TYPE_APP_ENTRIES) {
            this.st = St.EntryCount;
            this.need = 8;
          } else if (t === TYPE_APP) {
            this.st = St.AppSize;
            this.need = 8;
          } else {
            throw new Error(`failed to parse type ${t} in msgappv2 stream`);
          }
          break;
        }
        case St.AppSize:
          this.need = this.checked(q.takeUInt64());
          this.st = St.AppBody;
          break;
        case St.AppBody: {
          const m = Message.decode(q.take(this.need));
          this.term = m.term;
          this.index = m.entries.length > 0 ? m.entries[m.entries.length - 1].index : m.index;
          this.reset();
          onMessage(m);
          break;
        }
        case St.EntryCount: {
          this.left = q.takeUInt64();
          this.cur = Message.fromPartial({
            type: MessageType.MsgApp,
            from: this.remote,
            to: this.local,
            term: this.term,
            logTerm: this.term,
            index: this.index,
          });
          this.st = this.left > 0 ? St.EntrySize : St.Commit;
          this.need = 8;
          break;
        }
        case St.EntrySize:
          this.need = this.checked(q.takeUInt64());
          this.st = St.EntryBody;
          break;
        case St.EntryBody: {
          const e: Entry = EntryCodec.decode(q.take(this.need));
          this.cur!.entries.push(e);
          this.index++;
          this.st = --this.left > 0 ? St.EntrySize : St.Commit;
          this.need = 8;
          break;
        }
        case St.Commit: {
          const m = this.cur!;
          m.commit = q.takeUInt64();
          this.cur = undefined;
          this.reset();
          onMessage(m);
          break;
        }
      }
    }
  }

  private reset(): void {
    this.st = St.Type;
    this.need = 1;
  }

  private checked(n: number): number {
    if (n > this.limit) throw new Error('rafthttp: error limit exceeded');
    return n;
  }
}
