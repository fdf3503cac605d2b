// Trace context crosses a message boundary: inject into headers on one side, extract on
// the other, and the handler's span is a child of the sender's span, across awaits.
import { setTimeout as sleep } from 'node:timers/promises';
import { SpanKind, context, extractTraceContext, injectTraceContext, trace, type HeaderCarrier } from '@strata/tracing';
import { installInMemoryTracing, type InMemoryTracing } from '@strata/tracing/testing';

/** Shaped like NATS MsgHdrs: get() of a missing key returns "". */
class MapHeaders implements HeaderCarrier {
  readonly map = new Map<string, string>();
  get(key: string): string {
    return this.map.get(key) ?? '';
  }
  set(key: string, value: string): void {
    this.map.set(key, value);
  }
  has(key: string): boolean {
    return this.map.has(key);
  }
  keys(): string[] {
    return [...this.map.keys()];
  }
}

let tracing: InMemoryTracing;
beforeAll(() => {
  tracing = installInMemoryTracing();
});
afterEach(() => tracing.reset());
afterAll(() => tracing.shutdown());

const tracer = () => trace.getTracer('propagation-test');

test('a span started in the extracted context is a child of the injected span', async () => {
  const headers = new MapHeaders();
  const client = tracer().startSpan('request vdisk.read', { kind: SpanKind.CLIENT });
  injectTraceContext(headers, trace.setSpan(context.active(), client));
  client.end();
  expect(headers.get('traceparent')).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);

  // The receiving side: extract, then start the handler span after an await, which only
  // finds the context if the AsyncLocalStorage context manager is registered.
  await context.with(extractTraceContext(headers), async () => {
    await sleep(1);
    const server = tracer().startSpan('handle vdisk.read', { kind: SpanKind.SERVER });
    server.end();
  });

  const spans = tracing.exporter.getFinishedSpans();
  const server = spans.find((s) => s.name === 'handle vdisk.read');
  expect(server?.spanContext().traceId).toBe(client.spanContext().traceId);
  expect(server?.parentSpanContext?.spanId).toBe(client.spanContext().spanId);
  expect(server?.parentSpanContext?.isRemote).toBe(true);
});

test('startActiveSpan children find their parent across awaits', async () => {
  await tracer().startActiveSpan('outer', async (outer) => {
    await sleep(1);
    tracer().startSpan('inner').end();
    outer.end();
  });
  const [inner, outer] = tracing.exporter.getFinishedSpans();
  expect(inner?.name).toBe('inner');
  expect(inner?.parentSpanContext?.spanId).toBe(outer?.spanContext().spanId);
});

test('headers without traceparent give a new root trace', () => {
  const headers = new MapHeaders();
  headers.set('other', 'x');
  context.with(extractTraceContext(headers), () => tracer().startSpan('root').end());
  const [root] = tracing.exporter.getFinishedSpans();
  expect(root?.parentSpanContext).toBeUndefined();
  expect(root?.spanContext().traceId).toMatch(/^[0-9a-f]{32}$/);
});

test('a malformed traceparent is ignored rather than trusted', () => {
  const headers = new MapHeaders();
  headers.set('traceparent', '00-not-a-trace-01');
  context.with(extractTraceContext(headers), () => tracer().startSpan('root').end());
  expect(tracing.exporter.getFinishedSpans()[0]?.parentSpanContext).toBeUndefined();
});

test('a second install while one is active is refused', () => {
  expect(() => installInMemoryTracing()).toThrow(/already registered/);
});
