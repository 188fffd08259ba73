// Errors of the WAL and the snapshotter. Messages start like etcd's ("wal: ...", "snap: ...") and name
// the file and byte offset where that helps an operator.

export type WalErrorCode =
  | 'EXIST'
  | 'FILE_NOT_FOUND'
  | 'CRC_MISMATCH'
  | 'CORRUPT'
  | 'MAX_ENTRY_SIZE'
  | 'UNEXPECTED_TYPE'
  | 'METADATA_CONFLICT'
  | 'SNAPSHOT_MISMATCH'
  | 'SNAPSHOT_NOT_FOUND'
  | 'SLICE_OUT_OF_RANGE'
  | 'CLOSED';

export class WalError extends Error {
  override name = 'WalError';
  constructor(
    readonly code: WalErrorCode,
    message: string,
    readonly file?: string,
    readonly offset?: number,
  ) {
    super(message);
  }
}

export type SnapErrorCode = 'NO_SNAPSHOT' | 'EMPTY_SNAPSHOT' | 'CRC_MISMATCH' | 'CORRUPT';

export class SnapError extends Error {
  override name = 'SnapError';
  constructor(
    readonly code: SnapErrorCode,
    message: string,
    readonly file?: string,
  ) {
    super(message);
  }
}
