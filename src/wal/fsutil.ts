// Small synchronous file helpers: directory fsync, preallocation, zeroing a file's tail.
import * as fs from 'node:fs';

/** etcd's PrivateFileMode / PrivateDirMode. */
export const PRIVATE_FILE_MODE = 0o600;
export const PRIVATE_DIR_MODE = 0o700;

/** fsyncs a directory so that the creation, rename or removal of its entries is durable. */
export function fsyncDir(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Extends the file to `size` bytes if it is shorter. Node has no fallocate(2); like etcd's fallback
 * (preallocExtendTrunc) this uses ftruncate, which leaves a hole that reads as zeros.
 */
export function preallocate(fd: number, size: number): void {
  if (fs.fstatSync(fd).size < size) fs.ftruncateSync(fd, size);
}

/** Zeroes everything from `offset` to the end of the file, keeping its length (etcd's ZeroToEnd). */
export function zeroToEnd(fd: number, offset: number): void {
  const size = fs.fstatSync(fd).size;
  if (offset >= size) return;
  fs.ftruncateSync(fd, offset);
  fs.ftruncateSync(fd, size);
}

/** Writes all of `buf` at `position` (pwrite, retried on short writes). */
export function writeFully(fd: number, buf: Buffer, position: number): void {
  let done = 0;
  while (done < buf.length) done += fs.writeSync(fd, buf, done, buf.length - done, position + done);
}
