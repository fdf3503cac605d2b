// Actor settings from command-line flags and environment variables, validated at
// start-up. A setting `deadTimeoutMs` is read from `--dead-timeout-ms` or, failing
// that, from STRATA_DEAD_TIMEOUT_MS; a bad value stops the process with a message
// that names the flag and what to fix.
import { isIP } from 'node:net';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { describeIssues } from '@strata/codec';

export function flagName(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

export function envName(key: string): string {
  return `STRATA_${flagName(key).replace(/-/g, '_').toUpperCase()}`;
}

export class SettingsError extends Error {
  override readonly name = 'SettingsError';
}

/**
 * Reads the settings described by `schema` (a z.object of z.coerce fields with
 * defaults) from `argv` and `env`. Unknown flags are errors.
 */
export function readSettings<S extends z.ZodObject>(schema: S, argv: readonly string[], env: NodeJS.ProcessEnv): z.output<S> {
  const options: Record<string, { type: 'string' }> = {};
  for (const key of Object.keys(schema.shape)) options[flagName(key)] = { type: 'string' };
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({ args: [...argv], options, allowPositionals: false, strict: true }).values as Record<string, string | undefined>;
  } catch (err) {
    throw new SettingsError(`${(err as Error).message}. Known flags: ${Object.keys(options).map((f) => `--${f}`).join(' ')}`);
  }
  const raw: Record<string, unknown> = {};
  for (const key of Object.keys(schema.shape)) {
    const value = values[flagName(key)] ?? env[envName(key)];
    if (value !== undefined && value !== '') raw[key] = value;
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const text = describeIssues(parsed.error).replace(/(^|; )([a-zA-Z]+):/g, (_m, sep: string, key: string) => `${sep}--${flagName(key)} (${envName(key)}):`);
    throw new SettingsError(`bad setting: ${text}`);
  }
  return parsed.data;
}

/**
 * Whether a listen address is reachable from this machine only: 127.0.0.0/8, ::1 or
 * `localhost`. The wildcard addresses (0.0.0.0, ::) and every other address are not.
 */
export function isLoopbackHost(host: string): boolean {
  if (host === 'localhost' || host === '::1') return true;
  return isIP(host) === 4 && host.split('.')[0] === '127';
}

/** A positive whole number of milliseconds, from a flag or variable. */
export const millis = (defaultMs: number): z.ZodDefault<z.ZodCoercedNumber<unknown>> => z.coerce.number().int().positive().default(defaultMs);

/**
 * The settings of this process, from its command line (or `argv`, for a program that
 * hosts several actors and hands each its own flags) and environment, optionally
 * refined by `resolve`. A bad setting stops the process: one line on stderr naming
 * the setting, exit code 2.
 */
export function commandLineSettings<S extends z.ZodObject | z.ZodPipe, T = z.output<S>>(
  program: string,
  schema: S,
  resolve?: (settings: z.output<S>) => T,
  argv: readonly string[] = process.argv.slice(2),
): T {
  try {
    const raw = readSettings(schema as never, argv, process.env) as z.output<S>;
    return resolve === undefined ? (raw as T) : resolve(raw);
  } catch (err) {
    if (!(err instanceof SettingsError)) throw err;
    process.stderr.write(`${program}: ${err.message}\n`);
    process.exit(2);
  }
}
