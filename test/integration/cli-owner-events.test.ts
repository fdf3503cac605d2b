// `strata vdisk owner` and `strata events` against real nats-servers (one, and a
// three-server cluster; JetStream, free loopback ports, stopped afterwards): the
// ownership and takeover records written to `own` read back and printed; cluster
// events appended with EventLog (and a few messages that are not events) read back
// with filters and a limit, the read ending promptly even when the stream's tail was
// deleted; and the built CLI run once against a real config replica, so the name
// lookup, the shared connection, the output, --json and the NOT_FOUND error are those
// an operator sees.
// Like every test that starts processes, it needs the build (`npx tsc -b`) first.
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { encode } from '@strata/codec';
import { EventLog, ensureEventStream } from '@strata/events';
import { openBucket } from '@strata/kv';
import { buckets, EventCategory, EventType, keys, streams, subjects, takeoverRecord, vdiskOwnership, type ClusterEvent } from '@strata/proto';
import { eventTypes, formatEvent, formatOwner, ownerJson, readEvents, readOwner } from '../../cli/src/ownership';
import { ConfigClient, connectClient, run, startConfigReplica, startTopology, topologies, waitForLeader, type ActorProcess, type NatsTopology } from '../harness';

jest.setTimeout(30_000);

const GiB = 2 ** 30;
const t0 = Date.UTC(2025, 0, 2, 3, 4, 5, 678);

/** JSON as the CLI prints it (printJson): 64-bit ids as decimal strings. */
const asJson = (v: unknown): unknown => JSON.parse(JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? x.toString() : x)));

