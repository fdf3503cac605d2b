// The admission gate's spans, with an in-memory tracer: every queued request has an
// `admission queue wait` span under its submitter's span, from enqueue to dispatch, and
// what the dispatch starts is that span's child, in that request's trace, also when
// another request's completion dispatches it; a refused request (QUEUE_FULL) has none.
import { SpanStatusCode, context, trace, type Span } from '@strata/tracing';
import { installInMemoryTracing, type InMemoryTracing } from '@strata/tracing/testing';
import { FifoQueue, Gate, QUEUE_WAIT_SPAN } from '../src/gate';

type ReadableSpan = ReturnType<InMemoryTracing['exporter']['getFinishedSpans']>[number];

let tracing: InMemoryTracing;
beforeAll(() => {
  tracing = installInMemoryTracing();
});
afterAll(() => tracing.shutdown());
beforeEach(() => tracing.reset());

const tracer = trace.getTracer('gate-tracing-test');
const req = { flow: '1', bytes: 4096 };

function deferred<T>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

function finished(name: string): ReadableSpan[] {
  return tracing.exporter.getFinishedSpans().filter((s) => s.name === name);
}

describe('admission gate spans', () => {
  it('gives each queued request a wait span, ended at dispatch, under which its own dispatch runs', async () => {
    const gate = new Gate<string>(new FifoQueue(10), { inFlightMax: 1, now: () => 0 });
    const releases = [deferred<string>(), deferred<string>(), deferred<string>()];
    const submitters: Span[] = [];
    const dispatched: Array<{ active: Span | undefined; waitEnded: boolean; child: Span }> = [];
    const results = releases.map((release, i) => {
      const submitter = tracer.startSpan(`handle ${i}`);
      submitters.push(submitter);
      return context.with(trace.setSpan(context.active(), submitter), () =>
        gate.submit(
          { flow: String(i), bytes: 4096 },
          () => {
            // What the dispatch starts (the request to the controller) sees the wait span as its parent.
            dispatched[i] = { active: trace.getActiveSpan(), waitEnded: (trace.getActiveSpan() as unknown as { ended?: boolean } | undefined)?.ended === true, child: tracer.startSpan(`request ${i}`) };
            return release.promise;
          },
          { 'strata.vdisk': String(i) },
        ),
      );
    });
    // One runs, two wait; their wait spans are open.
    expect(finished(QUEUE_WAIT_SPAN)).toHaveLength(1);
    // Completing request 0 dispatches request 1 from request 0's completion; 1 then dispatches 2.
    releases[0]!.resolve('a');
    await results[0];
    await new Promise((r) => setImmediate(r));
    releases[1]!.resolve('b');
    releases[2]!.resolve('c');
    await expect(Promise.all(results)).resolves.toEqual(['a', 'b', 'c']);
    for (const d of dispatched) d.child.end();
    for (const s of submitters) s.end();

    const waits = finished(QUEUE_WAIT_SPAN);
    expect(waits).toHaveLength(3);
    for (let i = 0; i < 3; i++) {
      const submitter = submitters[i]!.spanContext();
      const wait = waits.find((w) => w.attributes['strata.vdisk'] === String(i))!;
      expect(wait.spanContext().traceId).toBe(submitter.traceId);
      expect(wait.parentSpanContext?.spanId).toBe(submitter.spanId);
      expect(wait.attributes).toMatchObject({ 'strata.admission.queue_depth': expect.any(Number), 'strata.admission.in_flight': expect.any(Number) });
      const child = finished(`request ${i}`)[0]!;
      expect(dispatched[i]!.active?.spanContext().spanId).toBe(wait.spanContext().spanId);
      expect(child.parentSpanContext?.spanId).toBe(wait.spanContext().spanId);
      expect(child.spanContext().traceId).toBe(submitter.traceId);
      // The wait ended when the request left the queue, before its dispatch started
      // anything. (Checked as a state seen by the dispatch, not by comparing span
      // timestamps, whose sub-millisecond rounding may put two instants in either order.)
      expect(dispatched[i]!.waitEnded).toBe(true);
    }
    // The first found the queue empty and a free slot; the third joined behind the second.
    expect(waits.map((w) => w.attributes['strata.admission.queue_depth'])).toEqual([1, 1, 2]);
    expect(waits.every((w) => w.status.code === SpanStatusCode.UNSET)).toBe(true);
  });

  it('makes no wait span for a request refused with QUEUE_FULL', async () => {
    const gate = new Gate<number>(new FifoQueue(1), { inFlightMax: 1, now: () => 0 });
    const hold = deferred<number>();
    const running = gate.submit(req, () => hold.promise);
    const waiting = gate.submit(req, () => Promise.resolve(2));
    await expect(gate.submit(req, () => Promise.resolve(3))).rejects.toMatchObject({ code: 'QUEUE_FULL' });
    hold.resolve(1);
    await expect(Promise.all([running, waiting])).resolves.toEqual([1, 2]);
    expect(finished(QUEUE_WAIT_SPAN)).toHaveLength(2);
  });
});
