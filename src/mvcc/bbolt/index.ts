// bbolt at the edges: read etcd's bbolt dbs and snapshots, write ones etcd accepts.
export * from './etcd-schema.js';
export { BboltError, DEFAULT_PAGE_SIZE, type Meta } from './format.js';
export { type BboltItem, BboltReader, type BucketPath, type KeyRange, type ReaderOptions } from './reader.js';
export * from './trailer.js';
export * from './writer.js';
