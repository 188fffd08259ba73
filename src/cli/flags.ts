// Go-style command-line flags, as etcd's Go `flag` package reads them: `-name x`, `--name x`,
// `--name=x`, bare booleans (`--auto-tls`, `--auto-tls=false`), `ETCD_NAME`-style environment
// variables, and a YAML config file whose keys are the flag names.
import { readFileSync } from 'node:fs';
import YAML from 'yaml';

export type FlagKind = 'string' | 'bool' | 'int';

export interface FlagSpec {
  name: string;
  kind: FlagKind;
  /** Default as etcd prints it in --help. */
  default: string;
  help: string;
  /** Set when etcd-ts accepts the flag but does not act on it yet: says what happens instead. */
  pending?: string;
}

export class FlagError extends Error {}

export type FlagValues = Map<string, string>;

export interface ParsedFlags {
  /** Every flag's value: given on the command line, else from the environment, else the default. */
  values: FlagValues;
  /** Flags the user set (command line, environment or config file). */
  explicit: Set<string>;
  positional: string[];
}

const TRUE = new Set(['1', 't', 'T', 'true', 'TRUE', 'True']);
const FALSE = new Set(['0', 'f', 'F', 'false', 'FALSE', 'False']);

export function parseBool(name: string, v: string): boolean {
  if (TRUE.has(v)) return true;
  if (FALSE.has(v)) return false;
  throw new FlagError(`invalid boolean value "${v}" for -${name}: parse error`);
}

export function envName(flag: string): string {
  return `ETCD_${flag.toUpperCase().replace(/-/g, '_')}`;
}

export function parseFlags(
  specs: readonly FlagSpec[],
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
): ParsedFlags {
  const byName = new Map(specs.map((s) => [s.name, s]));
  const values: FlagValues = new Map(specs.map((s) => [s.name, s.default]));
  const explicit = new Set<string>();
  const fromCli = new Set<string>();
  const positional: string[] = [];

  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      positional.push(...argv.slice(i + 1));
      break;
    }
    if (!arg.startsWith('-') || arg === '-') {
      positional.push(arg);
      continue;
    }
    const body = arg.replace(/^--?/, '');
    const eq = body.indexOf('=');
    const name = eq === -1 ? body : body.slice(0, eq);
    const spec = byName.get(name);
    if (spec === undefined) throw new FlagError(`flag provided but not defined: -${name}`);
    let value: string;
    if (eq !== -1) value = body.slice(eq + 1);
    else if (spec.kind === 'bool') value = 'true';
    else {
      if (i + 1 >= argv.length) throw new FlagError(`flag needs an argument: -${name}`);
      value = argv[++i]!;
    }
    checkValue(spec, value);
    values.set(name, value);
    explicit.add(name);
    fromCli.add(name);
  }

  // Environment variables fill what the command line left unset; etcd refuses a flag set both ways.
  for (const spec of specs) {
    const v = env[envName(spec.name)];
    if (v === undefined) continue;
    if (fromCli.has(spec.name)) {
      throw new FlagError(
        `conflicting environment variable "${envName(spec.name)}" is shadowed by corresponding command-line flag (either unset environment variable or disable flag)`,
      );
    }
    checkValue(spec, v);
    values.set(spec.name, v);
    explicit.add(spec.name);
  }
  return { values, explicit, positional };
}

function checkValue(spec: FlagSpec, value: string): void {
  if (spec.kind === 'bool') parseBool(spec.name, value);
  if (spec.kind === 'int' && !/^-?\d+$/.test(value)) {
    throw new FlagError(`invalid value "${value}" for flag -${spec.name}: parse error`);
  }
}

/**
 * A YAML config file replaces the command line (etcd ignores other flags when --config-file is set).
 * Keys are flag names; lists may be YAML sequences or comma-separated strings.
 */
export function loadConfigFile(specs: readonly FlagSpec[], path: string): ParsedFlags {
  let doc: unknown;
  try {
    doc = YAML.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new FlagError(`cannot read config file ${path}: ${(err as Error).message}`);
  }
  const byName = new Map(specs.map((s) => [s.name, s]));
  const values: FlagValues = new Map(specs.map((s) => [s.name, s.default]));
  const explicit = new Set<string>();
  if (doc === null || doc === undefined) return { values, explicit, positional: [] };
  if (typeof doc !== 'object' || Array.isArray(doc)) {
    throw new FlagError(`config file ${path} must be a YAML mapping of flag names to values`);
  }
  for (const [key, raw] of Object.entries(doc as Record<string, unknown>)) {
    const spec = byName.get(key);
    if (spec === undefined) continue; // etcd's config has sections (client-transport-security, ...) handled by their owners
    if (raw === null || raw === undefined) continue;
    const value = Array.isArray(raw) ? raw.join(',') : String(raw);
    checkValue(spec, value);
    values.set(key, value);
    explicit.add(key);
  }
  return { values, explicit, positional: [] };
}

export function formatHelp(title: string, specs: readonly FlagSpec[]): string {
  const lines = [title, ''];
  for (const s of specs) {
    const def = s.kind === 'string' ? `'${s.default}'` : s.default;
    lines.push(`  --${s.name} ${def}`);
    lines.push(`      ${s.help}`);
    if (s.pending) lines.push(`      (etcd-ts: ${s.pending})`);
  }
  return lines.join('\n');
}
