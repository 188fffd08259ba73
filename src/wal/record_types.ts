// WAL record types (walpb.Record.type) and frame constants, as etcd 3.4 defines them.

export const METADATA_TYPE = 1;
export const ENTRY_TYPE = 2;
export const STATE_TYPE = 3;
export const CRC_TYPE = 4;
export const SNAPSHOT_TYPE = 5;

/** Every frame starts with an 8-byte little-endian length word; frames are 8-byte aligned. */
export const FRAME_SIZE_BYTES = 8;
/** Torn writes are detected per disk sector of this size. */
export const MIN_SECTOR_SIZE = 512;
/** etcd refuses to decode a record this large or larger (wal.maxWALEntrySizeLimit). */
export const MAX_RECORD_BYTES = 10 * 1024 * 1024;
/** etcd's wal.SegmentSizeBytes: 64 * 1000 * 1000 (decimal megabytes). */
export const DEFAULT_SEGMENT_SIZE_BYTES = 64 * 1000 * 1000;

export function recordTypeName(t: number): string {
  return ['unknown', 'metadata', 'entry', 'state', 'crc', 'snapshot'][t] ?? `type ${t}`;
}