describe.each(topologies)('reading ownership and events from JetStream, %s nats', (kind) => {
  let nats: NatsTopology;
  let nc: NatsConnection;

  beforeAll(async () => {
    nats = await startTopology(kind);
    nc = await connectClient(nats.url);
  }, 30_000);

  afterAll(async () => {
    await nc?.close();
    await nats?.stop();
  }, 30_000);

  it('reads nothing, without creating anything, before the bucket and the stream exist', async () => {
    expect(await readOwner(nc, 7n)).toEqual({ ownership: null, takeover: null });
    expect(await readEvents(nc)).toEqual({ events: [], skipped: [] });
    const jsm = await jetstreamManager(nc);
    const names: string[] = [];
    for await (const name of jsm.streams.names()) names.push(name);
    expect(names).toEqual([]);
  });

  it('prints the owner, its epoch and volunteers, and a takeover in progress', async () => {
    const own = await openBucket(nc, buckets.own, vdiskOwnership);
    const takeovers = await openBucket(nc, buckets.own, takeoverRecord);
    await own.put(keys.vdiskOwnership(7n), { owner: 'n2', epoch: 7, volunteers: ['n1', 'n3'], drained: 42 });
    await own.put(keys.vdiskOwnership(8n), { owner: 'n3', epoch: 1 });
    const takeover = {
      vdisk: 7n,
      step: 'replay' as const,
      from: 'n2',
      to: 'n1',
      epoch: 8,
      reason: 'node n2 declared dead',
      startedAtMs: t0,
      attempts: 0,
      excluded: ['n3'],
    };
    await takeovers.put(keys.takeover(7n), takeover);

    const seven = await readOwner(nc, 7n);
    expect(formatOwner(seven)).toEqual(['n2 epoch 7 volunteers n1,n3', 'takeover in progress: n2 -> n1 at epoch 8, step replay (node n2 declared dead)']);
    expect(asJson(ownerJson('v7', 7n, seven))).toEqual({
      vdisk: 'v7',
      id: '7',
      owner: 'n2',
      epoch: 7,
      volunteers: ['n1', 'n3'],
      drained: 42,
      takeover: { ...takeover, vdisk: '7' },
    });

    const eight = await readOwner(nc, 8n);
    expect(formatOwner(eight)).toEqual(['n3 epoch 1 volunteers -']);
    expect(asJson(ownerJson('v8', 8n, eight))).toEqual({ vdisk: 'v8', id: '8', owner: 'n3', epoch: 1, volunteers: [], drained: 0 });

    const nine = await readOwner(nc, 9n);
    expect(formatOwner(nine)).toEqual(['unowned (no I/O yet)']);
    expect(asJson(ownerJson('v9', 9n, nine))).toEqual({ vdisk: 'v9', id: '9', owner: null, epoch: null, volunteers: [], drained: null });

    // A deleted record reads as absent, like one never written.
    await own.delete(keys.vdiskOwnership(8n));
    expect(formatOwner(await readOwner(nc, 8n))).toEqual(['unowned (no I/O yet)']);
  });

  describe('events', () => {
    const created: ClusterEvent = { type: EventType.created, atMs: t0, epoch: 1, kind: 'vdisk', id: 7n, name: 'v7', cause: 'operator', message: 'vdisk v7 created' };
    const dead: ClusterEvent = {
      type: EventType.nodeDead,
      atMs: t0 + 1_000,
      epoch: 1,
      kind: 'node',
      id: 2n,
      name: 'n2',
      incarnation: 3,
      cause: 'failure-detector',
      message: 'node n2 declared dead after 6012 ms of silence',
    };
    const moved7: ClusterEvent = {
      type: EventType.ownerChanged,
      atMs: t0 + 2_000,
      epoch: 1,
      kind: 'vdisk',
      id: 7n,
      name: 'v7',
      owner: 'n1',
      previousOwner: 'n2',
      ownerEpoch: 8,
      cause: 'failover',
      message: 'vdisk v7 moved from n2 to n1',
    };
    const moved8: ClusterEvent = {
      type: EventType.ownerChanged,
      atMs: t0 + 3_000,
      epoch: 1,
      kind: 'vdisk',
      id: 8n,
      name: 'v8',
      owner: 'n3',
      ownerEpoch: 1,
      cause: 'relinquish',
      message: 'vdisk v8 claimed by n3',
    };
    const updated: ClusterEvent = { type: EventType.updated, atMs: t0 + 4_000, epoch: 2, kind: 'vdisk', id: 7n, name: 'v7', cause: 'operator', message: 'vdisk v7 updated' };
    const all = [created, dead, moved7, moved8, updated];

    beforeAll(async () => {
      await ensureEventStream(nc);
      const log = new EventLog(nc);
      const js = jetstream(nc);
      await log.append(created);
      await log.append(dead);
      // Sequence 3: not CBOR; sequence 6: CBOR, but no event.
      await js.publish(subjects.events(EventCategory.cfg), new Uint8Array([0xff]));
      await log.append(moved7);
      await log.append(moved8);
      await js.publish(subjects.events(EventCategory.owner), encode({ type: 'owner.teleported', atMs: t0 }));
      await log.append(updated);
    }, 30_000);

    it('reads every event, oldest first, and reports what does not decode', async () => {
      const read = await readEvents(nc);
      expect(read.events).toEqual(all);
      expect(read.skipped.map((s) => s.seq)).toEqual([3, 6]);
      expect(read.skipped[0]!.error).toMatch(/^INVALID: malformed CBOR/);
      expect(read.skipped[1]!.error).toMatch(/^INVALID: .*type/);
    });

    it('filters by vDisk and by type, and keeps the last N', async () => {
      expect((await readEvents(nc, { filter: { vdisk: 7n } })).events).toEqual([created, moved7, updated]);
      expect((await readEvents(nc, { filter: { type: EventType.ownerChanged } })).events).toEqual([moved7, moved8]);
      expect((await readEvents(nc, { filter: { vdisk: 8n, type: EventType.ownerChanged } })).events).toEqual([moved8]);
      expect((await readEvents(nc, { filter: { vdisk: 9n } })).events).toEqual([]);
      expect((await readEvents(nc, { limit: 2 })).events).toEqual([moved8, updated]);
      expect((await readEvents(nc, { limit: 2, filter: { vdisk: 7n } })).events).toEqual([moved7, updated]);
      expect((await readEvents(nc, { limit: 0 })).events).toEqual([]);
    });

    it('reads back in windows until it has the limit, past messages that do not decode', async () => {
      // Windows of 1, 2, 4 messages back from the end: [7], [5, 6], [1..4].
      const read = await readEvents(nc, { limit: 3, windowSize: 1 });
      expect(read.events).toEqual([moved7, moved8, updated]);
      expect(read.skipped.map((s) => s.seq)).toEqual([3, 6]);
      expect((await readEvents(nc, { limit: 10, windowSize: 2, filter: { type: EventType.ownerChanged } })).events).toEqual([moved7, moved8]);
      expect((await readEvents(nc, { limit: 50, windowSize: 3 })).events).toEqual(all);
    });

    it('prints one line per event, with the ownership fields of owner.changed', () => {
      // The type column is as wide as the longest event type (it grows with new types).
      const type = (t: string): string => t.padEnd(Math.max(...eventTypes.map((x) => x.length)));
      expect(all.map(formatEvent)).toEqual([
        `2025-01-02T03:04:05.678Z ${type('created')} vdisk v7 created`,
        `2025-01-02T03:04:06.678Z ${type('node.dead')} node n2 declared dead after 6012 ms of silence`,
        `2025-01-02T03:04:07.678Z ${type('owner.changed')} vdisk v7 moved from n2 to n1 owner=n1 from=n2 epoch=8 cause=failover`,
        `2025-01-02T03:04:08.678Z ${type('owner.changed')} vdisk v8 claimed by n3 owner=n3 from=- epoch=1 cause=relinquish`,
        `2025-01-02T03:04:09.678Z ${type('updated')} vdisk v7 updated`,
      ]);
    });

    it('ends promptly, and leaves no consumer behind, when the tail of the stream was deleted', async () => {
      const jsm = await jetstreamManager(nc);
      await jsm.streams.deleteMessage(streams.events, 7);
      const started = Date.now();
      expect((await readEvents(nc, { filter: { vdisk: 7n } })).events).toEqual([created, moved7]);
      expect((await readEvents(nc, { limit: 1, windowSize: 1 })).events).toEqual([moved8]);
      expect(Date.now() - started).toBeLessThan(5_000);
      const consumers: unknown[] = [];
      for await (const c of jsm.consumers.list(streams.events)) consumers.push(c);
      expect(consumers).toEqual([]);
    });
  });
});

