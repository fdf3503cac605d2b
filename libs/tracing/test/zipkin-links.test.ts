// Span links survive the trip to Zipkin, whose model has none: each becomes a tag.
import { withLinkTags } from '../src/zipkin-exporter';
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
  const tagged = withLinkTags(drain!);
  const zipkin = toZipkinSpan(tagged, 'vdisk-controller', 'otel.status_code', 'error');
  expect(zipkin.tags).toMatchObject({ 'strata.vdisk': '7', 'link.0': `${write!.spanContext().traceId}/${write!.spanContext().spanId}` });
  expect(zipkin).toMatchObject({ name: 'drain', traceId: drain!.spanContext().traceId, id: drain!.spanContext().spanId });
  expect(drain!.attributes['link.0']).toBeUndefined();
  expect(withLinkTags(write!)).toBe(write);
});
