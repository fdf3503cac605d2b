// startTracing with OTEL_EXPORTER_OTLP_ENDPOINT: shutdown() flushes batched spans as
// http/protobuf to <endpoint>/v1/traces, and nothing else (no OTLP metrics or logs) is
// sent. A local HTTP server stands in for the collector; the traced process is a child
// (see fixtures/otlp-child.js for why it cannot run inside jest).
import { execFile } from 'node:child_process';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const received: { method: string | undefined; url: string | undefined; headers: IncomingHttpHeaders; body: Buffer }[] = [];
let server: Server;
let endpoint: string;

beforeAll(async () => {
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      received.push({ method: req.method, url: req.url, headers: req.headers, body: Buffer.concat(chunks) });
      res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(() => new Promise((resolve) => server.close(resolve)));

/** The parent's environment without any OTEL_* or STRATA_* setting, plus `extra`. */
function envWith(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('OTEL_') && !k.startsWith('STRATA_')));
  return { ...env, ...extra };
}

test('shutdown flushes batched spans to the OTLP endpoint, and only spans are sent', async () => {
  const { stdout } = await run(process.execPath, [join(__dirname, 'fixtures', 'otlp-child.js')], {
    // A one-minute batch delay: the child exits right after shutdown(), so only the
    // flush in shutdown() can have sent the span.
    env: envWith({ OTEL_EXPORTER_OTLP_ENDPOINT: endpoint, OTEL_BSP_SCHEDULE_DELAY: '60000' }),
    timeout: 20000,
  });
  expect(JSON.parse(stdout)).toMatchObject({ exporters: ['otlp'] });
  expect(received.map((r) => `${r.method} ${r.url}`)).toEqual(['POST /v1/traces']);
  const [traces] = received;
  expect(traces?.headers['content-type']).toBe('application/x-protobuf');
  // Protobuf stores strings as raw UTF-8, so the names are visible in the body.
  expect(traces?.body.includes('span-for-the-collector')).toBe(true);
  expect(traces?.body.includes('otlp-test')).toBe(true);
}, 30000);

test.each([
  ['off: spans are no-ops (all-zero trace ids), nothing is sent', {}, /^0{32}$/],
  ['with STRATA_TRACE_IDS=true, trace ids are real, nothing is sent', { STRATA_TRACE_IDS: 'true' }, /^(?!0{32})[0-9a-f]{32}$/],
])('with no endpoint and no exporter named, tracing is %s', async (_name, extra: Record<string, string>, traceIdPattern: RegExp) => {
  received.length = 0;
  // No trace endpoint. Left to itself the NodeSDK would still export OTLP metrics and
  // logs (the child writes one of each); point those endpoints here to catch that.
  const { stdout } = await run(process.execPath, [join(__dirname, 'fixtures', 'otlp-child.js')], {
    env: envWith({
      ...extra,
      OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: `${endpoint}/v1/metrics`,
      OTEL_EXPORTER_OTLP_LOGS_ENDPOINT: `${endpoint}/v1/logs`,
      OTEL_METRIC_EXPORT_INTERVAL: '50',
    }),
    timeout: 20000,
  });
  const out = JSON.parse(stdout) as { exporters: string[]; traceId: string };
  expect(out.exporters).toEqual([]);
  expect(out.traceId).toMatch(traceIdPattern);
  expect(received.map((r) => `${r.method} ${r.url}`)).toEqual([]);
}, 30000);
