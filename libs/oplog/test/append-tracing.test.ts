// The oplog appender's spans, with an in-memory tracer and a fake JetStream whose
// publishes the test acknowledges by hand: each append's `oplog append` span is a child
// of its caller's span and carries its message's sequence; one `oplog publish` span per
// message, the child of the batch's first append and linked to the others (which link
// back); the message's headers carry the publish span; a failed publish fails every
// append span of its batch.
import type { JetStreamClient } from '@nats-io/jetstream';
import type { MsgHdrs } from '@nats-io/transport-node';
import type { OplogOp } from '@strata/proto';
import { SpanKind, SpanStatusCode, context, trace, type Span } from '@strata/tracing';
import { installInMemoryTracing, type InMemoryTracing } from '@strata/tracing/testing';
import { OplogAppender } from '../src/append';

type ReadableSpan = ReturnType<InMemoryTracing['exporter']['getFinishedSpans']>[number];

let tracing: InMemoryTracing;
beforeAll(() => {
  tracing = installInMemoryTracing();
});
afterAll(() => tracing.shutdown());
beforeEach(() => tracing.reset());

const tracer = trace.getTracer('oplog-tracing-test');

/** JetStream's publish, acknowledged (or failed) by the test. */
class FakeJs {
  seq = 0;
  readonly calls: Array<{ headers: MsgHdrs; ack: () => void; fail: (err: unknown) => void }> = [];
  publish(_subject: string, _body: Uint8Array, options: { headers: MsgHdrs }): Promise<{ seq: number }> {
    return new Promise((resolve, reject) => this.calls.push({ headers: options.headers, ack: () => resolve({ seq: ++this.seq }), fail: reject }));
  }
  async waitForCalls(n: number): Promise<void> {
    for (let i = 0; i < 100 && this.calls.length < n; i++) await new Promise((r) => setImmediate(r));
    expect(this.calls).toHaveLength(n);
  }
}

function setup(publishAttempts = 3) {
  const js = new FakeJs();
  const appender = new OplogAppender({
    js: () => js as unknown as JetStreamClient,
    subject: 'oplog.7',
    vdisk: 7n,
    epoch: 3,
    owner: 'n1',
    lastSequence: 0,
    maxBatchBytes: 1 << 20,
    publishTimeoutMs: 1_000,
    publishAttempts,
    lastMessage: () => Promise.resolve(undefined),
  });
  return { js, appender };
}

const write = (offset: number): OplogOp => ({ op: 'write', offset, data: new Uint8Array(512).fill(1) });

/** Runs `fn` under a fresh span (standing for the controller's handler span), which it returns. */
function under<T>(name: string, fn: () => T): { span: Span; result: T } {
  const span = tracer.startSpan(name);
  return { span, result: context.with(trace.setSpan(context.active(), span), fn) };
}

function finished(name: string): ReadableSpan[] {
  return tracing.exporter.getFinishedSpans().filter((s) => s.name === name);
}

describe('oplog spans', () => {
  it('gives each append a span with its message sequence, and each message a publish span linked to its writes', async () => {
    const { js, appender } = setup();
    const a = under('handle a', () => appender.append(write(0)));
    await js.waitForCalls(1);
    // b and c arrive while a's message is in flight: they go out together as the next one.
    const b = under('handle b', () => appender.append(write(4096)));
    const c = under('handle c', () => appender.append({ op: 'zero', offset: 8192, length: 1024 }));
    js.calls[0]!.ack();
    const stored = [await a.result];
    await js.waitForCalls(2);
    js.calls[1]!.ack();
    stored.push(...(await Promise.all([b.result, c.result])));

    const appends = finished('oplog append');
    expect(appends).toHaveLength(3);
    const appendUnder = (h: { span: Span }): ReadableSpan => appends.find((s) => s.parentSpanContext?.spanId === h.span.spanContext().spanId)!;
    const [sa, sb, sc] = [appendUnder(a), appendUnder(b), appendUnder(c)];
    expect(sa.attributes).toMatchObject({ 'strata.vdisk': '7', 'strata.io.op': 'write', 'strata.io.offset': 0, 'strata.io.length': 512, 'strata.oplog.seq': 1, 'strata.oplog.ops': 1 });
    expect(sb.attributes).toMatchObject({ 'strata.oplog.seq': 2, 'strata.oplog.ops': 2 });
    expect(sc.attributes).toMatchObject({ 'strata.io.op': 'zero', 'strata.io.offset': 8192, 'strata.io.length': 1024, 'strata.oplog.seq': 2 });

    const publishes = finished('oplog publish');
    expect(publishes).toHaveLength(2);
    const [p1, p2] = publishes;
    expect(p1!.kind).toBe(SpanKind.PRODUCER);
    expect(p1!.parentSpanContext?.spanId).toBe(sa.spanContext().spanId);
    expect(p1!.links).toEqual([]);
    expect(p1!.attributes).toMatchObject({ 'strata.oplog.seq': 1, 'strata.oplog.kind': 'ops', 'strata.oplog.ops': 1, 'strata.oplog.expected_last_seq': 0, 'strata.epoch': 3 });
    // The batch of two: the child of its first write, linked to the other, which links back.
    expect(p2!.parentSpanContext?.spanId).toBe(sb.spanContext().spanId);
    expect(p2!.spanContext().traceId).toBe(b.span.spanContext().traceId);
    expect(p2!.links.map((l) => l.context.spanId)).toEqual([sc.spanContext().spanId]);
    expect(sc.links.map((l) => l.context.spanId)).toEqual([p2!.spanContext().spanId]);
    expect(sb.links).toEqual([]);
    expect(p2!.attributes).toMatchObject({ 'strata.oplog.seq': 2, 'strata.oplog.ops': 2, 'strata.oplog.expected_last_seq': 1 });
    // The message carries the publish span's context.
    expect(js.calls[1]!.headers.get('traceparent')).toBe(`00-${p2!.spanContext().traceId}-${p2!.spanContext().spanId}-01`);
    // Each append returns its message's sequence and its own span, for the drain's links.
    expect(stored.map((s) => ({ seq: s.seq, span: s.span?.spanId }))).toEqual([
      { seq: 1, span: sa.spanContext().spanId },
      { seq: 2, span: sb.spanContext().spanId },
      { seq: 2, span: sc.spanContext().spanId },
    ]);
    for (const h of [a, b, c]) h.span.end();
  });

  it('puts a takeover marker\'s publish under the caller\'s span', async () => {
    const { js, appender } = setup();
    const opening = under('vdisk open', () => appender.appendMarker());
    await js.waitForCalls(1);
    js.calls[0]!.ack();
    await expect(opening.result).resolves.toBe(1);
    const [publish] = finished('oplog publish');
    expect(publish!.parentSpanContext?.spanId).toBe(opening.span.spanContext().spanId);
    expect(publish!.attributes).toMatchObject({ 'strata.oplog.kind': 'marker', 'strata.oplog.seq': 1 });
    opening.span.end();
  });

  it('fails the publish span and every append span of the batch, and those queued behind it, when the publish fails', async () => {
    const { js, appender } = setup(1);
    const a = appender.append(write(0));
    await js.waitForCalls(1);
    const b = appender.append(write(4096));
    js.calls[0]!.fail(new Error('stream unavailable'));
    await expect(a).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    await expect(b).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    const appends = finished('oplog append');
    expect(appends).toHaveLength(2);
    for (const s of [...appends, ...finished('oplog publish')]) {
      expect(s.status.code).toBe(SpanStatusCode.ERROR);
      expect(s.attributes['strata.error.code']).toBe('UNAVAILABLE');
    }
  });
});
