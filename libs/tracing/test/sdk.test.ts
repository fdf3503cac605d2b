// startTracing with STRATA_TRACE_FILE: context follows awaits, spans reach the file with
// the service's resource, a second call returns the same handle, and the NodeSDK's own
// metrics pipeline stays off. One SDK per process, so this file starts it once.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { metrics } from '@opentelemetry/api';
import { SpanKind, activeTraceId, context, injectTraceContext, startTracing, trace, type HeaderCarrier, type TracingHandle } from '@strata/tracing';
import { readSpanFile } from '@strata/tracing/testing';

const saved = { ...process.env };
let dir: string;
let path: string;
let handle: TracingHandle;
let meterProviderBefore: unknown;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'strata-sdk-'));
  path = join(dir, 'spans.jsonl');
  for (const key of Object.keys(process.env)) if (key.startsWith('OTEL_')) delete process.env[key];
  process.env.STRATA_TRACE_FILE = path;
  meterProviderBefore = metrics.getMeterProvider();
  handle = await startTracing({ serviceName: 'vdisk-controller', serviceInstanceId: 'node-3', attributes: { 'strata.cluster': 'c1' } });
});

afterAll(async () => {
  await handle.shutdown();
  process.env = saved;
  await rm(dir, { recursive: true, force: true });
});

test('only the file exporter is on, and a second call returns the same handle', async () => {
  expect(handle.exporters).toEqual(['file']);
  await expect(startTracing({ serviceName: 'other' })).resolves.toBe(handle);
});

test('no OTel meter provider is registered (the NodeSDK would default to OTLP metrics)', () => {
  expect(metrics.getMeterProvider()).toBe(meterProviderBefore);
});

test('spans nest across awaits and reach the file with the resource', async () => {
  const tracer = trace.getTracer('sdk-test');
  let headerTraceId: string | undefined;
  await tracer.startActiveSpan('handle vdisk.create', { kind: SpanKind.SERVER }, async (outer) => {
    await sleep(2);
    expect(activeTraceId()).toBe(outer.spanContext().traceId);
    await tracer.startActiveSpan('kv put', async (inner) => {
      await sleep(1);
      const headers = new Map<string, string>();
      const carrier: HeaderCarrier = {
        get: (k) => headers.get(k) ?? '',
        set: (k, v) => void headers.set(k, v),
        has: (k) => headers.has(k),
        keys: () => [...headers.keys()],
      };
      injectTraceContext(carrier);
      headerTraceId = headers.get('traceparent')?.split('-')[1];
      inner.end();
    });
    outer.end();
  });

  // Written synchronously as each span ended: no flush needed before reading.
  const records = await readSpanFile(path);
  const inner = records.find((r) => r.name === 'kv put');
  const outer = records.find((r) => r.name === 'handle vdisk.create');
  expect(outer?.serviceName).toBe('vdisk-controller');
  expect(outer?.kind).toBe(SpanKind.SERVER);
  expect(inner?.parentSpanId).toBe(outer?.spanId);
  expect(inner?.traceId).toBe(outer?.traceId);
  expect(headerTraceId).toBe(outer?.traceId);

  const firstLine = JSON.parse((await readFile(path, 'utf8')).split('\n')[0] ?? '') as {
    resourceSpans: { resource: { attributes: { key: string; value: { stringValue?: string } }[] } }[];
  };
  const resource = Object.fromEntries(firstLine.resourceSpans[0]?.resource.attributes.map((a) => [a.key, a.value.stringValue]) ?? []);
  expect(resource).toMatchObject({ 'service.name': 'vdisk-controller', 'service.instance.id': 'node-3', 'strata.cluster': 'c1' });
  expect(resource['host.name']).toBeDefined();
});

test('context.active() outside any span has no trace id', () => {
  expect(trace.getSpan(context.active())).toBeUndefined();
  expect(activeTraceId()).toBeUndefined();
});
