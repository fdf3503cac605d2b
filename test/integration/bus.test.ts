// Proves the bus contract against real nats-servers (one, and a three-server
// cluster): CBOR round trips with exact 64-bit integers, typed error replies, INVALID
// for malformed CBOR and wrong shapes, UNAVAILABLE when nobody serves, TIMEOUT at the
// deadline, the deadline header reaching the handler, and QUEUE_FULL at the bound.
//
// In-process dispatch: a Bus that serves an exact subject answers its own requests to
// it without the network hop. A plain NATS subscriber on the same subject (a spy that
// would receive any request that went through the server) and the connection's
// message counter prove no message left the process, while results, typed errors,
// deadlines, QUEUE_FULL and trace parentage are the same as over NATS; a handler's
// NoReply falls back to NATS, where another responder answers.
import type { Subscription } from '@nats-io/transport-node';
import { z } from 'zod';
import { NoReply, connectBus, type Bus } from '@strata/bus';
import { u64, uint } from '@strata/codec';
import { ErrorCode, StrataError } from '@strata/errors';
import { installInMemoryTracing, type InMemoryTracing } from '@strata/tracing/testing';
import { startTopology, topologies, uniqueName, type NatsTopology } from '../harness';

let tracing: InMemoryTracing;
beforeAll(() => {
  // Before any span starts: the bus's tracer binds to the first provider it sees.
  tracing = installInMemoryTracing();
});
afterAll(() => tracing.shutdown());

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
  it('calls beforeAttempt before every attempt, and ends the request with what it throws', async () => {
    const subject = uniqueName('test.guarded');
    let served = 0;
    const svc = await server.serve(subject, z.unknown(), () => {
      served++;
      if (served < 3) throw new StrataError(ErrorCode.UNAVAILABLE, 'not yet');
      return 'done';
    });
    try {
      let checks = 0;
      await expect(client.request(subject, {}, z.string(), { timeoutMs: 5_000, retry: true, beforeAttempt: () => void checks++ })).resolves.toBe('done');
      expect(checks).toBe(3);
      served = 0;
      let allowed = 2;
      const stopped = await client.request(subject, {}, z.string(), { timeoutMs: 5_000, retry: true, beforeAttempt: () => {
        if (allowed-- <= 0) throw new StrataError(ErrorCode.FENCED, 'lease moved');
      } }).catch((e: unknown) => e);
      expect(stopped).toMatchObject({ code: 'FENCED', message: 'lease moved' });
      expect(served).toBe(2);
    } finally {
      await svc.stop();
    }
  });

  describe('in-process dispatch', () => {
    /**
     * Counts the messages the server delivers on `subject`: every request that went
     * over NATS. The spy shares the serving Bus's connection, so its own server knows
     * of it at once (no interest still crossing the cluster), and NATS echoes that
     * connection's own messages back to it.
     */
    async function spyOn(subject: string, on: Bus = server): Promise<{ count(): number; stop(): void }> {
      let seen = 0;
      const sub: Subscription = on.nc.subscribe(subject, {
        callback: () => {
          seen++;
        },
      });
      await on.nc.flush();
      return { count: () => seen, stop: () => sub.unsubscribe() };
    }

    it('answers a request to a subject the same Bus serves without a message on NATS, with the same result as over NATS', async () => {
      // A Bus of its own: nothing else publishes on its connection (a late reply of an
      // earlier test's slow handler would), so its message counter speaks for this test alone.
      const solo = await connectBus({ name: 'test-local', servers: nats.url });
      const subject = uniqueName('test.local.echo');
      const svc = await solo.serve(subject, echoRequest, (req) => ({ id: req.id + 1n, offset: req.offset * 2, data: req.data }));
      const spy = await spyOn(subject, solo);
      try {
        const request = { id: 2n ** 64n - 2n, offset: 2 ** 51, data: new Uint8Array([1, 2, 3]) };
        const sentBefore = solo.nc.stats().outMsgs;
        const local = await solo.request(subject, request, echoRequest);
        expect(solo.nc.stats().outMsgs).toBe(sentBefore);
        expect(spy.count()).toBe(0);
        const remote = await client.request(subject, request, echoRequest);
        // The spy sees a request that does go through the server: it would have caught a local one.
        expect(spy.count()).toBe(1);
        expect(local).toEqual(remote);
        expect(local.id).toBe(2n ** 64n - 1n);
      } finally {
        spy.stop();
        await svc.stop();
        await solo.close();
      }
    });

    it('throws the same typed error locally as over NATS, INVALID for a wrong shape included', async () => {
      const subject = uniqueName('test.local.fail');
      const svc = await server.serve(subject, z.strictObject({ vdisk: uint }), () => {
        throw new StrataError(ErrorCode.NOT_OWNER, 'vdisk 7 is owned by n2', { hint: 'n2' });
      });
      const spy = await spyOn(subject);
      try {
        for (const request of [{ vdisk: 7 }, { vdisk: -1 }]) {
          const local = await server.request(subject, request, z.unknown()).catch((e: unknown) => e);
          const remote = await client.request(subject, request, z.unknown()).catch((e: unknown) => e);
          expect(local).toBeInstanceOf(StrataError);
          expect(remote).toBeInstanceOf(StrataError);
          const fields = (e: unknown): unknown => {
            const err = e as StrataError;
            return { code: err.code, message: err.message, hint: err.hint, retryable: err.retryable };
          };
          expect(fields(local)).toEqual(fields(remote));
        }
        expect((await server.request(subject, { vdisk: 7 }, z.unknown()).catch((e: unknown) => e)) as StrataError).toMatchObject({ code: 'NOT_OWNER', hint: 'n2' });
        expect(spy.count()).toBe(2);
      } finally {
        spy.stop();
        await svc.stop();
      }
    });

    it('goes over NATS when local dispatch is off, and after the service stops', async () => {
      const subject = uniqueName('test.local.off');
      const plain = await connectBus({ name: 'test-no-local', servers: nats.url, localDispatch: false });
      const svc = await plain.serve(subject, z.unknown(), () => 'served');
      const spy = await spyOn(subject, plain);
      try {
        await expect(plain.request(subject, {}, z.string())).resolves.toBe('served');
        expect(spy.count()).toBe(1);
        // A stopped service leaves the local table: the request now finds nobody.
        const mine = uniqueName('test.local.stopped');
        const stopped = await server.serve(mine, z.unknown(), () => 'here');
        await expect(server.request(mine, {}, z.string())).resolves.toBe('here');
        await stopped.stop();
        await expect(server.request(mine, {}, z.string(), { timeoutMs: 300 })).rejects.toMatchObject({ code: 'UNAVAILABLE' });
      } finally {
        spy.stop();
        await svc.stop();
        await plain.close();
      }
    });

    it('honours the deadline: the handler gets the budget, and a slow handler gives TIMEOUT within it', async () => {
      const subject = uniqueName('test.local.deadline');
      const svc = await server.serve(subject, z.strictObject({ sleepMs: uint }), async (req, ctx) => {
        const remainingMs = Math.round(ctx.remainingMs());
        await new Promise((resolve) => setTimeout(resolve, req.sleepMs));
        return { remainingMs };
      });
      const spy = await spyOn(subject);
      try {
        const reply = await server.request(subject, { sleepMs: 0 }, z.strictObject({ remainingMs: uint }), { timeoutMs: 1_500 });
        expect(reply.remainingMs).toBeGreaterThan(1_000);
        expect(reply.remainingMs).toBeLessThanOrEqual(1_500);
        const started = Date.now();
        const slow = await server.request(subject, { sleepMs: 2_000 }, z.unknown(), { timeoutMs: 300 }).catch((e: unknown) => e);
        expect(slow).toBeInstanceOf(StrataError);
        expect(slow).toMatchObject({ code: 'TIMEOUT' });
        // The same words as a TIMEOUT over NATS: the attempt's budget in whole milliseconds,
        // taken when the attempt starts (a few ms below 300 on a busy machine; once, 298).
        expect((slow as Error).message).toMatch(new RegExp(`^no reply on ${subject.replace(/\./g, '\\.')} within (29\\d|300) ms$`));
        expect(Date.now() - started).toBeGreaterThanOrEqual(290);
        expect(Date.now() - started).toBeLessThan(1_000);
        expect(spy.count()).toBe(0);
      } finally {
        spy.stop();
        await svc.stop();
      }
    });

    it('refuses local work beyond maxInFlight with QUEUE_FULL, counting local and NATS requests together', async () => {
      const subject = uniqueName('test.local.bounded');
      let release: () => void = () => undefined;
      const gate = new Promise<void>((resolve) => (release = resolve));
      const svc = await server.serve(
        subject,
        z.unknown(),
        async () => {
          await gate;
          return 'done';
        },
        { maxInFlight: 1 },
      );
      const spy = await spyOn(subject);
      try {
        const first = server.request(subject, {}, z.string(), { timeoutMs: 5_000 });
        const refusedLocal = await server.request(subject, {}, z.string()).catch((e: unknown) => e);
        expect(refusedLocal).toBeInstanceOf(StrataError);
        expect(refusedLocal).toMatchObject({ code: 'QUEUE_FULL', retryable: true });
        expect((refusedLocal as Error).message).toBe(`${subject}: 1 requests already in flight`);
        // The bound is one count: a request over NATS is refused while the local one runs.
        const refusedRemote = await client.request(subject, {}, z.string()).catch((e: unknown) => e);
        expect(refusedRemote).toMatchObject({ code: 'QUEUE_FULL' });
        const retried = server.request(subject, {}, z.string(), { timeoutMs: 5_000, retry: true });
        setTimeout(release, 200);
        await expect(first).resolves.toBe('done');
        await expect(retried).resolves.toBe('done');
        expect(spy.count()).toBe(1);
      } finally {
        spy.stop();
        await svc.stop();
      }
    });

    it('falls back to NATS when the local handler does not answer (NoReply), where another responder does', async () => {
      const subject = uniqueName('test.local.noreply');
      let localCalls = 0;
      const follower = await server.serve(subject, z.unknown(), () => {
        localCalls++;
        throw new NoReply('not the leader');
      });
      const leader = await client.serve(subject, z.unknown(), () => 'from the leader');
      try {
        // A retried attempt covers the leader's subscription still crossing the cluster.
        await expect(server.request(subject, {}, z.string(), { timeoutMs: 5_000, attemptTimeoutMs: 1_000, retry: true })).resolves.toBe('from the leader');
        // Once in-process, then (silently again) as one of the NATS subscribers.
        expect(localCalls).toBeGreaterThanOrEqual(1);
        await leader.stop();
        // Nobody else answers: the requester times out, as over NATS.
        await expect(server.request(subject, {}, z.string(), { timeoutMs: 400 })).rejects.toMatchObject({ code: 'TIMEOUT' });
      } finally {
        await leader.stop();
        await follower.stop();
      }
    });

    it('makes the handler span a child of the request span, marked strata.local, in the same trace', async () => {
      const subject = uniqueName('test.local.trace');
      const svc = await server.serve(subject, z.unknown(), () => 'traced');
      try {
        tracing.reset();
        await server.request(subject, {}, z.string());
        await client.request(subject, {}, z.string());
        const spans = tracing.exporter.getFinishedSpans();
        const requests = spans.filter((s) => s.name === `request ${subject}`);
        const handles = spans.filter((s) => s.name === `handle ${subject}`);
        expect(requests).toHaveLength(2);
        expect(handles).toHaveLength(2);
        const [localRequest, remoteRequest] = requests;
        const childOf = (parent: (typeof spans)[number] | undefined) => handles.find((h) => h.parentSpanContext?.spanId === parent?.spanContext().spanId);
        const localHandle = childOf(localRequest);
        const remoteHandle = childOf(remoteRequest);
        expect(localHandle?.spanContext().traceId).toBe(localRequest?.spanContext().traceId);
        expect(localHandle?.attributes['strata.local']).toBe(true);
        expect(localRequest?.attributes['strata.local']).toBe(true);
        expect(localHandle?.attributes['messaging.destination.name']).toBe(subject);
        // Over NATS, the same parentage, without the marker.
        expect(remoteHandle?.spanContext().traceId).toBe(remoteRequest?.spanContext().traceId);
        expect(remoteHandle?.attributes['strata.local']).toBeUndefined();
        expect(remoteRequest?.attributes['strata.local']).toBeUndefined();
      } finally {
        await svc.stop();
      }
    });
  });
});
