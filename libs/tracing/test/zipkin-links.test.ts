// Span links survive the trip to Zipkin, whose model has none: each becomes a tag. And
// the spans of a colocated node (one node-host process) are named after their actors.
import { resourceFromAttributes } from '@opentelemetry/resources';
import { forZipkin } from '../src/zipkin-exporter';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { toZipkinSpan } from '@opentelemetry/exporter-zipkin/build/src/transform';

function spans(): ReadableSpan[] {
  const memory = new InMemorySpanExporter();
  const tracer = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(memory)] }).getTracer('t');
  const write = tracer.startSpan('oplog append');
  write.end();
  const drain = tracer.startSpan('drain', { links: [{ context: write.spanContext() }], attributes: { 'strata.vdisk': '7' } });
  drain.end();
  return memory.getFinishedSpans();
}

test('each link of a span becomes a link.<n> tag in its Zipkin form; the span is otherwise the same', () => {
  const [write, drain] = spans();
  const tagged = forZipkin(drain!);
  const zipkin = toZipkinSpan(tagged, 'vdisk-controller', 'otel.status_code', 'error');
  expect(zipkin.tags).toMatchObject({ 'strata.vdisk': '7', 'link.0': `${write!.spanContext().traceId}/${write!.spanContext().spanId}` });
  expect(zipkin).toMatchObject({ name: 'drain', traceId: drain!.spanContext().traceId, id: drain!.spanContext().spanId });
  expect(drain!.attributes['link.0']).toBeUndefined();
  expect(forZipkin(write!)).toBe(write);
});

/** One finished span named `name` from a tracer `scope` of a process whose service.name is `service`. */
function spanOf(service: string, scope: string, name: string): ReadableSpan {
  const memory = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ resource: resourceFromAttributes({ 'service.name': service }), spanProcessors: [new SimpleSpanProcessor(memory)] });
  provider.getTracer(scope).startSpan(name).end();
  return memory.getFinishedSpans()[0]!;
}

test("a colocated node's spans are named after the actor they belong to; a process of one actor keeps its own name", () => {
  const actorOf = (scope: string, name: string): unknown => forZipkin(spanOf('node-host', scope, name)).attributes['service.name'];
  expect(actorOf('@strata/gateway', 'nbd write')).toBe('gateway');
  expect(actorOf('@strata/admission', 'admission queue wait')).toBe('admission');
  expect(actorOf('@strata/vdisk-controller', 'oplog append')).toBe('vdisk-controller');
  expect(actorOf('@strata/bus', 'request strata.io.n1.write')).toBe('gateway');
  expect(actorOf('@strata/bus', 'handle strata.io.n1.write')).toBe('io-director');
  expect(actorOf('@strata/bus', 'request strata.adm.n1.write')).toBe('io-director');
  expect(actorOf('@strata/bus', 'handle strata.adm.n1.write')).toBe('admission');
  expect(actorOf('@strata/bus', 'request strata.vdc.n1.write')).toBe('admission');
  expect(actorOf('@strata/bus', 'handle strata.vdc.n1.write')).toBe('vdisk-controller');
  expect(actorOf('@strata/bus', 'request strata.estore.n2.write')).toBe('vdisk-controller');
  expect(actorOf('@strata/bus', 'handle strata.estore.n2.write')).toBe('extent-store');
  expect(actorOf('@strata/bus', 'handle strata.md.5.put')).toBe('metadata-shard');
  // Whoever asks the config service: the host's name stays.
  expect(actorOf('@strata/bus', 'request strata.cfg.get')).toBeUndefined();
  const own = spanOf('io-director', '@strata/bus', 'handle strata.io.n1.write');
  expect(forZipkin(own)).toBe(own);
});
