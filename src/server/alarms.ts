// Alarms (etcd's v3alarm): NOSPACE and CORRUPT raised per member, persisted in the backend's `alarm`
// bucket with etcd's layout (key = the encoded AlarmMember, value empty), so a restart, a snapshot and a
// restore all keep them. The bucket is the only state: reads go to LMDB (a handful of keys), so an apply
// batch that rolls back takes its alarm changes with it and nothing in memory can disagree.
import {
  type AlarmMember,
  AlarmMember as AlarmMemberPb,
  type AlarmRequest,
  AlarmRequest_AlarmAction,
  type AlarmResponse,
  AlarmType,
} from '../gen/etcdserverpb/rpc.js';
import type { Bucket } from '../mvcc/backend.js';

export const ALARM_BUCKET = 'alarm';

export function alarmName(t: AlarmType): string {
  return AlarmType[t] ?? String(t);
}

/** etcd's AlarmMember.String() (gogo CompactTextString): "memberID:<decimal> alarm:NOSPACE ". */
export function alarmString(m: AlarmMember): string {
  let s = '';
  if (m.memberID !== 0n) s += `memberID:${BigInt.asUintN(64, m.memberID)} `;
  if (m.alarm !== AlarmType.NONE) s += `alarm:${alarmName(m.alarm)} `;
  return s;
}

export interface AlarmChange {
  /** the alarm type went from no member to one member (raised) or from some to none (cleared) */
  raised?: AlarmMember;
  cleared?: AlarmMember;
}

export class AlarmStore {
  /** The bucket's alarms, read once: every put asks has(NOSPACE), and a cursor per put costs ~20 µs. */
  private cache: AlarmMember[] | undefined;

  constructor(private readonly bucket: Bucket) {}

  /** Forget the cached alarms (the bucket was replaced, e.g. by a snapshot restore). */
  invalidate(): void {
    this.cache = undefined;
  }

  private all(): AlarmMember[] {
    if (this.cache === undefined) {
      const out: AlarmMember[] = [];
      for (const key of this.bucket.getKeys({}) as Iterable<Buffer>) out.push(AlarmMemberPb.decode(key));
      this.cache = out;
    }
    return this.cache;
  }

  /** All alarms (type NONE) or those of one type, ordered as the bucket keys. */
  get(type: AlarmType = AlarmType.NONE): AlarmMember[] {
    return this.all().filter((m) => type === AlarmType.NONE || m.alarm === type);
  }

  has(type: AlarmType): boolean {
    return this.get(type).length > 0;
  }

  /**
   * Applies an AlarmRequest (inside the apply transaction) as etcd's applier does: GET lists, ACTIVATE
   * adds (idempotent), DEACTIVATE removes; the response lists the member alarm touched.
   */
  apply(req: AlarmRequest, onChange?: (c: AlarmChange) => void): AlarmResponse {
    const resp: AlarmResponse = { header: undefined, alarms: [] };
    switch (req.action) {
      case AlarmRequest_AlarmAction.GET:
        resp.alarms = this.get(req.alarm);
        break;
      case AlarmRequest_AlarmAction.ACTIVATE: {
        if (req.alarm === AlarmType.NONE) break;
        const m = { memberID: req.memberID, alarm: req.alarm };
        const key = encode(m);
        const before = this.get(req.alarm).length;
        if (this.bucket.get(key) === undefined) {
          this.bucket.putSync(key, Buffer.alloc(0));
          this.cache = undefined;
        }
        resp.alarms.push(m);
        if (before === 0) onChange?.({ raised: m });
        break;
      }
      case AlarmRequest_AlarmAction.DEACTIVATE: {
        const m = { memberID: req.memberID, alarm: req.alarm };
        const key = encode(m);
        if (this.bucket.get(key) === undefined) break;
        this.bucket.removeSync(key);
        this.cache = undefined;
        resp.alarms.push(m);
        if (this.get(req.alarm).length === 0) onChange?.({ cleared: m });
        break;
      }
      default:
        break;
    }
    return resp;
  }
}

function encode(m: AlarmMember): Buffer {
  return Buffer.from(AlarmMemberPb.encode(m).finish());
}
