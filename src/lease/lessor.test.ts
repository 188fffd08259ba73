import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LeaseExistsError, LeaseNotFoundError, LeaseTTLTooLargeError } from './errors.js';
import { type LeaseBackend, type LeaseRecord, Lessor, MAX_LEASE_TTL } from './lessor.js';

function memoryBackend(): LeaseBackend & { rows: Map<bigint, LeaseRecord> } {
  const rows = new Map<bigint, LeaseRecord>();
  return {
    rows,
    save: (r) => rows.set(r.id, { ...r }),
    remove: (id) => rows.delete(id),
    loadAll: () => [...rows.values()],
  };
}

test('grant raises short TTLs to the minimum and refuses duplicates, zero IDs and huge TTLs', () => {
  const l = new Lessor(memoryBackend(), { minTtl: 2, now: () => 0 });
  assert.equal(l.grant(1n, 1).ttl, 2);
  assert.throws(() => l.grant(1n, 10), LeaseExistsError);
  assert.throws(() => l.grant(0n, 10), LeaseNotFoundError);
  assert.throws(() => l.grant(2n, MAX_LEASE_TTL + 1), LeaseTTLTooLargeError);
});

test('only the primary runs clocks; expiry and renewal follow its clock', () => {
  let now = 0;
  const l = new Lessor(memoryBackend(), { minTtl: 1, now: () => now });
  l.grant(7n, 10);
  now = 20_000;
  assert.deepEqual(l.expired(), [], 'a non-primary never expires leases');
  l.promote();
  now += 9_000;
  assert.deepEqual(l.expired(), []);
  assert.equal(l.renew(7n), 10);
  now += 9_999;
  assert.deepEqual(l.expired(), []);
  now += 1;
  assert.deepEqual(l.expired(), [7n]);
  l.demote();
  assert.deepEqual(l.expired(), []);
});

test('keys follow puts, overwrites and deletes; revoke returns them sorted', () => {
  const l = new Lessor(memoryBackend(), { minTtl: 1 });
  l.grant(1n, 10);
  l.grant(2n, 10);
  l.setKeyLease('b', 1n);
  l.setKeyLease('a', 1n);
  l.setKeyLease('c', 1n);
  l.setKeyLease('c', 2n); // re-put with another lease
  l.setKeyLease('a', 0n); // re-put without lease, or delete
  assert.deepEqual(l.revoke(1n), ['b']);
  assert.deepEqual(l.revoke(2n), ['c']);
  assert.throws(() => l.revoke(1n), LeaseNotFoundError);
});

test('checkpointed remaining TTL is what a restarted primary continues from', () => {
  let now = 0;
  const backend = memoryBackend();
  const a = new Lessor(backend, { minTtl: 1, now: () => now });
  a.promote();
  a.grant(5n, 60);
  now = 20_000;
  const cps = a.checkpointCandidates();
  assert.deepEqual(cps, [{ id: 5n, remainingTtl: 40 }]);
  for (const c of cps) a.checkpoint(c.id, c.remainingTtl);
  // restart: a new lessor over the same backend
  now = 1_000_000;
  const b = new Lessor(backend, { minTtl: 1, now: () => now });
  b.promote();
  assert.equal(b.remainingSeconds(b.lookup(5n)!), 40);
  now += 40_000;
  assert.deepEqual(b.expired(), [5n]);
});
