// Callers waiting for their proposal to be applied, keyed by request ID (etcd's wait registry).

interface Waiter {
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
  deadline: NodeJS.Timeout | undefined;
}

export class WaitRegistry {
  private readonly waiting = new Map<bigint, Waiter>();

  /**
   * Waits for `id`'s result. With `timeoutMs`, the wait fails with `timeoutErr` unless a result comes
   * first (the timer is the waiter's own, cleared with it: no extra promise per request).
   */
  register(id: bigint, timeoutMs?: number, timeoutErr?: Error): Promise<unknown> {
    return new Promise((resolve, reject) => {
      let deadline: NodeJS.Timeout | undefined;
      if (timeoutMs !== undefined) {
        deadline = setTimeout(() => this.trigger(id, timeoutErr ?? new Error('timed out')), timeoutMs);
        deadline.unref();
      }
      this.waiting.set(id, { resolve, reject, deadline });
    });
  }

  /** Delivers an apply result (an Error is delivered as a rejection). No-op if nobody waits. */
  trigger(id: bigint, result: unknown): void {
    const w = this.waiting.get(id);
    if (w === undefined) return;
    this.waiting.delete(id);
    if (w.deadline !== undefined) clearTimeout(w.deadline);
    if (result instanceof Error) w.reject(result);
    else w.resolve(result);
  }

  /** Fails every waiter (leader change, shutdown). */
  failAll(err: Error): void {
    const all = [...this.waiting.values()];
    this.waiting.clear();
    for (const w of all) {
      if (w.deadline !== undefined) clearTimeout(w.deadline);
      w.reject(err);
    }
  }

  get size(): number {
    return this.waiting.size;
  }
}
