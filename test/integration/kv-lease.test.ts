// KV, fences and leases against real nats-servers (one, and a three-server cluster):
// compare-and-set conflicts, a watch cache that is ready on empty and full buckets,
// the stream fence that stops a deposed writer, and an election between two leases
// where exactly one holds at a time, epochs only grow, and a holder whose lease is
// taken learns it at its next renewal. In the cluster, a watch cache keeps following
// its bucket after the server its connection used is killed -9.
import { jetstreamManager } from '@nats-io/jetstream';
import { z } from 'zod';
import { connectBus, type Bus } from '@strata/bus';
import { uint } from '@strata/codec';
import { openBucket, StreamFence, WatchCache } from '@strata/kv';
import { Lease, leaseRecord } from '@strata/lease';
import { connectClient, startTopology, topologies, uniqueName, waitFor, type NatsTopology } from '../harness';
import { isUnavailable } from '../harness/verify';

const counter = z.strictObject({ n: uint });

describe.each(topologies)('kv and leases against %s nats', (kind) => {
  let nats: NatsTopology;
  let bus: Bus;

  beforeAll(async () => {
    nats = await startTopology(kind);
    bus = await connectBus({ name: 'kv-test', servers: nats.url });
  });
  afterAll(async () => {
    await bus?.close();
    await nats?.stop();
  });

  it('replicates buckets like the cluster (R1 on one server, R3 on three) and reads from the stream leader', async () => {
    const bucket = await openBucket(bus.nc, uniqueName('rep'), counter);
    const status = await bucket.kv.status();
    expect(status.streamInfo.config.num_replicas).toBe(kind === 'single' ? 1 : 3);
    // Reads are answered by the stream leader, never by a replica that may lag behind.
    expect(status.streamInfo.config.allow_direct).toBe(false);
  });

  it('refuses a create of an existing key and an update at a stale revision with CONFLICT', async () => {
    const bucket = await openBucket(bus.nc, uniqueName('cas'), counter);
    const r1 = await bucket.create('k', { n: 1 });
    await expect(bucket.create('k', { n: 2 })).rejects.toMatchObject({ code: 'CONFLICT' });
    const r2 = await bucket.update('k', { n: 2 }, r1);
    await expect(bucket.update('k', { n: 3 }, r1)).rejects.toMatchObject({ code: 'CONFLICT' });
    expect(await bucket.get('k')).toEqual({ key: 'k', value: { n: 2 }, revision: r2 });
    await expect(bucket.put('k', { n: -1 } as never)).rejects.toMatchObject({ code: 'INVALID' });
    expect((await bucket.get('k'))?.value).toEqual({ n: 2 });
  });

  it('fills a watch cache before ready (empty or not) and follows later changes', async () => {
    const empty = await openBucket(bus.nc, uniqueName('empty'), counter);
    const emptyCache = await WatchCache.start(empty);
    await expect(Promise.race([emptyCache.ready.then(() => 'ready'), new Promise((r) => setTimeout(() => r('stuck'), 3_000))])).resolves.toBe('ready');
    emptyCache.stop();

    const full = await openBucket(bus.nc, uniqueName('full'), counter);
    for (let i = 0; i < 50; i++) await full.put(`k${i}`, { n: i });
    await full.delete('k7');
    const cache = await WatchCache.start(full);
    await cache.ready;
    expect(cache.size).toBe(49);
    expect(cache.get('k7')).toBeUndefined();
    expect(cache.get('k49')?.value).toEqual({ n: 49 });
    await full.put('k50', { n: 50 });
    await waitFor('the cache to see k50', 5_000, () => cache.get('k50') !== undefined);
    cache.stop();
  });

  it("catches a stalled watch up from the bucket itself: catchUp(key) finds the newer revision and resumes the watch", async () => {
    const bucket = await openBucket(bus.nc, uniqueName('stall'), counter);
    await bucket.put('node', { n: 1 });
    const cache = await WatchCache.start(bucket);
    await cache.ready;
    expect(await cache.catchUp('node')).toBe(false);
    // The watch's consumer gone while the connection stays up: what a cut-off server leaves.
    const jsm = await jetstreamManager(bus.nc);
    for await (const c of jsm.consumers.list(bucket.streamName)) await jsm.consumers.delete(bucket.streamName, c.name);
    await bucket.put('node', { n: 2 });
    await new Promise((r) => setTimeout(r, 1_000));
    expect(cache.get('node')?.value).toEqual({ n: 1 });
    expect(await cache.catchUp('node')).toBe(true);
    await waitFor('the resumed watch to deliver the newer revision', 5_000, () => cache.get('node')?.value.n === 2);
    await bucket.put('node', { n: 3 });
    await waitFor('the resumed watch to follow later changes', 5_000, () => cache.get('node')?.value.n === 3);
    cache.stop();
  });

  it('fences a writer as soon as anyone else writes to the bucket', async () => {
    const bucket = await openBucket(bus.nc, uniqueName('fence'), counter);
    const a = await StreamFence.take(bucket);
    await a.put('x', { n: 1 });
    await a.put('y', { n: 2 });
    const b = await StreamFence.take(bucket);
    await b.put('marker', { n: 99 });
    await expect(a.put('x', { n: 3 })).rejects.toMatchObject({ code: 'FENCED' });
    await expect(a.delete('y')).rejects.toMatchObject({ code: 'FENCED' });
    expect((await bucket.get('x'))?.value).toEqual({ n: 1 });
    expect((await bucket.get('y'))?.value).toEqual({ n: 2 });
    await expect(b.put('x', { n: 4 })).resolves.toBeGreaterThan(0);
  });

  it('elects one holder at a time with growing epochs, and tells a deposed holder', async () => {
    const own = await openBucket(bus.nc, uniqueName('own'), leaseRecord);
    const key = 'role.test';
    const events: string[] = [];
    const make = (holder: string): Lease =>
      new Lease(own, {
        key,
        holder,
        ttlMs: 600,
        onAcquired: (epoch) => events.push(`${holder} +${epoch}`),
        onLost: (epoch) => events.push(`${holder} -${epoch}`),
      });
    const a = make('a');
    const b = make('b');
    a.start();
    await waitFor('a to hold the lease', 5_000, () => a.isHeld());
    b.start();
    // b waits while a renews.
    await new Promise((r) => setTimeout(r, 1_500));
    expect(a.isHeld()).toBe(true);
    expect(b.isHeld()).toBe(false);

    // a stops renewing without releasing (as if paused): b takes over after the TTL.
    await a.stop({ release: false });
    await waitFor('b to take over', 5_000, () => b.isHeld());
    expect(b.epoch).toBe(2);

    // Someone overwrites the record: b learns it lost the lease at its next renewal.
    const current = await own.get(key);
    await own.update(key, { holder: 'intruder', epoch: 3, renewedAtMs: Date.now(), ttlMs: 600 }, current!.revision);
    await waitFor('b to notice', 5_000, () => !b.isHeld());
    await b.stop();
    expect(events).toEqual(['a +1', 'a -1', 'b +2', 'b -2']);
  });
});

