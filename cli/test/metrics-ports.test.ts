// The metrics ports of `strata up`: a run of consecutive free ports (a taken one refused
// with a usage error when the operator chose the first), and the targets file entries.
import { createServer, type Server } from 'node:net';
import { metricsPortRun, metricsTargets } from '../src/metrics-ports';
import type { ChildSpec } from '../src/supervisor';

function listen(): Promise<{ server: Server; port: number }> {
  return new Promise((resolve) => {
    const server = createServer();
    server.listen({ host: '127.0.0.1', port: 0 }, () => resolve({ server, port: (server.address() as { port: number }).port }));
  });
}

test('a chosen first port is used as it is, and a taken port in its run is a usage error naming it', async () => {
  const { server, port } = await listen();
  try {
    await expect(metricsPortRun(1, port)).rejects.toThrow(new RegExp(`metrics port ${port} on 127.0.0.1 is in use .*--metrics-port`));
    await expect(metricsPortRun(2, 65_535)).rejects.toThrow(/leaves no room for 2 metrics ports/);
  } finally {
    server.close();
  }
  await new Promise((r) => server.once('close', r));
  expect(await metricsPortRun(1, port)).toBe(port);
});

test('the targets are the processes that have a metrics port, labelled with their names', () => {
  const children: ChildSpec[] = [
    { name: 'config-1', command: 'node', args: [], env: { STRATA_METRICS_PORT: '9464' } },
    { name: 'nats-1', command: 'nats-server', args: [] },
    { name: 'n1-node-host', command: 'node', args: [], env: { NATS_URL: 'x', STRATA_METRICS_PORT: '9465' } },
  ];
  expect(metricsTargets(children)).toEqual([
    { targets: ['127.0.0.1:9464'], labels: { job: 'strata', process: 'config-1' } },
    { targets: ['127.0.0.1:9465'], labels: { job: 'strata', process: 'n1-node-host' } },
  ]);
});
