// Callers waiting for their proposal to be applied, keyed by request ID (etcd's wait registry).

type Settle = { resolve: (v: unknown) => void; reject: (e: unknown) => void };

export class WaitRegistry {
  private readonly waiting = new Map<bigint, Settle>();

  register(id: bigint): Promise<unknown> {
    return new Promise((resolve, reject) => this.waiting.set(id, { resolve, reject }));
  }

  /** Delivers an apply result (an Error is delivered as a rejection). No-op if nobody waits. */
  trigger(id: bigint, result: unknown): void {
    const w = this.waiting.get(id);
    if (w === undefined) return;
    this.waiting.delete(id);
    if (result instanceof Error) w.reject(result);
    else w.resolve(result);
  }

  /** Fails every waiter (leader change, shutdown). */
  failAll(err: Error): void {
    const all = [...this.waiting.values()];
    this.waiting.clear();
    for (const w of all) w.reject(err);
  }

  get size(): number {
    return this.waiting.size;
  }
}
