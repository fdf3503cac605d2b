// The scrape endpoint over real HTTP: /metrics in the Prometheus text format, /healthz,
// 404 for the rest, port 0 resolved to the real port, and close() freeing that port.
import { createServer } from 'node:net';
import { createMetrics, startMetricsServer, type MetricsServer } from '@strata/metrics';

const metrics = createMetrics({ service: 'vdisk-controller', node: 'node-1' });
let server: MetricsServer;

beforeAll(async () => {
  server = await startMetricsServer(metrics, { port: 0 });
});
afterAll(() => server.close());

const url = (path: string) => `http://127.0.0.1:${server.port}${path}`;

test('port 0 binds a free port on loopback and reports it', () => {
  expect(server.port).toBeGreaterThan(0);
  expect(server.host).toBe('127.0.0.1');
});

test('GET /metrics serves the counter with the default labels in the Prometheus text format', async () => {
  const ops = metrics.counter('strata_test_scrapes_total', 'Things counted.', ['kind']);
  ops.inc({ kind: 'write' });
  ops.inc({ kind: 'write' });
  const res = await fetch(url('/metrics'));
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
  const text = await res.text();
  expect(text).toContain('# TYPE strata_test_scrapes_total counter');
  expect(text).toContain('strata_test_scrapes_total{kind="write",service="vdisk-controller",node="node-1"} 2');
  expect(text).toMatch(/^process_resident_memory_bytes\{service="vdisk-controller",node="node-1"\} \d+/m);
});

test('a query string does not change the path', async () => {
  expect((await fetch(url('/metrics?name[]=x'))).status).toBe(200);
});

test('GET /healthz answers 200 ok', async () => {
  const res = await fetch(url('/healthz'));
  expect(res.status).toBe(200);
  expect(await res.text()).toBe('ok');
});

test.each([
  ['GET', '/'],
  ['GET', '/metricsx'],
  ['POST', '/metrics'],
])('%s %s is 404', async (method, path) => {
  const res = await fetch(url(path), { method });
  expect(res.status).toBe(404);
  await res.text();
});

test('an invalid port is refused before binding', async () => {
  await expect(startMetricsServer(metrics, { port: 70000 })).rejects.toThrow(/port 70000 is not an integer from 0 to 65535/);
});

test('a port in use is reported with the address', async () => {
  await expect(startMetricsServer(metrics, { port: server.port })).rejects.toThrow(
    new RegExp(`cannot listen on 127\\.0\\.0\\.1:${server.port}: .*EADDRINUSE`),
  );
});

test('close() frees the port, even with a keep-alive connection open, and is idempotent', async () => {
  const other = await startMetricsServer(metrics, { port: 0 });
  // fetch keeps the connection alive; close() must not wait for it to time out.
  await (await fetch(`http://127.0.0.1:${other.port}/healthz`)).text();
  await Promise.all([other.close(), other.close()]);
  await expect(fetch(`http://127.0.0.1:${other.port}/healthz`)).rejects.toThrow();
  const probe = createServer();
  await new Promise<void>((resolve, reject) => {
    probe.once('error', reject);
    probe.listen(other.port, '127.0.0.1', resolve);
  });
  await new Promise((resolve) => probe.close(resolve));
});
