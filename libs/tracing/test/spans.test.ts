// The span helpers the actors use on the I/O path, and reading links and trees back
// from a span file:
//  - with tracing off (nothing registered) recordingSpan() is undefined and withSpan()
//    runs its function in the parent context as it is;
//  - with tracing on, withSpan() makes a span the parent of what runs inside it, also
//    after the span ended; recordSpanError() marks a span as the bus does;
//  - a span's links survive the file (readSpanFile), and spanForest() answers parents,
//    children, ancestors and descendants by id.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT_CONTEXT, createContextKey, trace as traceApi } from '@opentelemetry/api';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { FileSpanExporter, SpanStatusCode, context, recordSpanError, recordingSpan, trace, withSpan } from '@strata/tracing';
import { installInMemoryTracing, readSpanFile, spanForest, type InMemoryTracing } from '@strata/tracing/testing';

describe('with tracing off', () => {
  it('has no recording span, and withSpan runs in the parent context as it is', () => {
    const span = trace.getTracer('off').startSpan('noop');
    expect(span.isRecording()).toBe(false);
    expect(recordingSpan()).toBeUndefined();
    const key = createContextKey('probe');
    const parent = ROOT_CONTEXT.setValue(key, 1);
    // No context manager: context.with() only calls the function; the parent is passed through untouched.
    let seen: unknown;
    withSpan(span, () => (seen = trace.getSpan(context.active())), parent);
    expect(seen).toBeUndefined();
    recordSpanError(span, new Error('ignored'));
    span.end();
  });
});

describe('with tracing on', () => {
  let tracing: InMemoryTracing;
  beforeAll(() => {
    tracing = installInMemoryTracing();
  });
  afterAll(() => tracing.shutdown());

  it('makes a span, ended or not, the parent of what runs inside withSpan', async () => {
    const tracer = trace.getTracer('on');
    const outer = tracer.startSpan('outer');
    await withSpan(outer, async () => {
      expect(recordingSpan()).toBe(outer);
      await new Promise((r) => setImmediate(r));
      tracer.startSpan('inner').end();
    });
    outer.end();
    // Ended: no longer recording, still a parent.
    expect(outer.isRecording()).toBe(false);
    withSpan(outer, () => tracer.startSpan('after').end());
    const spans = tracing.exporter.getFinishedSpans();
    for (const name of ['inner', 'after']) expect(spans.find((s) => s.name === name)?.parentSpanContext?.spanId).toBe(outer.spanContext().spanId);
  });

  it('marks a failed span like the bus does', () => {
    const span = trace.getTracer('on').startSpan('failing');
    // Shaped like a StrataError (this library does not depend on @strata/errors).
    recordSpanError(span, Object.assign(new Error('n2 owns it'), { code: 'NOT_OWNER' }));
    span.end();
    const done = tracing.exporter.getFinishedSpans().find((s) => s.name === 'failing')!;
    expect(done.status).toEqual({ code: SpanStatusCode.ERROR, message: expect.stringContaining('n2 owns it') });
    expect(done.attributes['strata.error.code']).toBe('NOT_OWNER');
  });
});

describe('links and trees read back from a span file', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'strata-span-tree-'));
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it('keeps links, and indexes parents, children, ancestors and descendants', async () => {
    const path = join(dir, 'spans.jsonl');
    const provider = new BasicTracerProvider({
      resource: resourceFromAttributes({ 'service.name': 'vdisk-controller' }),
      spanProcessors: [new SimpleSpanProcessor(new FileSpanExporter(path))],
    });
    const tracer = provider.getTracer('tree-test');
    const write = tracer.startSpan('oplog append');
    write.end();
    const drain = tracer.startSpan('drain', { root: true, links: [{ context: write.spanContext(), attributes: { why: 'drained' } }] });
    const group = tracer.startSpan('egroup write', {}, traceApi.setSpan(ROOT_CONTEXT, drain));
    const request = tracer.startSpan('request strata.estore.n1.write', {}, traceApi.setSpan(ROOT_CONTEXT, group));
    request.end();
    group.end();
    drain.end();
    await provider.shutdown();

    const spans = await readSpanFile(path);
    const byName = (name: string) => spans.find((s) => s.name === name)!;
    expect(byName('oplog append').links).toBeUndefined();
    expect(byName('drain').links).toEqual([{ traceId: write.spanContext().traceId, spanId: write.spanContext().spanId, attributes: { why: 'drained' } }]);
    const forest = spanForest(spans);
    expect(forest.parentOf(byName('egroup write'))).toBe(byName('drain'));
    expect(forest.childrenOf(byName('drain'))).toEqual([byName('egroup write')]);
    expect(forest.ancestorsOf(byName('request strata.estore.n1.write')).map((s) => s.name)).toEqual(['egroup write', 'drain']);
    expect(forest.descendantsOf(byName('drain')).map((s) => s.name)).toEqual(['egroup write', 'request strata.estore.n1.write']);
    expect(forest.trace(drain.spanContext().traceId)).toHaveLength(3);
    expect(forest.describe(byName('drain')).split('\n')).toEqual([
      'drain [vdisk-controller] {}',
      '  egroup write [vdisk-controller] {}',
      '    request strata.estore.n1.write [vdisk-controller] {}',
    ]);
  });
});
