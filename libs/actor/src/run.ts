// The shell actors run in: tracing, logs and metrics set up from the environment, the
// bus connected, a health subject answered per actor, and a clean stop on
// SIGTERM/SIGINT (stop the actors in reverse start order, drain the bus, flush traces,
// exit 0). One process may host one actor (its own program) or several (a node's
// actors colocated): they then share the bus connection, so a request from one to
// another is dispatched in-process. An uncaught failure is logged and exits 1, for the
// supervisor to restart the process: the design makes restarts safe, so a broken
// invariant crashes rather than limps on. A bad setting found at start exits 2.
import { performance } from 'node:perf_hooks';
import { z } from 'zod';
import { connectBus, type Bus, type Service } from '@strata/bus';
import { createLogger, type Logger } from '@strata/log';
import { subjects } from '@strata/proto';
import { createMetrics, startMetricsServer, type Metrics, type MetricsServer } from '@strata/metrics';
import { startTracing } from '@strata/tracing';
import { startCpuProfile } from './profile';
import { SettingsError } from './settings';

export interface ActorContext {
  bus: Bus;
  log: Logger;
  metrics: Metrics;
}

export interface ActorDefinition {
  /** The actor's name: `config`, `vdisk-controller`. */
  actor: string;
  /** This instance's name, unique in the cluster: `config-1`, `n2`. */
  instance: string;
  node?: string;
  /** Starts the actor; returns the function that stops it. */
  start(ctx: ActorContext): Promise<() => Promise<void>>;
}

/** The process that hosts the actors: its name in traces, metrics and on the bus. */
export interface HostOptions {
  /** `vdisk-controller` for an actor's own program, `node-host` for a node's actors together. */
  name: string;
  /** The process's instance (`n2`); default: the node, else the first actor's instance. */
  instance?: string;
  node?: string;
}

/** Subject of an actor instance's health check: `strata.health.config.config-1`. */
export function healthSubject(actor: string, instance: string): string {
  return subjects.health(actor, instance);
}

export const healthReply = z.strictObject({ actor: z.string(), instance: z.string(), uptimeMs: z.number(), pid: z.number() });

/** A stop that hangs must not keep the process alive forever; the supervisor's SIGKILL comes later. */
const STOP_TIMEOUT_MS = 10_000;

/** Runs one actor in this process until SIGTERM/SIGINT; never returns normally. */
export function runActor(def: ActorDefinition): Promise<void> {
  return runActors([def], { name: def.actor, instance: def.instance, ...(def.node === undefined ? {} : { node: def.node }) });
}

interface Running {
  def: ActorDefinition;
  log: Logger;
  health: Service;
  stop: () => Promise<void>;
}

/**
 * The scrape endpoint on STRATA_METRICS_PORT, when set. A port that cannot be bound
 * (another process holds it) is logged as an error and the actors run without
 * metrics: a storage process must not die, and be restarted in a loop, for its metrics.
 */
async function serveMetrics(metrics: Metrics, port: string | undefined, log: Logger): Promise<MetricsServer | undefined> {
  if (port === undefined || port === '') return undefined;
  try {
    return await startMetricsServer(metrics, { port: Number(port) });
  } catch (err) {
    log.error({ err, metricsPort: port }, 'metrics are not served (STRATA_METRICS_PORT cannot be bound); the actors run without them');
    return undefined;
  }
}

/**
 * Runs `defs` in this process, started one after another in the order given, until
 * SIGTERM/SIGINT stops them in reverse order; never returns normally.
 */
