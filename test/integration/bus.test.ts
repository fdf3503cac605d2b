// Proves the bus contract against real nats-servers (one, and a three-server
// cluster): CBOR round trips with exact 64-bit integers, typed error replies, INVALID
// for malformed CBOR and wrong shapes, UNAVAILABLE when nobody serves, TIMEOUT at the
// deadline, the deadline header reaching the handler, and QUEUE_FULL at the bound.
import { z } from 'zod';
import { connectBus, type Bus } from '@strata/bus';
import { u64, uint } from '@strata/codec';
import { ErrorCode, StrataError } from '@strata/errors';
import { startTopology, topologies, uniqueName, type NatsTopology } from '../harness';

describe.each(topologies)('bus against %s nats', (kind) => {
  let nats: NatsTopology;
  let server: Bus;
  let client: Bus;

  beforeAll(async () => {
    nats = await startTopology(kind);
    server = await connectBus({ name: 'test-server', servers: nats.url });
    client = await connectBus({ name: 'test-client', servers: nats.url });
  });
  afterAll(async () => {
    await client?.close();
    await server?.close();
    await nats?.stop();
  });

  const echoRequest = z.strictObject({ id: u64, offset: uint, data: z.instanceof(Uint8Array) });

  it('round-trips a request with 64-bit ids and byte strings', async () => {
    const subject = uniqueName('test.echo');
    const svc = await server.serve(subject, echoRequest, (req) => ({ id: req.id + 1n, offset: req.offset * 2, data: req.data }));
    try {
      const reply = await client.request(subject, { id: 2n ** 64n - 2n, offset: 2 ** 51, data: new Uint8Array([1, 2, 3]) }, echoRequest);
      expect(reply.id).toBe(2n ** 64n - 1n);
      expect(reply.offset).toBe(2 ** 52);
      expect(Array.from(reply.data)).toEqual([1, 2, 3]);
    } finally {
      await svc.stop();
    }
  });

  it('carries a StrataError thrown by the handler, code, message and hint intact', async () => {
    const subject = uniqueName('test.fail');
    const svc = await server.serve(subject, z.unknown(), () => {
      throw new StrataError(ErrorCode.NOT_OWNER, 'vdisk 7 is owned by n2', { hint: 'n2' });
    });
    try {
      const err = await client.request(subject, {}, z.unknown()).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(StrataError);
      expect(err).toMatchObject({ code: 'NOT_OWNER', message: 'vdisk 7 is owned by n2', hint: 'n2', retryable: true });
    } finally {
      await svc.stop();
    }
  });

  it('answers malformed CBOR and wrong shapes with INVALID naming the field, without calling the handler', async () => {
    const subject = uniqueName('test.strict');
    let calls = 0;
    const svc = await server.serve(subject, echoRequest, (req) => {
      calls++;
      return req;
    });
    try {
      const malformed = (await client.requestRaw(subject, new Uint8Array([0xbf, 0x61]))) as { error: { code: string; message: string } };
      expect(malformed.error.code).toBe('INVALID');
      expect(malformed.error.message).toMatch(/malformed CBOR/);
      const wrong = await client.request(subject, { id: -1, offset: 0, data: new Uint8Array() }, echoRequest).catch((e: unknown) => e);
      expect(wrong).toMatchObject({ code: 'INVALID' });
      expect((wrong as Error).message).toMatch(/^id: /);
      const extra = await client.request(subject, { id: 1, offset: 0, data: new Uint8Array(), colour: 'red' }, echoRequest).catch((e: unknown) => e);
      expect((extra as Error).message).toMatch(/unknown field colour/);
      expect(calls).toBe(0);
    } finally {
      await svc.stop();
    }
  });

  it('maps no responders (after retrying them until the deadline) to UNAVAILABLE and a silent responder to TIMEOUT', async () => {
    const before = Date.now();
    const none = await client.request(uniqueName('test.nobody'), {}, z.unknown(), { timeoutMs: 600 }).catch((e: unknown) => e);
    expect(none).toMatchObject({ code: 'UNAVAILABLE' });
    // A no-responders reply comes back in about a millisecond: this proves it retried.
    expect(Date.now() - before).toBeGreaterThanOrEqual(100);
    expect(Date.now() - before).toBeLessThan(1_500);

    const subject = uniqueName('test.slow');
    const svc = await server.serve(subject, z.unknown(), () => new Promise((resolve) => setTimeout(resolve, 2_000)));
    try {
      const started = Date.now();
      const slow = await client.request(subject, {}, z.unknown(), { timeoutMs: 300 }).catch((e: unknown) => e);
      expect(slow).toMatchObject({ code: 'TIMEOUT' });
      expect(Date.now() - started).toBeLessThan(1_900);
    } finally {
      await svc.stop();
    }
  });

  it('hands the requester budget to the handler as its deadline', async () => {
    const subject = uniqueName('test.deadline');
    const svc = await server.serve(subject, z.unknown(), (_req, ctx) => ({ remainingMs: Math.round(ctx.remainingMs()) }));
    try {
      const reply = await client.request(subject, {}, z.strictObject({ remainingMs: uint }), { timeoutMs: 1_500 });
      expect(reply.remainingMs).toBeGreaterThan(500);
      expect(reply.remainingMs).toBeLessThanOrEqual(1_500);
    } finally {
      await svc.stop();
    }
  });

  it('refuses work beyond maxInFlight with QUEUE_FULL, and retries until it fits', async () => {
    const subject = uniqueName('test.bounded');
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const svc = await server.serve(subject, z.unknown(), async () => {
      await gate;
      return 'done';
    }, { maxInFlight: 1 });
    try {
      const first = client.request(subject, {}, z.string(), { timeoutMs: 5_000 });
      await new Promise((r) => setTimeout(r, 100));
      const refused = await client.request(subject, {}, z.string()).catch((e: unknown) => e);
      expect(refused).toMatchObject({ code: 'QUEUE_FULL', retryable: true });
      const retried = client.request(subject, {}, z.string(), { timeoutMs: 5_000, retry: true });
      setTimeout(release, 200);
      await expect(first).resolves.toBe('done');
      await expect(retried).resolves.toBe('done');
    } finally {
      await svc.stop();
    }
  });
});
