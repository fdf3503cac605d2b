// Which nats-server Strata runs, and where it comes from.
//
// Strata acknowledges a write once JetStream has stored it, so the servers must fsync
// every write before they acknowledge it (`sync_interval: always`, nats-server 2.10
// and later; Jepsen's analysis of 2.12.1 names it as the fix for acknowledged
// messages lost in a power cut). 2.12 is the oldest line we test.
//
// infra/scripts/ensure-deps.sh reads NATS_SERVER_PINNED from this file and installs
// that release with `go install` into natsServerCacheDir() when no server of at least
// NATS_SERVER_MIN_VERSION is found.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

/** The release ensure-deps installs: the newest the Go module proxy served when it was pinned. */
export const NATS_SERVER_PINNED = 'v2.15.3';

/** The oldest release Strata starts: it must know `sync_interval`. */
export const NATS_SERVER_MIN_VERSION = '2.12.0';

/** Where ensure-deps puts the pinned release: `$XDG_CACHE_HOME/strata/nats-server/<version>/`. */
export function natsServerCacheDir(version = NATS_SERVER_PINNED): string {
  const cache = process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache');
  return join(cache, 'strata', 'nats-server', version);
}

/** `[major, minor, patch]` of `v2.15.3` or `2.15.3`, or undefined. */
export function parseVersion(text: string): [number, number, number] | undefined {
  const m = /v?(\d+)\.(\d+)\.(\d+)/.exec(text);
  return m === null ? undefined : [Number(m[1]), Number(m[2]), Number(m[3])];
}

/** Whether version `a` is at least `b` (both as parseVersion reads them). */
export function versionAtLeast(a: string, b: string): boolean {
  const x = parseVersion(a);
  const y = parseVersion(b);
  if (x === undefined || y === undefined) return false;
  for (let i = 0; i < 3; i++) if (x[i] !== y[i]) return x[i]! > y[i]!;
  return true;
}

/**
 * The nats-server binary: NATS_SERVER_BIN when set, else the pinned release in the
 * cache when ensure-deps installed it there, else `nats-server` from PATH.
 */
export function natsServerBinary(): string {
  const fromEnv = process.env.NATS_SERVER_BIN;
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
  const cached = join(natsServerCacheDir(), 'nats-server');
  if (existsSync(cached)) return cached;
  return 'nats-server';
}

/** The version `binary --version` prints (`v2.15.3`), or undefined when it cannot be run. */
export function natsServerVersion(binary = natsServerBinary()): string | undefined {
  try {
    const out = execFileSync(binary, ['--version'], { encoding: 'utf8', timeout: 5_000, stdio: ['ignore', 'pipe', 'pipe'] });
    const v = parseVersion(out);
    return v === undefined ? undefined : `v${v.join('.')}`;
  } catch {
    return undefined;
  }
}
