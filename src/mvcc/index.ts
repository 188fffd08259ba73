// The MVCC store's public surface.
export { type Bucket, KEY_BUCKET, META_BUCKET } from './backend.js';
export { CompactedError, FutureRevisionError } from './errors.js';
export { decodeKeyValue, encodeKeyValue } from './kv_codec.js';
export { bytesToRev, isTombstoneKey, revToBytes } from './revision.js';
export {
  type ChangeListener,
  MvccStore,
  type MvccStoreOptions,
  type RangeOptions,
  type RangeResult,
  type TxnWrite,
} from './store.js';
