// The drain span, with an in-memory tracer, the real oplog appender over an instant
// fake JetStream, and fakes of the extent groups and the vDisk map: a drain is a child
// of the oldest write it drains (its `oplog append`), whatever write's context kicks
// it, so that write's trace holds the drain that stored it; it is linked to the
// `oplog append` spans of every write it drains (at most 128, saying so when there
// were more); its extent-group writes and map updates run inside it; a failed drain is
// marked and keeps the links for the next one; a drain forgets the links of what it
// made durable.
import type { JetStreamClient } from '@nats-io/jetstream';
import { ErrorCode, StrataError } from '@strata/errors';
import type { BlockLocation, VdiskRow } from '@strata/proto';
import { SPAN_LINKS_MAX, SpanStatusCode, context, trace, type Span, type SpanContext } from '@strata/tracing';
import { installInMemoryTracing, type InMemoryTracing } from '@strata/tracing/testing';
import type { ExtentSpace } from '../src/extent-groups';
import { OplogAppender } from '@strata/oplog';
import { Vdisk } from '../src/vdisk';
import { NoCuratorRequests } from './no-curator';

type ReadableSpan = ReturnType<InMemoryTracing['exporter']['getFinishedSpans']>[number];

let tracing: InMemoryTracing;
beforeAll(() => {
  tracing = installInMemoryTracing();
});
afterAll(() => tracing.shutdown());
beforeEach(() => tracing.reset());

const tracer = trace.getTracer('drain-tracing-test');
const BLOCK = 4096;
const far = Number.MAX_SAFE_INTEGER;

/** Records the span active at each call, so the test can see where drain's work ran. */
class RecordingSpace extends NoCuratorRequests implements ExtentSpace {
  readonly activeAtWrite: Array<SpanContext | undefined> = [];
  failWrites = 0;
  private next = 0;
  allocate(_block: number, length: number): Promise<BlockLocation> {
    const location = { egroup: 100n, offset: this.next, length };
    this.next += length;
    return Promise.resolve(location);
  }

  owns(): Promise<boolean> {
    return Promise.resolve(true);
  }

  seal(): void {}

  writable(): Promise<boolean> {
    return Promise.resolve(true);
  }
  put(): Promise<void> {
    return Promise.reject(new Error('no direct writes here'));
  }
  write(): Promise<void> {
    this.activeAtWrite.push(trace.getActiveSpan()?.spanContext());
    if (this.failWrites > 0) {
      this.failWrites--;
      return Promise.reject(new StrataError(ErrorCode.UNAVAILABLE, 'replica unreachable'));
    }
    return Promise.resolve();
  }
  read(_location: BlockLocation, _offset: number, length: number): Promise<Uint8Array> {
    return Promise.resolve(new Uint8Array(length));
  }
}

const open: Vdisk[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((v) => v.close()));
});

function setup() {
  let seq = 0;
  const js = { publish: () => Promise.resolve({ seq: ++seq }) } as unknown as JetStreamClient;
  const appender = new OplogAppender({
    js: () => js,
    subject: 'oplog.9',
    vdisk: 9n,
    epoch: 1,
    owner: 'n1',
    lastSequence: 0,
    maxBatchBytes: 1 << 20,
    publishTimeoutMs: 1_000,
    publishAttempts: 1,
    lastMessage: () => Promise.resolve(undefined),
  });
  const rows = new Map<number, { value: VdiskRow; revision: number }>();
  const activeAtPut: Array<SpanContext | undefined> = [];
  const space = new RecordingSpace();
  const vdisk = new Vdisk(
    { id: 9n, sizeBytes: 1024 * BLOCK, blockSizeBytes: BLOCK },
    appender,
    space,
    {
      getRow: (row) => Promise.resolve(rows.get(row) ?? null),
      putRow: (row, value, revision) => {
        activeAtPut.push(trace.getActiveSpan()?.spanContext());
        rows.set(row, { value, revision: revision + 1 });
        return Promise.resolve(revision + 1);
      },
      recordDrained: () => Promise.resolve(),
      purgeBelow: () => Promise.resolve(),
    },
    // Drain only when the test says so.
    { undrainedBytesMax: 1 << 30, drainStartBytes: 1 << 30, drainIdleMs: 3_600_000, drainParallelism: 2, drainRoundBytesPaced: 1 << 30, rowBlocks: 16, directWriteBytesMin: 1 << 30, directLanes: 1 },
    0,
    () => undefined,
  );
  open.push(vdisk);
  return { vdisk, space, activeAtPut };
}

