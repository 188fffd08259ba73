// The versions etcd-ts reports: it speaks etcd 3.4.23's API, and clients check these strings.
export const SERVER_VERSION = '3.4.23';
export const CLUSTER_VERSION = '3.4.0';
/** The API capability level etcd logs as "enabled capabilities for version". */
export const CAPABILITY_VERSION = '3.4';
export const ETCD_TS_VERSION = '0.1.0';