export async function runActors(defs: readonly ActorDefinition[], host: HostOptions): Promise<void> {
  const node = host.node;
  const nodeLabel = node === undefined ? {} : { node };
  const log = createLogger({ service: host.name, ...nodeLabel });
  const fail = (err: unknown, what: string): never => {
    log.fatal({ err }, what);
    process.exit(1);
  };
  process.on('uncaughtException', (err) => fail(err, 'uncaught exception'));
  process.on('unhandledRejection', (err) => fail(err, 'unhandled rejection'));
  if (defs.length === 0) fail(new Error('no actors to run'), 'failed to start');
  const names = defs.map((d) => `${d.actor}/${d.instance}`);
  if (new Set(names).size !== names.length) fail(new Error(`an actor instance appears twice: ${names.join(', ')}`), 'failed to start');
  const instance = host.instance ?? node ?? defs[0]!.instance;

  const profile = await startCpuProfile(process.env.STRATA_CPU_PROFILE_DIR, `${host.name}-${instance}`);
  // Tracing, metrics and the bus are one per process, whatever it hosts.
  const tracing = await startTracing({
    serviceName: host.name,
    serviceInstanceId: instance,
    ...(defs.length > 1 ? { attributes: { 'strata.actors': defs.map((d) => d.actor).join(',') } } : {}),
  });
  const metrics = createMetrics({ service: host.name, ...nodeLabel });
  const metricsServer = await serveMetrics(metrics, process.env.STRATA_METRICS_PORT, log);
  const bus = await connectBus({ name: `strata-${host.name}-${instance}`, log });

  const running: Running[] = [];
  const startOne = async (def: ActorDefinition): Promise<void> => {
    // Each actor's lines carry its own service name; a lone actor shares the process's logger.
    const actorLog = def.actor === host.name && def.node === node ? log : createLogger({ service: def.actor, ...(def.node === undefined ? {} : { node: def.node }) });
    const startedAt = performance.now();
    const health = await bus.serve(healthSubject(def.actor, def.instance), z.unknown(), () => ({
      actor: def.actor,
      instance: def.instance,
      uptimeMs: Math.round(performance.now() - startedAt),
      pid: process.pid,
    }));
    let stopActor: () => Promise<void>;
    try {
      stopActor = await def.start({ bus, log: actorLog, metrics });
    } catch (err) {
      if (err instanceof SettingsError) {
        actorLog.fatal(err.message);
        process.exit(2);
      }
      return fail(err, `${def.actor} failed to start`);
    }
    running.push({ def, log: actorLog, health, stop: stopActor });
    actorLog.info({ instance: def.instance, tracing: tracing.exporters, metricsPort: metricsServer?.port }, `${def.actor} started`);
  };

  let stopping = false;
  /** The start in progress: a stop waits for it, so that actor is stopped too. */
  let starting: Promise<void> = Promise.resolve();
  // Signals are handled from here on: one that arrives while actors are starting stops
  // those already started, and no more start.
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
  for (const def of defs) {
    if (stopping) return;
    starting = startOne(def);
    await starting;
  }
  if (defs.length > 1) log.info({ instance, actors: defs.map((d) => d.actor), tracing: tracing.exporters, metricsPort: metricsServer?.port }, `${host.name} started`);

  async function stop(signal: string): Promise<void> {
    if (stopping) return;
    stopping = true;
    if (defs.length > 1) log.info({ signal }, `${host.name} stopping`);
    const forced = setTimeout(() => fail(new Error(`stop took longer than ${STOP_TIMEOUT_MS / 1000} s`), 'forced exit'), STOP_TIMEOUT_MS);
    let failed: unknown;
    try {
      // The profile is written first: a stop that overruns its time is killed.
      if (profile !== undefined) log.info({ path: await profile.stop() }, 'CPU profile written');
      await starting;
      // Reverse start order: the gateway stops taking I/O before the actors behind it go.
      for (const actor of [...running].reverse()) {
        actor.log.info({ signal }, `${actor.def.actor} stopping`);
        try {
          await actor.stop();
          await actor.health.stop();
          actor.log.info(`${actor.def.actor} stopped`);
        } catch (err) {
          // The others still get their clean stop; the process then exits 1.
          actor.log.error({ err }, `${actor.def.actor} failed to stop`);
          failed ??= err;
        }
      }
      await bus.close();
      await metricsServer?.close();
      await tracing.shutdown().catch((err: unknown) => log.warn({ err }, 'trace flush failed'));
    } finally {
      clearTimeout(forced);
    }
    if (failed !== undefined) fail(failed, 'stop failed');
    if (defs.length > 1) log.info(`${host.name} stopped`);
    process.exit(0);
  }
}