/** Writes one block under its own span (standing for the controller's handler span). */
async function tracedWrite(vdisk: Vdisk, block: number): Promise<Span> {
  const handler = tracer.startSpan(`handle write ${block}`);
  await context.with(trace.setSpan(context.active(), handler), () => vdisk.write(block * BLOCK, new Uint8Array(BLOCK).fill(block + 1), far));
  handler.end();
  return handler;
}

function finished(name: string): ReadableSpan[] {
  return tracing.exporter.getFinishedSpans().filter((s) => s.name === name);
}

describe('drain spans', () => {
  it("is a child of the oldest write it drains, in that write's trace, linked to every write it drains, with its work inside it", async () => {
    const { vdisk, space, activeAtPut } = setup();
    const handlers = [await tracedWrite(vdisk, 0), await tracedWrite(vdisk, 1), await tracedWrite(vdisk, 20)];
    const appends = finished('oplog append');
    expect(appends).toHaveLength(3);
    // Kicked from inside a write's context, as afterWrite and its idle timer do.
    const kicker = tracer.startSpan('a write that kicks the drain');
    await context.with(trace.setSpan(context.active(), kicker), () => vdisk.drain());
    kicker.end();

    const [drain] = finished('drain');
    expect(drain).toBeDefined();
    expect(drain!.parentSpanContext?.spanId).toBe(appends[0]!.spanContext().spanId);
    expect(drain!.spanContext().traceId).toBe(handlers[0]!.spanContext().traceId);
    // Not the trace of the later writes, nor of what kicked it.
    expect(handlers.slice(1).map((h) => h.spanContext().traceId)).not.toContain(drain!.spanContext().traceId);
    expect(drain!.spanContext().traceId).not.toBe(kicker.spanContext().traceId);
    expect(drain!.links.map((l) => l.context.spanId)).toEqual(appends.map((a) => a.spanContext().spanId));
    expect(drain!.attributes).toMatchObject({
      'strata.vdisk': '9',
      'strata.drain.from_seq': 1,
      'strata.drain.to_seq': 3,
      'strata.drain.blocks': 3,
      'strata.drain.egroups': 1,
      'strata.drain.links': 3,
    });
    expect(drain!.attributes['strata.drain.links_incomplete']).toBeUndefined();
    expect(drain!.events.map((e) => e.name)).toEqual(['planned', 'extent groups written', 'vdisk map written', 'drained sequence recorded']);
    // The extent-group writes and the vDisk map updates ran with the drain span active.
    expect(space.activeAtWrite.map((c) => c?.spanId)).toEqual([drain!.spanContext().spanId]);
    expect(activeAtPut.map((c) => c?.spanId)).toEqual([drain!.spanContext().spanId, drain!.spanContext().spanId]);
    // What is durable is forgotten, links too.
    expect(vdisk.writeLinks.size).toBe(0);
  });

  it('marks a failed drain and links the same writes again from the next one', async () => {
    const { vdisk, space } = setup();
    await tracedWrite(vdisk, 0);
    space.failWrites = 1;
    await expect(vdisk.drain()).rejects.toThrow('replica unreachable');
    expect(vdisk.writeLinks.size).toBe(1);
    await vdisk.drain();
    const [failed, drained] = finished('drain');
    expect(failed!.status).toMatchObject({ code: SpanStatusCode.ERROR });
    expect(failed!.attributes['strata.error.code']).toBe('UNAVAILABLE');
    expect(drained!.status.code).toBe(SpanStatusCode.UNSET);
    const append = finished('oplog append')[0]!.spanContext().spanId;
    expect(failed!.links.map((l) => l.context.spanId)).toEqual([append]);
    expect(drained!.links.map((l) => l.context.spanId)).toEqual([append]);
    expect(vdisk.writeLinks.size).toBe(0);
  });

  it(`links at most ${SPAN_LINKS_MAX} writes, and says when a drain has more`, async () => {
    const { vdisk } = setup();
    for (let block = 0; block < SPAN_LINKS_MAX + 5; block++) await tracedWrite(vdisk, block);
    expect(vdisk.writeLinks.size).toBe(SPAN_LINKS_MAX);
    await vdisk.drain();
    const [drain] = finished('drain');
    expect(drain!.links).toHaveLength(SPAN_LINKS_MAX);
    expect(drain!.attributes).toMatchObject({ 'strata.drain.links': SPAN_LINKS_MAX, 'strata.drain.links_incomplete': true, 'strata.drain.blocks': SPAN_LINKS_MAX + 5 });
    // Everything was drained: the next writes are linked again, and the next drain is complete.
    await tracedWrite(vdisk, 900);
    await vdisk.drain();
    const [, next] = finished('drain');
    expect(next!.links).toHaveLength(1);
    expect(next!.attributes['strata.drain.links_incomplete']).toBeUndefined();
  });
});
