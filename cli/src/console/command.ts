// `strata console [--port P] [--host H] [--tracing URL] [--targets FILE]`: the web
// console of the cluster the CLI finds, until Ctrl-C or SIGTERM.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Bus } from '@strata/bus';
import type { ConfigClient } from '@strata/config-client';
import { METRICS_TARGETS_FILE } from '../metrics-ports';
import { tracingUrlOf } from '../tracing';
import { UsageError, parseCount } from '../units';
import { ConsoleServer } from './server';
import { StateGatherer, type Target } from './state';

export const CONSOLE_PORT_DEFAULT = 8470;

export interface ConsoleCommandContext {
  withCluster: <T>(fn: (client: ConfigClient, nc: NatsConnection, bus: Bus) => Promise<T>) => Promise<T>;
  /** The data directory (where `strata up` writes the metrics targets). */
  dir: () => string;
  print: (text: string) => void;
}

/** The processes' metrics addresses from a file_sd targets file; none when it is missing or unreadable. */
export function readTargets(file: string): Target[] {
  if (!existsSync(file)) return [];
  try {
    const groups = JSON.parse(readFileSync(file, 'utf8')) as Array<{ targets?: string[]; labels?: { process?: string } }>;
    return groups.flatMap((g) => (g.targets ?? []).map((address) => ({ process: g.labels?.process ?? address, address })));
  } catch {
    return [];
  }
}

export function registerConsoleCommand(program: Command, ctx: ConsoleCommandContext): void {
  program
    .command('console')
    .description('serve the web console (nodes, processes, vDisks, curator, HA, events, live I/O) until Ctrl-C')
    .option('--port <port>', 'port to listen on', String(CONSOLE_PORT_DEFAULT))
    .option('--host <address>', 'address to listen on (loopback: only this machine can open it)', '127.0.0.1')
    .option('--tracing [url]', 'link vDisks and events to their traces in this Zipkin (default http://127.0.0.1:9411)')
    .option('--targets <file>', "the processes' metrics (a Prometheus file_sd file; default: metrics-targets.json in the data directory)")
    .action((o: { port: string; host: string; tracing?: string | boolean; targets?: string }) => {
      // Bad flags are usage errors before any connection is tried.
      const port = parseCount(o.port, '--port', 0);
      if (port > 65_535) throw new UsageError(`--port: ${port} is not a port`);
      const tracingUrl = tracingUrlOf(o.tracing);
      return ctx.withCluster(async (client, nc, bus) => {
        const targetsFile = o.targets ?? join(ctx.dir(), METRICS_TARGETS_FILE);
        const gatherer = new StateGatherer(client, nc, bus, () => readTargets(targetsFile));
        const server = new ConsoleServer(gatherer, { host: o.host, port, intervalMs: 1_000, ...(tracingUrl === undefined ? {} : { tracingUrl }) });
        const listening = await server.listen();
        ctx.print(`console: http://${o.host}:${listening}/ (metrics from ${targetsFile}${existsSync(targetsFile) ? '' : ', not there yet'}; Ctrl-C stops it)`);
        await new Promise<void>((resolve) => {
          process.once('SIGINT', resolve);
          process.once('SIGTERM', resolve);
        });
        await server.close();
        await gatherer.stop();
      });
    });
}
