// The configuration service against real nats-servers (one, and a three-server
// cluster), with two replicas as real processes: schema-checked CRUD of every kind,
// referential checks, INVALID errors that name the field and store nothing (checked
// on the cfg stream itself), 64-bit ids, events for every change, watchers, and the
// failure detector declaring a silent node dead within the dead timeout plus one
// heartbeat interval, then seeing it return with a new incarnation.
import { performance } from 'node:perf_hooks';
import { connectBus, type Bus } from '@strata/bus';
import { encode } from '@strata/codec';
import { openBucket, WatchCache, type TypedBucket } from '@strata/kv';
import { Heartbeater } from '@strata/liveness';
import { buckets, cfgEntry, heartbeat, keys, subjects, CfgOp } from '@strata/proto';
import {
  ConfigClient,
  readEvents,
  startConfigReplica,
  startTopology,
  testTimings,
  topologies,
  waitFor,
  waitForLeader,
  type ActorProcess,
  type NatsTopology,
} from '../harness';

const GiB = 2 ** 30;

describe.each(topologies)('config service against %s nats', (kind) => {
  let nats: NatsTopology;
  let replicas: ActorProcess[] = [];
  let bus: Bus;
  let client: ConfigClient;
  let cfg: TypedBucket<typeof cfgEntry>;

  beforeAll(async () => {
    nats = await startTopology(kind);
    replicas = [startConfigReplica(nats.url, 'config-a'), startConfigReplica(nats.url, 'config-b')];
    bus = await connectBus({ name: 'config-test', servers: nats.url });
    client = new ConfigClient(bus, 10_000);
    await waitForLeader(client);
    cfg = await openBucket(bus.nc, buckets.cfg, cfgEntry);
  });

  afterAll(async () => {
    await bus?.close();
    await Promise.all(replicas.map((r) => r.stop()));
    await nats?.stop();
  });

  it('creates, reads, updates and deletes objects of every kind, with references checked', async () => {
    const n1 = await client.create({ kind: 'node', name: 'n1', spec: { address: '127.0.0.1' } });
    const n2 = await client.create({ kind: 'node', name: 'n2', spec: {} });
    expect(n1.kind === 'node' && n1.status.liveness).toBe('unknown');
    const pool = await client.create({ kind: 'pool', name: 'p1', spec: {} });
    await client.create({ kind: 'disk', name: 'd1', spec: { node: n1.id, path: '/d/1', tier: 'ssd', capacityBytes: 100 * GiB, pool: pool.id } });
    // RF 2 needs two nodes with disks in the pool: there is one so far.
    await expect(client.create({ kind: 'container', name: 'c1', spec: { replicationFactor: 2, pool: pool.id } })).rejects.toMatchObject({
      code: 'INVALID',
      message: expect.stringMatching(/^spec\.replicationFactor: 2 is more than the 1 node with disks/),
    });
    await client.create({ kind: 'disk', name: 'd2', spec: { node: n2.id, path: '/d/2', tier: 'hdd', capacityBytes: 2 * GiB, pool: pool.id } });
    const c1 = await client.create({ kind: 'container', name: 'c1', spec: { replicationFactor: 2, pool: pool.id } });
    expect(c1.kind === 'container' && c1.spec).toMatchObject({ replicationFactor: 2, dedup: 'off', tierOrder: ['ssd', 'hdd'] });
    const v1 = await client.create({ kind: 'vdisk', name: 'v1', spec: { container: c1.id, sizeBytes: GiB } });
    expect(v1.kind === 'vdisk' && v1.spec).toMatchObject({ container: c1.id, sizeBytes: GiB, blockSizeBytes: 2 ** 20, shared: false, qos: { priority: 'normal', weight: 1 } });
    const host = await client.create({ kind: 'host', name: 'h1', spec: { node: n1.id, cpuCount: 16, memoryBytes: 64 * GiB } });
    const vm = await client.create({ kind: 'vm', name: 'vm1', spec: { host: host.id, cpuCount: 2, memoryBytes: 4 * GiB, vdisks: [v1.id] } });

    expect(await client.get({ kind: 'vdisk', name: 'v1' })).toEqual(v1);
    expect((await client.list('vdisk')).map((v) => v.name)).toEqual(['v1']);

    // Growing a vDisk is fine; shrinking would lose data; a stale revision is a conflict.
    const grown = await client.update({ kind: 'vdisk', name: 'v1', spec: { container: c1.id, sizeBytes: 2 * GiB }, revision: v1.revision });
    expect(grown.kind === 'vdisk' && grown.spec.sizeBytes).toBe(2 * GiB);
    await expect(client.update({ kind: 'vdisk', name: 'v1', spec: { container: c1.id, sizeBytes: GiB } })).rejects.toMatchObject({ code: 'INVALID', message: expect.stringMatching(/^spec\.sizeBytes: cannot shrink/) });
    await expect(client.update({ kind: 'vdisk', name: 'v1', spec: { container: c1.id, sizeBytes: 3 * GiB }, revision: v1.revision })).rejects.toMatchObject({ code: 'CONFLICT' });

    // Nothing in use can be deleted; names are unique per kind.
    await expect(client.delete('container', 'c1')).rejects.toMatchObject({ code: 'CONFLICT', message: 'container c1 is still used by vdisk v1' });
    await expect(client.delete('vdisk', 'v1')).rejects.toMatchObject({ code: 'CONFLICT', message: 'vdisk v1 is still used by vm vm1' });
    await expect(client.create({ kind: 'node', name: 'n1', spec: {} })).rejects.toMatchObject({ code: 'CONFLICT' });
    await client.delete('vm', vm.name);
    await client.delete('vdisk', 'v1');
    await client.delete('container', 'c1');
    await expect(client.get({ kind: 'vdisk', name: 'v1' })).rejects.toMatchObject({ code: 'NOT_FOUND' });

    // Every id is distinct, whatever its kind.
    const ids = [n1, n2, pool, c1, v1, host, vm].map((o) => o.id);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('rejects invalid input with INVALID naming the field, and stores nothing', async () => {
    const container = await client.create({ kind: 'container', name: 'cv', spec: { replicationFactor: 1 } });
    const before = await cfg.lastSequence();
    const cases: Array<[unknown, RegExp]> = [
      [{ kind: 'vdisk', name: 'x', spec: { container: container.id, sizeBytes: GiB, colour: 'red' } }, /^spec: unknown field colour/],
      [{ kind: 'vdisk', name: 'x', spec: { container: container.id, sizeBytes: 'big' } }, /^spec\.sizeBytes: /],
      [{ kind: 'vdisk', name: 'x', spec: { container: container.id, sizeBytes: -512 } }, /^spec\.sizeBytes: /],
      [{ kind: 'vdisk', name: 'x', spec: { container: container.id, sizeBytes: 1000 } }, /^spec\.sizeBytes: must be a positive multiple of 512 bytes/],
      [{ kind: 'vdisk', name: 'x', spec: { container: 999_999_999_999n, sizeBytes: GiB } }, /^spec\.container: container 999999999999 does not exist/],
      [{ kind: 'vdisk', name: 'Bad Name', spec: { container: container.id, sizeBytes: GiB } }, /^name: /],
      [{ kind: 'gadget', name: 'x', spec: {} }, /^kind: /],
      [{ kind: 'vdisk', name: 'x', spec: { container: container.id, sizeBytes: GiB }, extra: 1 }, /unknown field extra/],
      [{ kind: 'vdisk', name: 'x', spec: { container: container.id, sizeBytes: GiB, qos: { priority: 'urgent' } } }, /^spec\.qos\.priority: /],
      [{ kind: 'vdisk', name: 'x', spec: { container: container.id, sizeBytes: GiB, qos: { weight: 0 } } }, /^spec\.qos\.weight: must be between 1 and 1000/],
      [{ kind: 'vdisk', name: 'x', spec: { container: container.id, sizeBytes: GiB, qos: { iopsCap: 0 } } }, /^spec\.qos\.iopsCap: must be from 1 to/],
      [{ kind: 'vdisk', name: 'x', spec: { container: container.id, sizeBytes: GiB, qos: { iopsCap: 100, reservedIops: 200 } } }, /^spec\.qos\.reservedIops: must not exceed iopsCap/],
      [{ kind: 'vdisk', name: 'x', spec: { container: container.id, sizeBytes: GiB, qos: { burstMs: 500 } } }, /^spec\.qos\.burstMs: applies to caps/],
      [{ kind: 'vdisk', name: 'x', spec: { container: container.id, sizeBytes: GiB, qos: { bandwidthCapBytesPerSec: 100 } } }, /^spec\.qos\.bandwidthCapBytesPerSec: must be at least 4096/],
    ];
    for (const [request, message] of cases) {
      const err = await bus.request(subjects.cfg(CfgOp.create), request, cfgEntry).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'INVALID' });
      expect((err as Error).message).toMatch(message);
    }
    for (const junk of [new Uint8Array([0xff]), new Uint8Array([0xa1, 0x61]), new Uint8Array([0x9f, 0x01]), encode('just a string')]) {
      const reply = (await bus.requestRaw(subjects.cfg(CfgOp.create), junk)) as { error?: { code: string; message: string } };
      expect(reply.error?.code).toBe('INVALID');
    }
    // Not one message reached the cfg stream.
    expect(await cfg.lastSequence()).toBe(before);
    expect((await client.list('vdisk')).map((v) => v.name)).not.toContain('x');
  });

  it('publishes every change as an event and shows it to watchers of the cfg bucket', async () => {
    const watcher = await WatchCache.start(cfg);
    await watcher.ready;
    try {
      const created = await client.create({ kind: 'pool', name: 'watched', spec: { description: 'for the watcher' } });
      await waitFor('the watcher to see the new pool', 5_000, () => watcher.get(keys.object('pool', created.id)) !== undefined);
      await client.update({ kind: 'pool', name: 'watched', spec: { description: 'changed' } });
      await client.delete('pool', 'watched');
      await waitFor('the watcher to see the delete', 5_000, () => watcher.get(keys.object('pool', created.id)) === undefined);
      const events = await waitFor('three events for the pool', 5_000, async () => {
        const mine = (await readEvents(bus.nc)).filter((e) => e.id === created.id);
        return mine.length >= 3 ? mine : false;
      });
      expect(events.map((e) => e.type)).toEqual(['created', 'updated', 'deleted']);
      expect(events.every((e) => e.cause === 'operator' && e.name === 'watched' && e.epoch >= 1)).toBe(true);
    } finally {
      watcher.stop();
    }
  });

  it('declares a silent node dead within the dead timeout plus one interval, then sees it return with a new incarnation', async () => {
    const node = await client.create({ kind: 'node', name: 'hb-node', spec: {} });
    const hb = await openBucket(bus.nc, buckets.hb, heartbeat);
    const first = new Heartbeater(hb, node.id, { intervalMs: testTimings.heartbeatIntervalMs });
    await first.start();
    const alive = await waitFor('the node to be alive', 10_000, async () => {
      const n = await client.get({ kind: 'node', id: node.id });
      return n.kind === 'node' && n.status.liveness === 'alive' ? n : false;
    });
    expect(alive.kind === 'node' && alive.status.incarnation).toBe(first.incarnation);

    first.stop();
    const stoppedAt = performance.now();
    await waitFor('the node to be declared dead', 10_000, async () => {
      const n = await client.get({ kind: 'node', id: node.id });
      return n.kind === 'node' && n.status.liveness === 'dead';
    }, 20);
    const silentMs = performance.now() - stoppedAt;
    expect(silentMs).toBeLessThanOrEqual(testTimings.deadTimeoutMs + testTimings.heartbeatIntervalMs);

    const second = new Heartbeater(hb, node.id, { intervalMs: testTimings.heartbeatIntervalMs });
    await second.start();
    try {
      expect(second.incarnation).toBeGreaterThan(first.incarnation);
      await waitFor('the node to be alive again', 10_000, async () => {
        const n = await client.get({ kind: 'node', id: node.id });
        return n.kind === 'node' && n.status.liveness === 'alive' && n.status.incarnation === second.incarnation;
      });
      const events = (await readEvents(bus.nc)).filter((e) => e.id === node.id).map((e) => [e.type, e.incarnation]);
      expect(events).toEqual([
        ['created', undefined],
        ['node.alive', first.incarnation],
        ['node.dead', first.incarnation],
        ['node.alive', second.incarnation],
      ]);
    } finally {
      second.stop();
    }
  });
});
