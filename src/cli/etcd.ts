// `etcd`: parse etcd's flags, start a member, stop cleanly on SIGINT/SIGTERM.
import { startEtcd } from '../etcd.js';
import { ETCD_TS_VERSION, SERVER_VERSION } from '../server/version.js';
import { flagsToConfig } from './etcd_config.js';
import { ETCD_FLAGS } from './etcd_flags.js';
import { FlagError, formatHelp, loadConfigFile, type ParsedFlags, parseFlags } from './flags.js';

const USAGE = `Usage:

  etcd [flags]
    Start an etcd server (etcd-ts, speaking etcd ${SERVER_VERSION}'s API).

  etcd --version
    Show the version of etcd.

  etcd -h | --help
    Show the help information about etcd.

  etcd --config-file
    Path to the server configuration file. Note that if a configuration file is provided, other command line flags and environment variables will be ignored.

Flags (each also read from ETCD_<NAME>, e.g. ETCD_DATA_DIR for --data-dir):`;

export async function main(argv: string[]): Promise<number> {
  let flags: ParsedFlags;
  try {
    if (argv.includes('-h') || argv.includes('--h')) {
      process.stdout.write(`${formatHelp(USAGE, ETCD_FLAGS)}\n`);
      return 0;
    }
    flags = parseFlags(ETCD_FLAGS, argv, process.env);
    if (flags.values.get('help') === 'true') {
      process.stdout.write(`${formatHelp(USAGE, ETCD_FLAGS)}\n`);
      return 0;
    }
    if (flags.values.get('version') === 'true') {
      process.stdout.write(
        `etcd Version: ${SERVER_VERSION}\nGit SHA: etcd-ts ${ETCD_TS_VERSION}\nGo Version: none (Node.js ${process.version})\nGo OS/Arch: ${process.platform}/${process.arch}\n`,
      );
      return 0;
    }
    if (flags.positional.length > 0) {
      throw new FlagError(`'${flags.positional[0]}' is not a valid flag`);
    }
    const configFile = flags.values.get('config-file');
    if (configFile) flags = loadConfigFile(ETCD_FLAGS, configFile);
  } catch (err) {
    if (err instanceof FlagError) {
      process.stderr.write(`etcd: ${err.message}\nRun 'etcd --help' for the list of flags.\n`);
      return 2;
    }
    throw err;
  }

  let config: ReturnType<typeof flagsToConfig>;
  try {
    config = flagsToConfig(flags);
  } catch (err) {
    if (err instanceof FlagError) {
      process.stderr.write(`etcd: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
  for (const spec of ETCD_FLAGS) {
    if (spec.pending && flags.explicit.has(spec.name)) {
      process.stderr.write(`etcd: warning: --${spec.name}: ${spec.pending}\n`);
    }
  }

  let etcd: Awaited<ReturnType<typeof startEtcd>>;
  try {
    etcd = await startEtcd(config);
  } catch (err) {
    process.stderr.write(`etcd: ${(err as Error).message}\n`);
    return 1;
  }
  return new Promise<number>((resolve) => {
    const stop = (signal: string) => {
      etcd.server.log.info({ signal }, 'received signal; shutting down');
      etcd.close().then(
        () => resolve(0),
        () => resolve(1),
      );
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
    // the member stopped by itself (removed from the cluster, a fatal disk error): exit
    etcd.stopped.then(() => etcd.close().then(() => resolve(0)));
  });
}
