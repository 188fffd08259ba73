// Defragmentation at the store level: LMDB reuses freed pages but never shrinks its file, so (as with
// etcd's bbolt) reclaiming disk space means rewriting the data compactly into a new file and switching to
// it. Unlike etcd, reads keep being served from the old file while the copy is made (LMDB copies from a
// read transaction in a worker thread); the switch itself is a few synchronous steps in one event-loop turn.
//
// The caller must keep writers out for the whole call (the copy is a snapshot: a write made during it
// would be lost) and must not hold long read transactions on the store (the old environment is closed).
//
// On disk: the copy is made in `<dir>.defrag`, synced, then `<dir>` -> `<dir>.old`, `<dir>.defrag` ->
// `<dir>`, parent directory synced, `<dir>.old` removed. recoverDefrag() finishes or discards an
// interrupted run at the next start.
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Backend } from './backend.js';
import type { MvccStore } from './store.js';

export interface DefragResult {
  sizeBefore: number;
  sizeAfter: number;
  tookMs: number;
}

export interface DefragOptions {
  /** Called with a short message and fields at each phase and every ~0.5 s while copying. */
  progress?: (msg: string, fields: Record<string, unknown>) => void;
  /**
   * Checked after the copy: false means something was written during it (e.g. entries applied from the
   * raft leader, which a paused local write path does not hold back); the copy is then discarded and
   * StoreChangedError thrown, so no write is ever lost. Default: the consistent index did not move.
   */
  unchanged?: () => boolean;
}

export class StoreChangedError extends Error {}

/** The store's backend. MvccStore keeps it private; defragmentation is the one outside user. */
function backendOf(store: MvccStore): Backend {
  return (store as unknown as { backend: Backend }).backend;
}

export async function defragStore(store: MvccStore, opts: DefragOptions = {}): Promise<DefragResult> {
  const backend = backendOf(store);
  const dir = backend.dir;
  const tmp = `${dir}.defrag`;
  const old = `${dir}.old`;
  const report = opts.progress ?? (() => {});
  const start = performance.now();
  const sizeBefore = backend.size();
  const ciBefore = store.consistentIndex;
  const revBefore = store.currentRevision;
  const unchanged =
    opts.unchanged ?? (() => store.consistentIndex === ciBefore && store.currentRevision === revBefore);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  report('defrag: copying the backend compacted', { 'current-db-size-bytes': sizeBefore, 'temp-dir': tmp });
  const timer = setInterval(() => {
    try {
      const copied = statSync(join(tmp, 'data.mdb')).size;
      report('defrag: copying', {
        'copied-bytes': copied,
        'current-db-size-bytes': sizeBefore,
        'took-ms': Math.round(performance.now() - start),
      });
    } catch {}
  }, 500);
  try {
    backend.commit();
    await backend.env.backup(tmp, true);
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    throw new Error(`defrag: copying the backend failed: ${(err as Error).message}`);
  } finally {
    clearInterval(timer);
  }
  if (!unchanged()) {
    rmSync(tmp, { recursive: true, force: true });
    throw new StoreChangedError(
      'defrag: the store changed while it was being copied; the copy was discarded',
    );
  }
  fsyncPath(join(tmp, 'data.mdb'));
  fsyncPath(tmp);
  // switch: from here to the renames nothing yields, so no read sees a half-switched store
  const prev = backend.switchTo(tmp);
  rmSync(old, { recursive: true, force: true });
  renameSync(dir, old);
  renameSync(tmp, dir);
  fsyncPath(dirname(dir));
  await prev.close();
  rmSync(old, { recursive: true, force: true });
  const sizeAfter = backend.size();
  const tookMs = Math.round(performance.now() - start);
  report('defrag: switched to the compacted backend', {
    'current-db-size-bytes-diff': sizeAfter - sizeBefore,
    'current-db-size-bytes': sizeAfter,
    'took-ms': tookMs,
  });
  return { sizeBefore, sizeAfter, tookMs };
}

/** At start, before the store opens `dir`: completes or discards a defragmentation cut short by a crash. */
export function recoverDefrag(dir: string): 'none' | 'completed' | 'discarded' {
  const tmp = `${dir}.defrag`;
  const old = `${dir}.old`;
  let outcome: 'none' | 'completed' | 'discarded' = 'none';
  if (!existsSync(dir) && existsSync(join(tmp, 'data.mdb')) && existsSync(old)) {
    // crashed between the two renames: the copy was complete and synced
    renameSync(tmp, dir);
    fsyncPath(dirname(dir));
    outcome = 'completed';
  } else if (existsSync(tmp)) outcome = 'discarded';
  rmSync(tmp, { recursive: true, force: true });
  if (existsSync(dir)) rmSync(old, { recursive: true, force: true });
  return outcome;
}

function fsyncPath(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
