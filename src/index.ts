// etcd-ts as a library: embed a member in a Node program.
export { defaultConfig, type Etcd, type ServerConfig, startEtcd } from './etcd.js';
