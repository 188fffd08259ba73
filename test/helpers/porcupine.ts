// A linearizability checker in the style of Porcupine (Wing & Gong's search with Lowe's memoization):
// a history of operations, each with its invocation and response time, is linearizable when there is
// a total order of the operations that respects real time (an operation that returned before another
// was invoked comes first) and that a sequential model accepts.
//
// The search walks a doubly linked list of call and return events in time order. At a call it tries
// to linearize that operation next (the model must accept it from the current state); a linearized
// operation's call and return are lifted out of the list and the walk restarts from the head. Reaching
// a return means some operation that must already have taken effect could not be placed: backtrack.
// States already explored (set of linearized operations + model state) are cached.
//
// Operations whose outcome is unknown (a timeout or a dropped connection) get no output and return at
// +Infinity: they may take effect at any point after their invocation, or never (placed last).
// Histories are partitioned by key first: linearizability is local, so each key's register is checked
// alone.

export interface Operation<I, O> {
  client: number;
  input: I;
  /** undefined: outcome unknown (the request may or may not have taken effect). */
  output: O | undefined;
  /** Invocation and response times (any monotonic clock); `ret` is ignored when output is unknown. */
  call: number;
  ret: number;
}

export interface Model<S, I, O> {
  init(): S;
  /** Applies `input` to `state`; ok is false when `output` cannot be what the operation returned. */
  step(state: S, input: I, output: O | undefined): { ok: boolean; state: S };
  /** A string that identifies a state (for the cache). */
  key(state: S): string;
  /** Splits a history into independent sub-histories (e.g. per key). Default: one. */
  partition?(history: Operation<I, O>[]): Operation<I, O>[][];
  describe?(op: Operation<I, O>): string;
}

export type CheckResult =
  | { result: 'ok' }
  | { result: 'illegal'; partition: number; longest: string[] }
  | { result: 'unknown'; reason: string };

interface Entry {
  call: boolean;
  id: number;
  time: number;
  prev: Entry | undefined;
  next: Entry | undefined;
  match: Entry | undefined; // a call's return
}

function makeList<I, O>(ops: Operation<I, O>[]): Entry {
  const events: Entry[] = [];
  ops.forEach((op, id) => {
    const ret: Entry = {
      call: false,
      id,
      time: op.output === undefined ? Number.POSITIVE_INFINITY : op.ret,
      prev: undefined,
      next: undefined,
      match: undefined,
    };
    const call: Entry = { call: true, id, time: op.call, prev: undefined, next: undefined, match: ret };
    events.push(call, ret);
  });
  // by time; on a tie a call comes before a return (touching operations count as concurrent)
  events.sort((a, b) => a.time - b.time || (a.call === b.call ? 0 : a.call ? -1 : 1));
  const head: Entry = { call: false, id: -1, time: -1, prev: undefined, next: undefined, match: undefined };
  let last = head;
  for (const e of events) {
    last.next = e;
    e.prev = last;
    last = e;
  }
  return head;
}

function lift(e: Entry): void {
  e.prev!.next = e.next;
  e.next!.prev = e.prev;
  const m = e.match!;
  m.prev!.next = m.next;
  if (m.next) m.next.prev = m.prev;
}

function unlift(e: Entry): void {
  const m = e.match!;
  m.prev!.next = m;
  if (m.next) m.next.prev = m;
  e.prev!.next = e;
  e.next!.prev = e;
}

