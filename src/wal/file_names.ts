// File and directory names of etcd's data dir, and the segment/snapshot naming scheme.
import { join } from 'node:path';

/** `<data-dir>/member`, `<data-dir>/member/wal`, `<data-dir>/member/snap`, `<data-dir>/member/snap/db`. */
export const MEMBER_DIR = 'member';
export const WAL_DIR = 'wal';
export const SNAP_DIR = 'snap';
export const DB_FILE = 'db';
export const WAL_SUFFIX = '.wal';
export const SNAP_SUFFIX = '.snap';

export const memberDir = (dataDir: string): string => join(dataDir, MEMBER_DIR);
export const walDir = (dataDir: string): string => join(dataDir, MEMBER_DIR, WAL_DIR);
export const snapDir = (dataDir: string): string => join(dataDir, MEMBER_DIR, SNAP_DIR);
export const backendPath = (dataDir: string): string => join(dataDir, MEMBER_DIR, SNAP_DIR, DB_FILE);
/** A backend received from the leader, before it replaces `db`: `<snap-dir>/%016x.snap.db`. */
export const dbSnapPath = (snapDirectory: string, index: number): string =>
  join(snapDirectory, `${hex16(index)}.snap.db`);

/** Lower-case hex, zero padded to 16 digits, as Go's `%016x` of a uint64. */
export function hex16(n: number | bigint): string {
  return BigInt(n).toString(16).padStart(16, '0');
}

const WAL_NAME = /^([0-9a-f]{16})-([0-9a-f]{16})\.wal$/;
const SNAP_NAME = /^([0-9a-f]{16})-([0-9a-f]{16})\.snap$/;

/** `%016x-%016x.wal` of (segment sequence, raft index of the first entry it may hold). */
export function walName(seq: number, index: number): string {
  return `${hex16(seq)}-${hex16(index)}${WAL_SUFFIX}`;
}

export function parseWalName(name: string): { seq: number; index: number } | null {
  const m = WAL_NAME.exec(name);
  if (!m) return null;
  return { seq: Number.parseInt(m[1]!, 16), index: Number.parseInt(m[2]!, 16) };
}

/** `%016x-%016x.snap` of (term, index). */
export function snapName(term: number, index: number): string {
  return `${hex16(term)}-${hex16(index)}${SNAP_SUFFIX}`;
}

export function parseSnapName(name: string): { term: number; index: number } | null {
  const m = SNAP_NAME.exec(name);
  if (!m) return null;
  return { term: Number.parseInt(m[1]!, 16), index: Number.parseInt(m[2]!, 16) };
}

/** The valid segment names of a directory listing, sorted (= by sequence). */
export function walNames(names: readonly string[]): string[] {
  return names.filter((n) => WAL_NAME.test(n)).sort();
}

/** The index of the last segment whose first index is <= `index` (where reading from `index` starts), or -1. */
export function searchIndex(names: readonly string[], index: number): number {
  for (let i = names.length - 1; i >= 0; i--) {
    if (index >= parseWalName(names[i]!)!.index) return i;
  }
  return -1;
}

/** True when the segments' sequence numbers are consecutive. */
export function isValidSeq(names: readonly string[]): boolean {
  let last = -1;
  for (const name of names) {
    const { seq } = parseWalName(name)!;
    if (last !== -1 && seq !== last + 1) return false;
    last = seq;
  }
  return true;
}