describe('a watch cache when its server dies', () => {
  let nats: NatsTopology;
  afterAll(async () => {
    await nats?.stop();
  });

  it('follows its bucket again once its connection has moved to another server of the cluster', async () => {
    nats = await startTopology('cluster');
    const [first, second] = nats.servers;
    // The watcher knows only the first server; it learns the others from the cluster.
    const watcherNc = await connectClient(first!.url);
    const writerNc = await connectClient(second!.url);
    try {
      const name = uniqueName('survive');
      const writer = await openBucket(writerNc, name, counter, { replicas: 3 });
      const cache = await WatchCache.start(await openBucket(watcherNc, name, counter, { replicas: 3 }));
      await cache.ready;
      await writer.put('before', { n: 1 });
      await waitFor('the cache to see the first put', 5_000, () => cache.get('before') !== undefined);

      first!.signal('SIGKILL');
      await first!.exited();
      // The bucket takes writes again once the two survivors have a stream leader.
      // UNAVAILABLE (no stream leader yet) is "not yet"; any other failure of the put fails the test.
      await waitFor('a put after the kill', 30_000, () => writer.put('after', { n: 2 }).then(() => true), { intervalMs: 250, retryIf: isUnavailable });
      await waitFor('the cache to see the put after the kill', 20_000, () => cache.get('after')?.value.n === 2, 100);
      cache.stop();
    } finally {
      await watcherNc.close();
      await writerNc.close();
    }
  }, 90_000);
});
