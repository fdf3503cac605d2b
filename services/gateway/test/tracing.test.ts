// The gateway's spans, with an in-memory tracer, a real loopback socket and a bus
// backend over a fake requester: each NBD command is a root `nbd <op>` span (even when
// the server was started inside another span), with the export, vDisk, range and
// errno, and the bus requests of its pieces run inside it; a failed command's span is
// marked failed.
import type { RequestOptions } from '@strata/bus';
import { ErrorCode, StrataError } from '@strata/errors';
import { SpanKind, SpanStatusCode, context, trace, type SpanContext } from '@strata/tracing';
import { installInMemoryTracing, type InMemoryTracing } from '@strata/tracing/testing';
import type { BlockDevice, ExportCatalog, ExportInfo } from '../src/backend';
import { BusDevice, type IoRequester } from '../src/bus-backend';
import { NbdServer } from '../src/nbd/server';
import { RawClient, requestBytes } from './raw-client';

const KiB = 1024;
const CMD = { READ: 0, WRITE: 1, FLUSH: 3 };

let tracing: InMemoryTracing;
beforeAll(() => {
  tracing = installInMemoryTracing();
});
afterAll(() => tracing.shutdown());

class OneExport implements ExportCatalog {
  constructor(private readonly device: BlockDevice) {}
  list(): Promise<ExportInfo[]> {
    return Promise.resolve([{ name: this.device.name, sizeBytes: this.device.sizeBytes }]);
  }
  open(name: string): Promise<BlockDevice | undefined> {
    return Promise.resolve(name === this.device.name ? this.device : undefined);
  }
}

test('each NBD command is a root span, and its pieces\' bus requests run inside it', async () => {
  const requests: Array<{ subject: string; offset: number | undefined; active: SpanContext | undefined }> = [];
  let failNext = false;
  const bus: IoRequester = {
    request: ((subject: string, req: { offset?: number; length?: number }, _schema: unknown, _options?: RequestOptions) => {
      requests.push({ subject, offset: req.offset, active: trace.getActiveSpan()?.spanContext() });
      if (failNext) return Promise.reject(new StrataError(ErrorCode.INVALID, 'refused by the test'));
      return Promise.resolve(subject.endsWith('.read') ? { data: new Uint8Array(req.length ?? 0) } : {});
    }) as IoRequester['request'],
  };
  const device = new BusDevice('demo', 42n, 64 * 1024 * KiB, false, { bus, node: 'n1', requestTimeoutMs: 5_000, attemptTimeoutMs: 5_000, openTimeoutMs: 5_000, piecesInFlightMax: 4, chunkBytes: 256 * KiB });
  const server = new NbdServer({ catalog: new OneExport(device), limits: {} });
  // Started inside some span: the commands' spans must still be roots of their own traces.
  const outer = trace.getTracer('test').startSpan('outer');
  const port = await context.with(trace.setSpan(context.active(), outer), async () => (await server.listenTcp(0)).port);
  outer.end();
  const { client } = await RawClient.open(port, 'demo');
  try {
    // 300 KiB at 200 KiB: pieces at 200 KiB (56 KiB) and 256 KiB (244 KiB).
    client.write(requestBytes(CMD.WRITE, 1n, 200 * KiB, 300 * KiB, 1, Buffer.alloc(300 * KiB, 7)));
    expect(await client.readSimpleReply()).toEqual({ error: 0, handle: 1n });
    failNext = true;
    client.write(requestBytes(CMD.READ, 2n, 0, 4 * KiB));
    expect((await client.readSimpleReply()).error).toBe(22);
    failNext = false;
    client.write(requestBytes(CMD.FLUSH, 3n, 0, 0));
    expect(await client.readSimpleReply()).toEqual({ error: 0, handle: 3n });
  } finally {
    client.destroy();
    await server.close(100);
  }

  const spans = tracing.exporter.getFinishedSpans().filter((s) => s.name.startsWith('nbd '));
  expect(spans.map((s) => s.name)).toEqual(['nbd write', 'nbd read', 'nbd flush']);
  const [write, read, flush] = spans;
  for (const s of spans) {
    expect(s.parentSpanContext).toBeUndefined();
    expect(s.kind).toBe(SpanKind.SERVER);
    expect(s.spanContext().traceId).not.toBe(outer.spanContext().traceId);
  }
  expect(new Set(spans.map((s) => s.spanContext().traceId)).size).toBe(3);
  expect(write!.attributes).toMatchObject({
    'strata.vdisk.name': 'demo',
    'strata.vdisk': '42',
    'strata.io.op': 'write',
    'strata.io.offset': 200 * KiB,
    'strata.io.length': 300 * KiB,
    'nbd.fua': true,
    'nbd.errno': 0,
  });
  expect(read!.attributes).toMatchObject({ 'strata.io.op': 'read', 'nbd.errno': 22 });
  expect(read!.status).toMatchObject({ code: SpanStatusCode.ERROR });
  expect(read!.attributes['strata.error.code']).toBe('INVALID');
  expect(flush!.attributes['strata.io.offset']).toBeUndefined();
  // Every bus request ran with its command's span active.
  const spanOf = (c: SpanContext | undefined): string | undefined => spans.find((s) => s.spanContext().spanId === c?.spanId)?.name;
  expect(requests.map((r) => [r.subject, r.offset, spanOf(r.active)])).toEqual([
    ['strata.io.n1.write', 200 * KiB, 'nbd write'],
    ['strata.io.n1.write', 256 * KiB, 'nbd write'],
    ['strata.io.n1.read', 0, 'nbd read'],
    ['strata.io.n1.flush', undefined, 'nbd flush'],
  ]);
});
