// The span file: FileSpanExporter writes OTLP/JSON lines and readSpanFile reads them back
// with ids, parentage, service name, kind, attributes and status intact.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import { BasicTracerProvider, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { FileSpanExporter } from '@strata/tracing';
import { readSpanFile } from '@strata/tracing/testing';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'strata-span-file-'));
});
afterEach(() => rm(dir, { recursive: true, force: true }));

/** Just enough of the OTLP/JSON request shape to walk it in assertions. */
interface ExportRequest {
  resourceSpans: {
    resource: { attributes: unknown[] };
    scopeSpans: { scope: unknown; spans: Record<string, unknown>[] }[];
  }[];
}

// A provider that is not registered globally: parents are passed as explicit contexts,
// so this test needs no context manager and cannot disturb another test's globals.
function providerWriting(path: string, serviceName: string): BasicTracerProvider {
  return new BasicTracerProvider({
    resource: resourceFromAttributes({ 'service.name': serviceName, 'service.instance.id': 'node-1' }),
    spanProcessors: [new SimpleSpanProcessor(new FileSpanExporter(path))],
  });
}

test('spans come back with their parent, service name, kind, attributes and status', async () => {
  const path = join(dir, 'nested', 'spans.jsonl'); // the directory is created on demand
  const provider = providerWriting(path, 'vdisk-controller');
  const tracer = provider.getTracer('file-exporter-test', '1.2.3');

  const parent = tracer.startSpan('handle vdisk.write', { kind: SpanKind.SERVER, attributes: { 'vdisk.id': 'vd-7', 'io.sizeBytes': 4096 } });
  const child = tracer.startSpan('oplog append', { attributes: { ratio: 0.5, sync: true, tags: ['a', 'b'] } }, trace.setSpan(ROOT_CONTEXT, parent));
  child.addEvent('fsync done', { durationMs: 3 });
  child.setStatus({ code: SpanStatusCode.ERROR, message: 'disk full' });
  child.end();
  parent.end();
  await provider.shutdown();

  const records = await readSpanFile(path);
  expect(records.map((r) => r.name)).toEqual(['oplog append', 'handle vdisk.write']);
  const [c, p] = records;
  expect(p).toEqual({
    traceId: parent.spanContext().traceId,
    spanId: parent.spanContext().spanId,
    name: 'handle vdisk.write',
    kind: SpanKind.SERVER,
    serviceName: 'vdisk-controller',
    attributes: { 'vdisk.id': 'vd-7', 'io.sizeBytes': 4096 },
    startTimeUnixNano: expect.stringMatching(/^\d{19}$/),
    endTimeUnixNano: expect.stringMatching(/^\d{19}$/),
    status: { code: SpanStatusCode.UNSET },
  });
  expect(c?.traceId).toBe(parent.spanContext().traceId);
  expect(c?.parentSpanId).toBe(parent.spanContext().spanId);
  expect(c?.kind).toBe(SpanKind.INTERNAL);
  expect(c?.attributes).toEqual({ ratio: 0.5, sync: true, tags: ['a', 'b'] });
  expect(c?.status).toEqual({ code: SpanStatusCode.ERROR, message: 'disk full' });
  expect(BigInt(c?.endTimeUnixNano ?? 0) >= BigInt(c?.startTimeUnixNano ?? 1)).toBe(true);
});

test('each line is one JSON object shaped like an OTLP ExportTraceServiceRequest', async () => {
  const path = join(dir, 'spans.jsonl');
  const provider = providerWriting(path, 'scheduler');
  const tracer = provider.getTracer('file-exporter-test', '1.2.3');
  const root = tracer.startSpan('place vm', { kind: SpanKind.CLIENT });
  tracer.startSpan('score hosts', {}, trace.setSpan(ROOT_CONTEXT, root)).end();
  root.end();
  await provider.shutdown();

  const lines = (await readFile(path, 'utf8')).split('\n');
  expect(lines.pop()).toBe(''); // the file ends with a newline
  expect(lines).toHaveLength(2);
  const requests = lines.map((line) => JSON.parse(line) as ExportRequest);
  const rootLine = requests[1]?.resourceSpans[0];
  const span = rootLine?.scopeSpans[0]?.spans[0];
  expect(rootLine?.resource.attributes).toEqual(
    expect.arrayContaining([
      { key: 'service.name', value: { stringValue: 'scheduler' } },
      { key: 'service.instance.id', value: { stringValue: 'node-1' } },
    ]),
  );
  expect(rootLine?.scopeSpans[0]?.scope).toEqual({ name: 'file-exporter-test', version: '1.2.3' });
  expect(span).toMatchObject({
    traceId: root.spanContext().traceId,
    spanId: root.spanContext().spanId,
    name: 'place vm',
    kind: 3, // OTLP SPAN_KIND_CLIENT: the API's SpanKind.CLIENT (2) plus one
    status: { code: 0 },
    events: [],
    links: [],
  });
  expect(span).not.toHaveProperty('parentSpanId');
  expect(typeof span?.startTimeUnixNano).toBe('string');
  expect(requests[0]?.resourceSpans[0]?.scopeSpans[0]?.spans[0]?.parentSpanId).toBe(root.spanContext().spanId);
});

test('two writers append to one file without losing lines', async () => {
  const path = join(dir, 'shared.jsonl');
  const a = providerWriting(path, 'a');
  const b = providerWriting(path, 'b');
  for (let i = 0; i < 50; i++) {
    a.getTracer('t').startSpan(`a${i}`).end();
    b.getTracer('t').startSpan(`b${i}`).end();
  }
  await Promise.all([a.shutdown(), b.shutdown()]);
  const records = await readSpanFile(path);
  expect(records).toHaveLength(100);
  expect(records.filter((r) => r.serviceName === 'b').map((r) => r.name)).toEqual(Array.from({ length: 50 }, (_, i) => `b${i}`));
});

test('export after shutdown fails instead of writing to a closed file', async () => {
  const exporter = new FileSpanExporter(join(dir, 'spans.jsonl'));
  await exporter.shutdown();
  const provider = new BasicTracerProvider({ spanProcessors: [] });
  const span = provider.getTracer('t').startSpan('late');
  span.end();
  // The SDK's span object is also its ReadableSpan; the API type does not say so.
  const result = await new Promise<ExportResult>((resolve) => exporter.export([span as unknown as ReadableSpan], resolve));
  expect(result.code).toBe(ExportResultCode.FAILED);
  expect(result.error?.message).toMatch(/after shutdown/);
});

test('readSpanFile names the line that is not JSON', async () => {
  const path = join(dir, 'broken.jsonl');
  await writeFile(path, '{"resourceSpans":[]}\n{"resourceSpans":[\n');
  await expect(readSpanFile(path)).rejects.toThrow(/broken\.jsonl:2: not valid JSON/);
});

test('readSpanFile rejects a span without ids', async () => {
  const path = join(dir, 'no-ids.jsonl');
  await writeFile(path, JSON.stringify({ resourceSpans: [{ resource: {}, scopeSpans: [{ spans: [{ name: 'x' }] }] }] }) + '\n');
  await expect(readSpanFile(path)).rejects.toThrow(/no-ids\.jsonl:1: missing "traceId"/);
});
