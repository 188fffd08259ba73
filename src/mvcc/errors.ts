// Errors of the MVCC store. The api layer maps them to etcd's wire errors (src/api/status.ts).

/** The requested revision is at or below the compaction point: its history is gone. */
export class CompactedError extends Error {
  constructor(readonly compactRevision: number) {
    super('mvcc: required revision has been compacted');
    this.name = 'CompactedError';
  }
}

/** The requested revision is above the store's current revision. */
export class FutureRevisionError extends Error {
  constructor() {
    super('mvcc: required revision is a future revision');
    this.name = 'FutureRevisionError';
  }
}