describe.each(topologies)('the strata CLI against a config replica, %s nats', (kind) => {
  let nats: NatsTopology;
  let replica: ActorProcess | undefined;
  let client: ConfigClient;
  let vdiskId: bigint;

  const strata = (...args: string[]): ReturnType<typeof run> => run(process.execPath, ['cli/dist/main.js', ...args], { env: { NATS_URL: nats.url }, timeoutMs: 20_000 });

  beforeAll(async () => {
    nats = await startTopology(kind);
    replica = startConfigReplica(nats.url, 'config-a');
    client = await ConfigClient.connect(nats.url);
    await waitForLeader(client, 20_000);
    const n1 = await client.create({ kind: 'node', name: 'n1', spec: {} });
    await client.create({ kind: 'disk', name: 'd1', spec: { node: n1.id, path: '/d/1', tier: 'ssd', capacityBytes: 10 * GiB } });
    const c1 = await client.create({ kind: 'container', name: 'c1', spec: { replicationFactor: 1 } });
    vdiskId = (await client.create({ kind: 'vdisk', name: 'v1', spec: { container: c1.id, sizeBytes: GiB } })).id;
  }, 30_000);

  afterAll(async () => {
    await client?.close();
    await replica?.stop();
    await nats?.stop();
  }, 30_000);

  it('prints the owner of a vDisk found by name, its events, and NOT_FOUND for an unknown name', async () => {
    expect(await strata('vdisk', 'owner', 'v1')).toEqual({ code: 0, stdout: 'unowned (no I/O yet)\n', stderr: '' });

    // The record a vdisk-controller writes when it claims the vDisk on a gateway's attach.
    const conn = await connectClient(nats.url);
    try {
      const own = await openBucket(conn, buckets.own, vdiskOwnership);
      await own.put(keys.vdiskOwnership(vdiskId), { owner: 'n1', epoch: 3, volunteers: ['n2'], drained: 0 });
    } finally {
      await conn.close();
    }
    expect(await strata('vdisk', 'owner', 'v1')).toEqual({ code: 0, stdout: 'n1 epoch 3 volunteers n2\n', stderr: '' });
    const json = await strata('--json', 'vdisk', 'owner', 'v1');
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toEqual({ vdisk: 'v1', id: String(vdiskId), owner: 'n1', epoch: 3, volunteers: ['n2'], drained: 0 });

    const missing = await strata('vdisk', 'owner', 'nope');
    expect(missing.code).toBe(1);
    expect(missing.stdout).toBe('');
    expect(missing.stderr).toMatch(/^strata: NOT_FOUND: .*nope/);
    expect((await strata('events', '--vdisk', 'nope')).stderr).toMatch(/^strata: NOT_FOUND: .*nope/);

    // The config service recorded the vDisk's creation.
    const events = await strata('events', '--vdisk', 'v1');
    expect(events.code).toBe(0);
    expect(events.stdout).toMatch(/^\d{4}-\d\d-\d\dT[\d:.]+Z created +\S/);
    expect(events.stdout.trimEnd().split('\n')).toHaveLength(1);
    const eventsJson = await strata('--json', 'events', '--type', 'created', '--limit', '2');
    expect(JSON.parse(eventsJson.stdout)).toEqual([
      expect.objectContaining({ type: 'created', kind: 'container', name: 'c1' }),
      expect.objectContaining({ type: 'created', kind: 'vdisk', name: 'v1', id: String(vdiskId) }),
    ]);

    const badType = await strata('events', '--type', 'owner.stolen');
    expect(badType.code).toBe(2);
    expect(badType.stderr).toMatch(/^strata: events: --type: "owner.stolen" is not one of created, /);
  });
});
