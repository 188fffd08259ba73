// Request IDs unique across members and restarts, shaped like etcd's idutil: the low 2 bytes of the
// member ID, 5 bytes of milliseconds at start, then a counter in the low byte that carries upward.

export class RequestIdGenerator {
  private next: bigint;

  constructor(memberId: bigint, nowMs: number) {
    const prefix = (memberId & 0xffffn) << 48n;
    const suffix = (BigInt(nowMs) & 0xffffffffffn) << 8n;
    this.next = prefix | suffix;
  }

  generate(): bigint {
    this.next = (this.next & 0xffff000000000000n) | ((this.next + 1n) & 0x0000ffffffffffffn);
    return this.next;
  }
}
