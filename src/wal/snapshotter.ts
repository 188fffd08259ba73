// Raft snapshot files (<data-dir>/member/snap/%016x-%016x.snap): a snappb.snapshot holding the
// encoded raftpb.Snapshot and its CRC-32C, as etcd 3.4 writes them.
import * as fs from 'node:fs';
import { join } from 'node:path';
import { crc32c } from '@node-rs/crc32';
import { Snapshot } from '../gen/raftpb/raft.js';
import { snapshot as SnapFile } from '../gen/snappb/snap.js';
import { SnapError } from './errors.js';
import { DB_FILE, dbSnapPath, SNAP_SUFFIX, snapName } from './file_names.js';
import { fsyncDir, PRIVATE_FILE_MODE, writeFully } from './fsutil.js';
import { encodeRaftSnapshot, encodeSnapFile } from './pb.js';
import type { WalLogger, WalSnapshot } from './wal.js';

const TMP_SUFFIX = '.tmp';
const noopLogger: WalLogger = { info() {}, warn() {} };

/** Reads and checks one .snap file. */
export function readSnapFile(path: string): Snapshot {
  const b = fs.readFileSync(path);
  if (b.length === 0) throw new SnapError('EMPTY_SNAPSHOT', `snap: empty snapshot file ${path}`, path);
  let file: SnapFile;
  try {
    file = SnapFile.decode(b);
  } catch (err) {
    throw new SnapError('CORRUPT', `snap: cannot decode ${path}: ${(err as Error).message}`, path);
  }
  if (file.data.length === 0 || file.crc === 0) {
    throw new SnapError('EMPTY_SNAPSHOT', `snap: empty snapshot in ${path}`, path);
  }
  const crc = crc32c(file.data);
  if (crc !== file.crc) {
    throw new SnapError(
      'CRC_MISMATCH',
      `snap: crc mismatch in ${path}: stored 0x${file.crc.toString(16)}, computed 0x${crc.toString(16)}`,
      path,
    );
  }
  try {
    return Snapshot.decode(file.data);
  } catch (err) {
    throw new SnapError(
      'CORRUPT',
      `snap: cannot decode the raft snapshot in ${path}: ${(err as Error).message}`,
      path,
    );
  }
}

export class Snapshotter {
  constructor(
    readonly dir: string,
    private readonly log: WalLogger = noopLogger,
  ) {}

  /**
   * Writes `snap` as `%016x-%016x.snap` (term, index): to a temporary file, fsynced, renamed into
   * place, directory fsynced. An empty snapshot (index 0) is ignored, as in etcd.
   */
  saveSnap(snap: Snapshot): void {
    const md = snap.metadata;
    if (!md || md.index === 0) return;
    const data = encodeRaftSnapshot(snap);
    const bytes = encodeSnapFile(crc32c(data), data);
    const path = join(this.dir, snapName(md.term, md.index));
    const tmp = path + TMP_SUFFIX;
    const fd = fs.openSync(tmp, 'w', PRIVATE_FILE_MODE);
    try {
      writeFully(fd, bytes, 0);
      fs.fsyncSync(fd);
    } catch (err) {
      fs.closeSync(fd);
      fs.rmSync(tmp, { force: true });
      throw err;
    }
    fs.closeSync(fd);
    fs.renameSync(tmp, path);
    fsyncDir(this.dir);
  }

  /** The newest snapshot that reads back intact; broken files are renamed `<name>.broken`. */
  load(): Snapshot {
    return this.loadMatching(() => true);
  }

  /** The newest intact snapshot that one of the WAL's (committed) snapshot markers names. */
  loadNewestAvailable(walSnaps: readonly WalSnapshot[]): Snapshot {
    return this.loadMatching((s) => {
      const m = s.metadata;
      if (!m) return false;
      for (let i = walSnaps.length - 1; i >= 0; i--) {
        if (walSnaps[i]!.term === m.term && walSnaps[i]!.index === m.index) return true;
      }
      return false;
    });
  }

  /** .snap file names, newest first. Removes leftovers of interrupted saves and `db.tmp*` files. */
  snapNames(): string[] {
    const names: string[] = [];
    for (const name of fs.readdirSync(this.dir)) {
      if (name.startsWith('db.tmp') || name.endsWith(SNAP_SUFFIX + TMP_SUFFIX)) {
        fs.rmSync(join(this.dir, name), { force: true });
        continue;
      }
      if (name.endsWith(SNAP_SUFFIX)) names.push(name);
      else if (name !== DB_FILE && !name.endsWith('.snap.db') && !name.endsWith('.broken')) {
        this.log.warn({ path: join(this.dir, name) }, 'found unexpected non-snap file; skipping');
      }
    }
    return names.sort().reverse();
  }

  /** Removes the oldest .snap and .snap.db files beyond `max` of each (etcd's --max-snapshots; 0 keeps all). */
  purge(max: number): string[] {
    if (max <= 0) return [];
    const removed: string[] = [];
    for (const suffix of [SNAP_SUFFIX, '.snap.db']) {
      const names = fs
        .readdirSync(this.dir)
        .filter((n) => n.endsWith(suffix))
        .sort();
      while (names.length > max) {
        const name = names.shift()!;
        fs.unlinkSync(join(this.dir, name));
        removed.push(name);
        this.log.info({ path: join(this.dir, name) }, 'purged snapshot file');
      }
    }
    if (removed.length > 0) fsyncDir(this.dir);
    return removed;
  }

  /** Path of a backend received from the leader for snapshot `index` (`%016x.snap.db`). */
  dbFilePath(index: number): string {
    return dbSnapPath(this.dir, index);
  }

  /** Removes received backends older than `snap` (etcd's ReleaseSnapDBs). */
  releaseSnapDBs(snap: Snapshot): void {
    const index = snap.metadata?.index ?? 0;
    for (const name of fs.readdirSync(this.dir)) {
      if (!name.endsWith('.snap.db')) continue;
      const n = Number.parseInt(name.slice(0, -'.snap.db'.length), 16);
      if (Number.isFinite(n) && n < index) fs.rmSync(join(this.dir, name), { force: true });
    }
  }

  private loadMatching(match: (s: Snapshot) => boolean): Snapshot {
    let names: string[];
    try {
      names = this.snapNames();
    } catch (err) {
      throw new SnapError('NO_SNAPSHOT', `snap: no available snapshot: ${(err as Error).message}`);
    }
    for (const name of names) {
      const path = join(this.dir, name);
      let snap: Snapshot;
      try {
        snap = readSnapFile(path);
      } catch (err) {
        this.log.warn(
          { path, error: (err as Error).message },
          'failed to read a snap file; renaming to .broken',
        );
        try {
          fs.renameSync(path, `${path}.broken`);
        } catch {
          // keep going: the next older snapshot may do
        }
        continue;
      }
      if (match(snap)) return snap;
    }
    throw new SnapError('NO_SNAPSHOT', `snap: no available snapshot in ${this.dir}`);
  }
}
