// Public API of the write-ahead log and raft snapshot files (etcd 3.4's on-disk formats).
export { SnapError, type SnapErrorCode, WalError, type WalErrorCode } from './errors.js';
export {
  backendPath,
  DB_FILE,
  dbSnapPath,
  MEMBER_DIR,
  memberDir,
  parseSnapName,
  parseWalName,
  SNAP_DIR,
  snapDir,
  snapName,
  WAL_DIR,
  walDir,
  walName,
} from './file_names.js';
export { encodeEntry, encodeHardState, encodeMetadata, encodeRaftSnapshot } from './pb.js';
export {
  CRC_TYPE,
  DEFAULT_SEGMENT_SIZE_BYTES,
  ENTRY_TYPE,
  METADATA_TYPE,
  SNAPSHOT_TYPE,
  STATE_TYPE,
} from './record_types.js';
export { readSnapFile, Snapshotter } from './snapshotter.js';
export {
  type ReadAllResult,
  validSnapshotEntries,
  verifyWal,
  Wal,
  type WalLogger,
  type WalOptions,
  type WalSnapshot,
  walExists,
} from './wal.js';
