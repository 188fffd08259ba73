import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { flagsToConfig } from './etcd_config.js';
import { ETCD_FLAGS } from './etcd_flags.js';
import { FlagError, loadConfigFile, parseFlags } from './flags.js';

test('Go-style flag forms: -name x, --name x, --name=x, bare booleans, --flag=false', () => {
  const f = parseFlags(
    ETCD_FLAGS,
    ['-name', 'a', '--data-dir=/tmp/x', '--strict-reconfig-check=false', '--debug', '--max-txn-ops', '7'],
    {},
  );
  assert.equal(f.values.get('name'), 'a');
  assert.equal(f.values.get('data-dir'), '/tmp/x');
  assert.equal(f.values.get('strict-reconfig-check'), 'false');
  assert.equal(f.values.get('debug'), 'true');
  assert.equal(f.values.get('max-txn-ops'), '7');
});

test('ETCD_* environment variables fill unset flags; setting both is refused as etcd does', () => {
  const f = parseFlags(ETCD_FLAGS, [], { ETCD_NAME: 'envname', ETCD_MAX_REQUEST_BYTES: '10' });
  assert.equal(f.values.get('name'), 'envname');
  assert.equal(f.values.get('max-request-bytes'), '10');
  assert.throws(() => parseFlags(ETCD_FLAGS, ['--name', 'x'], { ETCD_NAME: 'y' }), /shadowed/);
});

test('unknown flags, missing values and bad values are refused with a message', () => {
  assert.throws(() => parseFlags(ETCD_FLAGS, ['--nope'], {}), /flag provided but not defined: -nope/);
  assert.throws(() => parseFlags(ETCD_FLAGS, ['--name'], {}), /flag needs an argument: -name/);
  assert.throws(() => parseFlags(ETCD_FLAGS, ['--max-txn-ops', 'many'], {}), FlagError);
  assert.throws(() => parseFlags(ETCD_FLAGS, ['--debug=maybe'], {}), /invalid boolean/);
});

test('config: data dir defaults to ${name}.etcd and the initial cluster must name this member', () => {
  const cfg = flagsToConfig(parseFlags(ETCD_FLAGS, ['--name', 'infra0'], {}));
  assert.equal(cfg.dataDir, 'infra0.etcd');
  assert.deepEqual([...cfg.initialCluster.keys()], ['infra0']);
  assert.throws(
    () =>
      flagsToConfig(
        parseFlags(ETCD_FLAGS, ['--name', 'infra9', '--initial-cluster', 'infra0=http://127.0.0.1:2380'], {}),
      ),
    /couldn't find local name "infra9"/,
  );
  assert.throws(
    () => flagsToConfig(parseFlags(ETCD_FLAGS, ['--listen-client-urls', 'nonsense'], {})),
    /not a URL/,
  );
  assert.throws(
    () => flagsToConfig(parseFlags(ETCD_FLAGS, ['--initial-cluster-state', 'old'], {})),
    /initial-cluster-state/,
  );
});

test('config: backend batching takes etcd defaults, Go durations and refuses bad values', () => {
  const cfg = (...args: string[]) => flagsToConfig(parseFlags(ETCD_FLAGS, args, {}));
  assert.equal(cfg().backendBatchIntervalMs, 100);
  assert.equal(cfg().backendBatchLimit, 10_000);
  assert.equal(cfg('--backend-batch-interval', '250ms').backendBatchIntervalMs, 250);
  assert.equal(cfg('--backend-batch-interval', '0').backendBatchIntervalMs, 100, '0 means the default');
  assert.equal(cfg('--backend-batch-limit', '50').backendBatchLimit, 50);
  assert.throws(() => cfg('--backend-batch-interval', 'soon'), /--backend-batch-interval/);
  assert.throws(() => cfg('--backend-batch-interval', '-1s'), /must not be negative/);
  assert.throws(() => cfg('--backend-batch-limit', '-3'), /--backend-batch-limit/);
});

test('a YAML config file sets flags by name', () => {
  const path = join(tmpdir(), `etcd-ts-config-${process.pid}.yml`);
  writeFileSync(
    path,
    "name: 'from-file'\ndata-dir: /tmp/ff\nmax-txn-ops: 9\nlisten-client-urls: http://127.0.0.1:1234\n",
  );
  const cfg = flagsToConfig(loadConfigFile(ETCD_FLAGS, path));
  assert.equal(cfg.name, 'from-file');
  assert.equal(cfg.dataDir, '/tmp/ff');
  assert.equal(cfg.maxTxnOps, 9);
  assert.equal(cfg.listenClientUrls[0]!.port, '1234');
});
