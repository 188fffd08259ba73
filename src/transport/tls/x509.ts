// @peculiar/x509, loaded on first use. Loading it (and tsyringe's Reflect polyfill it needs) costs
// about 100 ms of start-up, and only auto TLS and CRL files need it.
import { createRequire } from 'node:module';
import type * as X509 from '@peculiar/x509';

let loaded: typeof X509 | undefined;

export function x509(): typeof X509 {
  if (loaded === undefined) {
    const require = createRequire(import.meta.url);
    require('reflect-metadata'); // @peculiar/x509's dependency injection (tsyringe) needs it
    loaded = require('@peculiar/x509') as typeof X509;
  }
  return loaded;
}
