// etcd-ts as a library: embed a member in a Node program.
export { startEtcd, defaultConfig, type Etcd, type ServerConfig } from './etcd.js';