/** Checks one partition; returns true, false, or 'timeout'. `longest` receives the deepest prefix. */
function checkPartition<S, I, O>(
  model: Model<S, I, O>,
  ops: Operation<I, O>[],
  deadline: number,
  longest: number[],
): boolean | 'timeout' {
  const head = makeList(ops);
  const n = ops.length;
  const bits = new Uint32Array(Math.ceil(n / 32) || 1);
  const cache = new Set<string>();
  const stack: { entry: Entry; state: S }[] = [];
  let state = model.init();
  let entry = head.next;
  let steps = 0;
  const bitsKey = () => Buffer.from(bits.buffer).toString('base64');
  while (head.next !== undefined) {
    if (++steps % 4096 === 0 && Date.now() > deadline) return 'timeout';
    if (entry!.call) {
      const op = ops[entry!.id]!;
      const r = model.step(state, op.input, op.output);
      let advanced = false;
      if (r.ok) {
        const id = entry!.id;
        bits[id >>> 5]! |= 1 << (id & 31);
        const k = `${bitsKey()}|${model.key(r.state)}`;
        if (!cache.has(k)) {
          cache.add(k);
          stack.push({ entry: entry!, state });
          if (stack.length > longest.length) {
            longest.length = 0;
            for (const s of stack) longest.push(s.entry.id);
          }
          state = r.state;
          lift(entry!);
          entry = head.next;
          advanced = true;
        } else {
          bits[id >>> 5]! &= ~(1 << (id & 31));
        }
      }
      if (!advanced) entry = entry!.next;
    } else {
      // a return of an operation not yet linearized: undo the last choice
      const top = stack.pop();
      if (top === undefined) return false;
      const id = top.entry.id;
      bits[id >>> 5]! &= ~(1 << (id & 31));
      state = top.state;
      unlift(top.entry);
      entry = top.entry.next;
    }
  }
  return true;
}

export function checkOperations<S, I, O>(
  model: Model<S, I, O>,
  history: Operation<I, O>[],
  timeoutMs = 30_000,
): CheckResult {
  const deadline = Date.now() + timeoutMs;
  const partitions = model.partition ? model.partition(history) : [history];
  for (const [i, ops] of partitions.entries()) {
    const longest: number[] = [];
    const r = checkPartition(model, ops, deadline, longest);
    if (r === 'timeout')
      return { result: 'unknown', reason: `timed out on partition ${i} (${ops.length} ops)` };
    if (!r) {
      const describe = model.describe ?? ((op: Operation<I, O>) => JSON.stringify(op));
      return { result: 'illegal', partition: i, longest: longest.map((id) => describe(ops[id]!)) };
    }
  }
  return { result: 'ok' };
}

// ---- a key-value register model with compare-and-swap ----

export type KvInput =
  | { op: 'get'; key: string }
  | { op: 'put'; key: string; value: string }
  /** put `value` if the key's value is `expect` (null: the key is absent). */
  | { op: 'cas'; key: string; expect: string | null; value: string };

export type KvOutput = { value: string | null } | { ok: true } | { succeeded: boolean };

export type KvOperation = Operation<KvInput, KvOutput>;

/** One register per key; `initial` gives the value each key holds before the history starts. */
export function kvModel(
  initial: Record<string, string | null> = {},
): Model<{ key: string | undefined; value: string | null }, KvInput, KvOutput> {
  // the state carries its key so init() can start from the partition's initial value lazily
  return {
    init: () => ({ key: undefined, value: null }),
    step(s, input, output) {
      const cur = s.key === undefined ? (initial[input.key] ?? null) : s.value;
      const key = input.key;
      switch (input.op) {
        case 'get':
          if (output === undefined) return { ok: true, state: { key, value: cur } };
          return { ok: 'value' in output && output.value === cur, state: { key, value: cur } };
        case 'put':
          return { ok: true, state: { key, value: input.value } };
        case 'cas': {
          const match = cur === input.expect;
          if (output !== undefined && (!('succeeded' in output) || output.succeeded !== match)) {
            return { ok: false, state: s };
          }
          return { ok: true, state: { key, value: match ? input.value : cur } };
        }
      }
    },
    key: (s) => (s.value === null ? '\u0000' : s.value),
    partition(history) {
      const byKey = new Map<string, KvOperation[]>();
      for (const op of history) {
        // a read that failed tells nothing: drop it
        if (op.input.op === 'get' && op.output === undefined) continue;
        const list = byKey.get(op.input.key) ?? [];
        list.push(op);
        byKey.set(op.input.key, list);
      }
      return [...byKey.values()];
    },
    describe(op) {
      const i = op.input;
      const what =
        i.op === 'get'
          ? `get(${i.key})`
          : i.op === 'put'
            ? `put(${i.key}, ${i.value})`
            : `cas(${i.key}, ${i.expect} -> ${i.value})`;
      const out = op.output === undefined ? '?' : JSON.stringify(op.output);
      return `c${op.client} ${what} = ${out} [${op.call.toFixed(1)}, ${op.output === undefined ? 'inf' : op.ret.toFixed(1)}]`;
    },
  };
}
