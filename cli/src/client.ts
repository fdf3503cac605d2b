// Where the CLI finds its cluster, and what it says when it cannot use it.
//
// The cluster is, in order: NATS_URL when set; else, when a data directory is named
// (--dir or STRATA_DIR), the nats.url that `strata up` wrote there; else the nearest
// `.strata/nats.url` in the current directory or one of its parents; else the one in
// the checkout this CLI was built in. There is no default URL: a server that happens
// to listen on 127.0.0.1:4222 is not a Strata cluster, and a command sent there used
// to wait 10 s for an answer that could never come (or, for `strata events`, print
// nothing and succeed).
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { JetStreamApiCodes, JetStreamApiError, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { ErrorCode, StrataError } from '@strata/errors';
import { clientSecurityFromEnv, type ClientSecurity } from '@strata/natsd';
import { buckets } from '@strata/proto';
import { adminSecurity } from './local-auth';

export const DEFAULT_DIR = '.strata';
export const NATS_URL_FILE = 'nats.url';
/** The file where `strata up` keeps its pid while it runs (cli/src/up.ts, takeDirLock). */
export const UP_PID_FILE = 'up.pid';

/** A cluster found: its URL and where the URL came from, for messages. */
export interface ClusterLocation {
  url: string;
  /** `NATS_URL`, or the path of the nats.url file read. */
  source: string;
  /** The data directory of the nats.url file, when the URL came from one. */
  dir?: string;
}

export interface FindClusterOptions {
  /** NATS_URL as set in the environment (empty counts as unset). */
  natsUrl?: string;
  /** The data directory named by --dir or STRATA_DIR, if any. */
  dir?: string;
  /** Where the search for `.strata/nats.url` starts. */
  cwd: string;
  /** The checkout this CLI runs from (the directory holding the `strata` script), if known. */
  checkout?: string;
}

/** No cluster could be found: the message says where the CLI looked and what to do. */
export class ClusterNotFound extends Error {
  override readonly name = 'ClusterNotFound';
}

/** The checkout this file was built in: cli/dist/client.js is two levels below it. */
export function checkoutDir(): string {
  return resolve(__dirname, '..', '..');
}

function readUrl(file: string): string | undefined {
  if (!existsSync(file)) return undefined;
  const url = readFileSync(file, 'utf8').trim();
  return url === '' ? undefined : url;
}

/** `dir` and each of its parents, up to the filesystem root. */
function selfAndParents(dir: string): string[] {
  const all: string[] = [];
  for (let d = resolve(dir); ; d = dirname(d)) {
    all.push(d);
    if (dirname(d) === d) return all;
  }
}

/** Finds the cluster (see the top of this file), or throws ClusterNotFound saying where it looked. */
export function findCluster(o: FindClusterOptions): ClusterLocation {
  if (o.natsUrl !== undefined && o.natsUrl.trim() !== '') return { url: o.natsUrl.trim(), source: 'NATS_URL' };
  const hint = 'start one with "npm run up" (in the checkout), or set NATS_URL to its NATS servers';
  if (o.dir !== undefined) {
    const dir = resolve(o.cwd, o.dir);
    const file = join(dir, NATS_URL_FILE);
    const url = readUrl(file);
    if (url === undefined) throw new ClusterNotFound(`no cluster in ${dir}: ${file} does not exist; ${hint}`);
    return { url, source: file, dir };
  }
  for (const d of selfAndParents(o.cwd)) {
    const dir = join(d, DEFAULT_DIR);
    const url = readUrl(join(dir, NATS_URL_FILE));
    if (url !== undefined) return { url, source: join(dir, NATS_URL_FILE), dir };
  }
  if (o.checkout !== undefined) {
    const dir = join(o.checkout, DEFAULT_DIR);
    const url = readUrl(join(dir, NATS_URL_FILE));
    if (url !== undefined) return { url, source: join(dir, NATS_URL_FILE), dir };
  }
  const checkout = o.checkout === undefined ? '' : `, nor in the checkout ${o.checkout}`;
  throw new ClusterNotFound(`no cluster found: no ${join(DEFAULT_DIR, NATS_URL_FILE)} in ${resolve(o.cwd)} or any parent${checkout}, and NATS_URL is not set; ${hint}`);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists, under another user.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * For a URL read from a data directory: whether its `strata up` still runs. A
 * nats.url outlives the cluster that wrote it, so an unreachable URL from a directory
 * whose `up` is gone means "the cluster was stopped", not "the network is broken".
 */
export function upState(dir: string): 'running' | 'stopped' {
  const file = join(dir, UP_PID_FILE);
  if (!existsSync(file)) return 'stopped';
  const pid = Number(readFileSync(file, 'utf8').trim());
  return Number.isInteger(pid) && pid > 0 && isAlive(pid) ? 'running' : 'stopped';
}

/** The one line for a failed connection: it names the URL, where it came from, and what to try. */
export function unreachable(where: ClusterLocation, err: unknown): Error {
  const e = err as (Error & { code?: string; cause?: Error }) | undefined;
  const why = [e?.message ?? String(err), e?.cause?.message].filter((m) => m !== undefined && m !== '').join(': ');
  const from = where.source === 'NATS_URL' ? 'from NATS_URL' : `from ${where.source}`;
  let advice = 'is the cluster running?';
  if (where.dir !== undefined && upState(where.dir) === 'stopped') advice = `no "strata up" is running on ${where.dir}; start it with "npm run up" (or "strata --dir ${where.dir} up")`;
  else if (where.source === 'NATS_URL') advice = 'check NATS_URL';
  return new Error(`cannot reach the cluster at ${where.url} (${from}): ${why}; ${advice}`);
}

/** Whether a JetStream call failed because the stream does not exist (the API error code, or its text through a wrapper that kept only the message). */
export function isStreamNotFound(err: unknown): boolean {
  if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound) return true;
  const e = err as { cause?: unknown; message?: string } | undefined;
  if (e?.cause !== undefined && e.cause !== err && isStreamNotFound(e.cause)) return true;
  return /stream not found/i.test(e?.message ?? '');
}

/** The KV stream of the `cfg` bucket: every Strata cluster has it once a config replica has run. */
const CFG_STREAM = `KV_${buckets.cfg}`;

/**
 * Checks, in two round trips, that the NATS at `url` holds a Strata cluster (JetStream
 * on, the `cfg` bucket present), so a command sent to some other NATS server fails at
 * once instead of waiting for a config replica that does not exist.
 */
export async function checkStrataCluster(nc: NatsConnection, url: string, timeoutMs = 5_000): Promise<void> {
  let jsm;
  try {
    jsm = await jetstreamManager(nc, { timeout: timeoutMs });
  } catch (err) {
    throw new StrataError(ErrorCode.UNAVAILABLE, `the NATS server at ${url} answers, but not with JetStream (${(err as Error).message}): it is not a Strata cluster's; start one with "npm run up", or set NATS_URL to its NATS servers`);
  }
  try {
    await jsm.streams.info(CFG_STREAM);
  } catch (err) {
    if (isStreamNotFound(err)) {
      throw new StrataError(ErrorCode.UNAVAILABLE, `the NATS server at ${url} holds no Strata cluster (no "${buckets.cfg}" bucket: no config replica ever ran there); start one with "npm run up", or set NATS_URL to its NATS servers`);
    }
    throw new StrataError(ErrorCode.UNAVAILABLE, `cannot read the cluster at ${url}: ${(err as Error).message}`);
  }
}

/** The hint @strata/bus puts on UNAVAILABLE when a request reached no subscriber. */
const NO_RESPONDERS = 'no-responders';
/** The hint of a TIMEOUT that is a command's own wait running out (`--wait --timeout`), not a request's. */
export const WAIT_ENDED = 'wait-ended';
/** The hint of a TIMEOUT whose message names who did not answer (not the config service). */
export const NAMED_TIMEOUT = 'named-timeout';

/**
 * A failure of the config service to answer, with the URL: connected, but no config
 * replica answered (none is running, or none leads yet), or no reply in time. Any
 * other error (a refusal such as NOT_FOUND) is returned as it is.
 */
export function withUrl(err: unknown, url: string): unknown {
  if (!(err instanceof StrataError)) return err;
  if (err.code === ErrorCode.UNAVAILABLE && err.hint === NO_RESPONDERS) {
    return new StrataError(ErrorCode.UNAVAILABLE, `connected to the cluster at ${url}, but no config replica answers (${err.message}): are its config replicas running? see the logs in its data directory`, { cause: err });
  }
  if (err.code === ErrorCode.TIMEOUT && err.hint !== WAIT_ENDED && err.hint !== NAMED_TIMEOUT) {
    return new StrataError(ErrorCode.TIMEOUT, `${err.message} (cluster at ${url}): the config service did not answer in time`, { cause: err });
  }
  return err;
}

/**
 * How the CLI connects to the cluster at `where`: as the user the environment names
 * (STRATA_NATS_USER, an operator's cluster), else as the admin of the `strata up`
 * whose data directory the URL came from, else anonymously.
 */
export function cliSecurity(where: ClusterLocation, env: Record<string, string | undefined>): { security: ClientSecurity } {
  const fromEnv = clientSecurityFromEnv(env);
  if (fromEnv.user !== undefined || where.dir === undefined) return { security: fromEnv };
  return { security: adminSecurity(where.dir) ?? fromEnv };
}
