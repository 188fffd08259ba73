// Repairs a torn tail: the last segment ends in a partial or zero-filled frame after a crash.
// Like etcd's wal.Repair, the damaged segment is first copied to `<name>.broken`, then cut back to
// the end of its last valid record; the space after it is zeroed so that no stale bytes survive.
import * as fs from 'node:fs';
import { dirname } from 'node:path';
import { fsyncDir, zeroToEnd } from './fsutil.js';

export interface RepairResult {
  file: string;
  /** Offset where valid data ends (the file was cut here). */
  offset: number;
  /** Bytes after `offset` that were not zero before the repair. */
  discardedBytes: number;
  backup: string;
}

/** Cuts the segment at `offset` and zeroes the rest. `fd` is an open read-write descriptor of `file`. */
export function repairTornTail(file: string, fd: number, offset: number): RepairResult {
  const backup = `${file}.broken`;
  fs.copyFileSync(file, backup);
  const size = fs.fstatSync(fd).size;
  const discardedBytes = countNonZero(fd, offset, size);
  zeroToEnd(fd, offset);
  fs.fsyncSync(fd);
  fsyncDir(dirname(file));
  return { file, offset, discardedBytes, backup };
}

function countNonZero(fd: number, from: number, to: number): number {
  const chunk = Buffer.allocUnsafe(1 << 20);
  let n = 0;
  for (let pos = from; pos < to; ) {
    const got = fs.readSync(fd, chunk, 0, Math.min(chunk.length, to - pos), pos);
    if (got <= 0) break;
    for (let i = 0; i < got; i++) if (chunk[i] !== 0) n++;
    pos += got;
  }
  return n;
}
