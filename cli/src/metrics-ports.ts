// The metrics endpoints of a local cluster: `strata up` gives every process it starts
// (config replicas, node-hosts or single actors, HA agents, curators) a metrics port
// of its own, consecutive from a first one, and writes where they are as a Prometheus
// file_sd targets file, so one Prometheus scrape job finds them all.
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import type { ChildSpec } from './supervisor';
import { UsageError } from './units';

/** Where `strata up` starts looking for free metrics ports (the OpenTelemetry Prometheus exporter's port). */
export const METRICS_PORT_DEFAULT = 9464;
/** The targets file in the data directory. */
export const METRICS_TARGETS_FILE = 'metrics-targets.json';
/** How far past the first port `strata up` looks for a free run. */
const SEARCH_SPAN = 2_000;
/** The address the metrics servers listen on (libs/metrics). */
const METRICS_HOST = '127.0.0.1';

/** Whether `port` can be listened on at 127.0.0.1 now. */
function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen({ host: METRICS_HOST, port, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

/**
 * The first of `count` consecutive free ports: from `first` exactly when the operator
 * chose it (a taken port is a usage error), otherwise the first free run at or above
 * METRICS_PORT_DEFAULT.
 */
export async function metricsPortRun(count: number, first: number | undefined): Promise<number> {
  if (first !== undefined) {
    if (first + count - 1 > 65_535) throw new UsageError(`--metrics-port ${first} leaves no room for ${count} metrics ports`);
    for (let port = first; port < first + count; port++) {
      if (!(await bindable(port))) throw new UsageError(`metrics port ${port} on ${METRICS_HOST} is in use (the cluster needs ${first}-${first + count - 1}); pick others with --metrics-port`);
    }
    return first;
  }
  let run = 0;
  for (let port = METRICS_PORT_DEFAULT; port < METRICS_PORT_DEFAULT + SEARCH_SPAN; port++) {
    run = (await bindable(port)) ? run + 1 : 0;
    if (run === count) return port - count + 1;
  }
  throw new Error(`no ${count} consecutive free ports in ${METRICS_PORT_DEFAULT}-${METRICS_PORT_DEFAULT + SEARCH_SPAN - 1} for the metrics; pick a first one with --metrics-port`);
}

/** A Prometheus file_sd target group per process: its metrics address, and its name as the `process` label. */
export function metricsTargets(children: readonly ChildSpec[]): Array<{ targets: string[]; labels: Record<string, string> }> {
  return children
    .filter((c) => c.env?.STRATA_METRICS_PORT !== undefined)
    .map((c) => ({ targets: [`${METRICS_HOST}:${c.env!.STRATA_METRICS_PORT}`], labels: { job: 'strata', process: c.name } }));
}

export function writeMetricsTargets(file: string, children: readonly ChildSpec[]): number {
  const targets = metricsTargets(children);
  writeFileSync(file, `${JSON.stringify(targets, null, 2)}\n`);
  return targets.length;
}
