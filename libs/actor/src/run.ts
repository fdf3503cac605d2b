// The shell every actor runs in: tracing, logs and metrics set up from the
// environment, the bus connected, a health subject answered, and a clean stop on
// SIGTERM/SIGINT (stop the actor, drain the bus, flush traces, exit 0). An uncaught
// failure is logged and exits 1, for the supervisor to restart the actor: the
// design makes restarts safe, so a broken invariant crashes rather than limps on.
import { performance } from 'node:perf_hooks';
import { z } from 'zod';
import { connectBus, type Bus } from '@strata/bus';
import { createLogger, type Logger } from '@strata/log';
import { createMetrics, startMetricsServer, type Metrics, type MetricsServer } from '@strata/metrics';
import { startTracing } from '@strata/tracing';
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

/** Subject of an actor instance's health check: `strata.health.config.config-1`. */
export function healthSubject(actor: string, instance: string): string {
  return `strata.health.${actor}.${instance}`;
}

export const healthReply = z.strictObject({ actor: z.string(), instance: z.string(), uptimeMs: z.number(), pid: z.number() });

/** Runs an actor until SIGTERM/SIGINT; never returns normally. */
export async function runActor(def: ActorDefinition): Promise<void> {
  const log = createLogger({ service: def.actor, ...(def.node === undefined ? {} : { node: def.node }) });
  const fail = (err: unknown, what: string): never => {
    log.fatal({ err }, what);
    process.exit(1);
  };
  process.on('uncaughtException', (err) => fail(err, 'uncaught exception'));
  process.on('unhandledRejection', (err) => fail(err, 'unhandled rejection'));

  const tracing = await startTracing({ serviceName: def.actor, serviceInstanceId: def.instance });
  const metrics = createMetrics({ service: def.actor, ...(def.node === undefined ? {} : { node: def.node }) });
  let metricsServer: MetricsServer | undefined;
  const metricsPort = process.env.STRATA_METRICS_PORT;
  if (metricsPort !== undefined && metricsPort !== '') metricsServer = await startMetricsServer(metrics, { port: Number(metricsPort) });

  const bus = await connectBus({ name: `strata-${def.actor}-${def.instance}`, log });
  const startedAt = performance.now();
  const health = await bus.serve(healthSubject(def.actor, def.instance), z.unknown(), () => ({
    actor: def.actor,
    instance: def.instance,
    uptimeMs: Math.round(performance.now() - startedAt),
    pid: process.pid,
  }));

  let stopActor: () => Promise<void>;
  try {
    stopActor = await def.start({ bus, log, metrics });
  } catch (err) {
    if (err instanceof SettingsError) {
      log.fatal(err.message);
      process.exit(2);
    }
    fail(err, 'failed to start');
    return;
  }
  log.info({ instance: def.instance, tracing: tracing.exporters, metricsPort: metricsServer?.port }, `${def.actor} started`);

  let stopping = false;
  const stop = async (signal: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, `${def.actor} stopping`);
    // A stop that hangs must not keep the process alive forever.
    const forced = setTimeout(() => fail(new Error('stop took longer than 10 s'), 'forced exit'), 10_000);
    try {
      await stopActor();
      await health.stop();
      await bus.close();
      await metricsServer?.close();
      await tracing.shutdown().catch((err: unknown) => log.warn({ err }, 'trace flush failed'));
    } finally {
      clearTimeout(forced);
    }
    log.info(`${def.actor} stopped`);
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}
