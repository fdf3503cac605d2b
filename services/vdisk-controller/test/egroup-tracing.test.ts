// An extent-group write's span, with an in-memory tracer: `egroup write` is the child
// of the caller's span (the drain's), says which extent group, replicas' disks, pieces,
// bytes and version, and the replicas' requests run inside it.
import type { Bus } from '@strata/bus';
import { MemoryMd } from '@strata/md-client/testing';
import { keys, type EgroupEntry } from '@strata/proto';
import { context, trace, type SpanContext } from '@strata/tracing';
import { installInMemoryTracing, type InMemoryTracing } from '@strata/tracing/testing';
import { testExtentGroups } from './health';

let tracing: InMemoryTracing;
beforeAll(() => {
  tracing = installInMemoryTracing();
});
afterAll(() => tracing.shutdown());

test('an extent-group write is a span under the drain, and the replicas are written inside it', async () => {
  const md = new MemoryMd();
  const entry: EgroupEntry = { vdisk: 7n, replicas: [{ disk: 1n, node: 'n1' }, { disk: 2n, node: 'n2' }], version: 0, sizeBytes: 0, extents: [] };
  await md.put('egroup', keys.egroup(9n), entry, 0);
  const activeAtRequest: Array<{ subject: string; active: SpanContext | undefined }> = [];
  const bus = {
    request: (subject: string, req: { version: number }) => {
      activeAtRequest.push({ subject, active: trace.getActiveSpan()?.spanContext() });
      return Promise.resolve({ version: req.version, crc32c: 0 });
    },
  } as unknown as Bus;
  const groups = testExtentGroups(bus, md, { egroupSizeBytes: 1 << 20, writeBytesMax: 1 << 20 });
  const drain = trace.getTracer('test').startSpan('drain');
  await context.with(trace.setSpan(context.active(), drain), () =>
    groups.write(9n, [{ offset: 0, data: new Uint8Array(4096) }, { offset: 8192, zeros: 512 }], { added: [{ block: 0, location: { egroup: 9n, offset: 0, length: 4096 } }], freed: [] }),
  );
  drain.end();
  const [span] = tracing.exporter.getFinishedSpans().filter((s) => s.name === 'egroup write');
  expect(span!.parentSpanContext?.spanId).toBe(drain.spanContext().spanId);
  expect(span!.attributes).toMatchObject({
    'strata.vdisk': '7',
    'strata.egroup': '9',
    'strata.disk': ['1', '2'],
    'strata.pieces': 2,
    'strata.bytes': 4096,
    'strata.egroup.version': 1,
    'strata.extents.added': 1,
    'strata.extents.freed': 0,
  });
  expect(activeAtRequest.map((r) => [r.subject, r.active?.spanId])).toEqual([
    ['strata.estore.n1.write', span!.spanContext().spanId],
    ['strata.estore.n2.write', span!.spanContext().spanId],
  ]);
});
