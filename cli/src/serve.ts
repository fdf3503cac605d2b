// The shell of `strata node run`, `config run` and `shard run`: one role of one
// machine against an existing cluster. It checks that NATS answers with JetStream
// (within a bound) and fsyncs, takes a pid lock in the data directory so the same
// role is not started twice there, lets the role prepare (node run registers the node
// and its disks), starts the role's processes under a supervisor (logs in
// <dir>/logs), says `ready`, and serves until SIGINT or SIGTERM, which stop every
// child by PID (SIGTERM, then SIGKILL after a grace period) before it exits 0.
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { healthReply, healthSubject } from '@strata/actor';
import { connectBus } from '@strata/bus';
import { requireFsync, waitForJetStream } from '@strata/natsd';
import { Supervisor, type ChildSpec } from './supervisor';
import { UsageError } from './units';

/** The NATS servers a run command uses: --nats, else NATS_URL; there is no default. */
export function natsUrlOf(flag: string | undefined, env: Record<string, string | undefined>): string {
  const url = flag ?? env.NATS_URL;
  if (url === undefined || url.trim() === '') throw new UsageError('no NATS servers: pass --nats nats://HOST:4222[,nats://HOST2:4222] or set NATS_URL');
  return url.trim();
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Writes this process's pid to `file` unless a live process holds it (then a usage
 * error, `refusal` of its pid); returns the release function.
 */
export function takePidLock(file: string, refusal: (pid: number) => string): () => void {
  if (existsSync(file)) {
    const pid = Number(readFileSync(file, 'utf8').trim());
    if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && isAlive(pid)) throw new UsageError(refusal(pid));
  }
  writeFileSync(file, `${process.pid}\n`);
  return () => rmSync(file, { force: true });
}

export interface RoleRun {
  /** For messages: `node n2`, `config replica config-1`, `metadata shard md-4`. */
  what: string;
  /** The pid lock's file name in the data directory (`node-n2.pid`). */
  lockFile: string;
  dir: string;
  natsUrl: string;
  /** How long NATS has to answer with JetStream before the command gives up. */
  connectTimeoutMs: number;
  /** Runs once NATS answers (registration); returns the processes to supervise. */
  prepare: () => Promise<ChildSpec[]>;
  /** Resolves once the processes serve (a gateway's port open); bounded by the role. */
  ready?: () => Promise<void>;
}

/** Serves `role` until a signal; rejects (having started nothing, or stopped what it started) when it cannot start. */
export async function serveRole(role: RoleRun, say: (line: string) => void): Promise<never> {
  try {
    await waitForJetStream(role.natsUrl, role.connectTimeoutMs);
  } catch (err) {
    throw new Error(`cannot reach NATS with JetStream at ${role.natsUrl} within ${role.connectTimeoutMs / 1000} s: ${(err as Error).message}`);
  }
  const warning = await requireFsync();
  if (warning !== null) say(warning);
  mkdirSync(join(role.dir, 'logs'), { recursive: true });
  const lock = join(role.dir, role.lockFile);
  const release = takePidLock(lock, (pid) => `${role.what} is already running here (pid ${pid}, ${lock}); stop it first or pass --dir`);
  const supervisor = new Supervisor(join(role.dir, 'logs'), say);
  let stopping: Promise<void> | undefined;
  const stop = (why: string): Promise<void> =>
    (stopping ??= (async () => {
      say(`stopping ${role.what} (${why})`);
      await supervisor.stop();
      release();
      say('stopped');
    })());
  let children: ChildSpec[];
  try {
    children = await role.prepare();
  } catch (err) {
    // Nothing started yet: nothing to stop.
    release();
    throw err;
  }
  process.on('SIGINT', () => void stop('SIGINT').then(() => process.exit(0)));
  process.on('SIGTERM', () => void stop('SIGTERM').then(() => process.exit(0)));
  for (const child of children) supervisor.add(child);
  say(`started ${children.map((c) => c.name).join(', ')} (logs in ${join(role.dir, 'logs')})`);
  try {
    await role.ready?.();
  } catch (err) {
    await stop('start-up failed');
    throw err;
  }
  say(`ready: ${role.what}`);
  for (const [name, pid] of Object.entries(supervisor.pids())) say(`${name}: pid ${pid ?? '-'}`);
  return new Promise<never>(() => undefined);
}

/** Resolves once `host`:`port` accepts a TCP connection; fails after `timeoutMs`. */
export async function waitForPort(host: string, port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await portOpen(host, port)) return;
    if (Date.now() >= deadline) throw new Error(`no gateway is listening on ${host}:${port} after ${timeoutMs} ms; see the gateway logs`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Whether something accepts connections on `host`:`port`. */
export function portOpen(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port }, () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/**
 * Resolves once the actor `actor` instance `instance` answers its health check
 * (`strata.health.<actor>.<instance>`, served once it has started); fails after `timeoutMs`.
 */
export async function waitForHealth(natsUrl: string, actor: string, instance: string, timeoutMs: number): Promise<void> {
  const bus = await connectBus({ name: 'strata-cli', servers: natsUrl });
  try {
    await bus.request(healthSubject(actor, instance), {}, healthReply, { timeoutMs });
  } catch (err) {
    throw new Error(`${actor} ${instance} did not answer its health check within ${timeoutMs} ms (${(err as Error).message}); see its log`);
  } finally {
    await bus.close();
  }
}
