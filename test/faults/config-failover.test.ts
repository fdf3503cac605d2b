// Fault tests of the config service with real processes:
//  - kill -9 of the leader: another replica leads with a higher epoch, and its
//    failure detector carries on (a node that goes silent afterwards is declared
//    dead, under the new epoch);
//  - the leader paused with SIGSTOP until its lease is lost, then resumed: nothing
//    it could send is committed (every cfg entry after the new leader's takeover
//    marker carries the new epoch) and it steps down;
//  - a successor that takes the lease while cfg refuses writes (its takeover marker
//    cannot be written) lets the lease go and tries again, so it leads once cfg
//    takes writes; it does not sit on a lease it does not use;
//  - one of three nats-servers killed -9 (the one leading the cfg stream): config
//    reads and writes still succeed.
import { jetstreamManager } from '@nats-io/jetstream';
import { connectBus, type Bus } from '@strata/bus';
import { isStrataError } from '@strata/errors';
import { openBucket } from '@strata/kv';
import { Heartbeater } from '@strata/liveness';
import { buckets, cfgEntry, heartbeat, keys } from '@strata/proto';
import {
  ConfigClient,
  readEvents,
  sleep,
  startConfigReplica,
  startTopology,
  testTimings,
  waitFor,
  waitForLeader,
  type ActorProcess,
  type NatsTopology,
} from '../harness';
import { isUnavailable } from '../harness/verify';

async function setup(kind: 'single' | 'cluster', replicaCount: number): Promise<{ nats: NatsTopology; replicas: Map<string, ActorProcess>; bus: Bus; client: ConfigClient }> {
  const nats = await startTopology(kind);
  const replicas = new Map<string, ActorProcess>();
  for (let i = 1; i <= replicaCount; i++) replicas.set(`config-${i}`, startConfigReplica(nats.url, `config-${i}`));
  const bus = await connectBus({ name: 'failover-test', servers: nats.url });
  const client = new ConfigClient(bus, 10_000);
  try {
    await waitForLeader(client);
  } catch (err) {
    await teardown({ nats, replicas, bus });
    throw err;
  }
  return { nats, replicas, bus, client };
}

async function teardown(env: { nats: NatsTopology; replicas: Map<string, ActorProcess>; bus: Bus } | undefined): Promise<void> {
  if (env === undefined) return;
  await env.bus.close();
  await Promise.all([...env.replicas.values()].map((r) => r.stop()));
  await env.nats.stop();
}

describe('config leader failover', () => {
  let env: Awaited<ReturnType<typeof setup>> | undefined;
  afterEach(async () => {
    await teardown(env);
    env = undefined;
  });

  it('elects another replica with a higher epoch after kill -9, and its failure detector carries on', async () => {
    env = await setup('single', 3);
    const { client, replicas, bus } = env;
    const node = await client.create({ kind: 'node', name: 'survivor', spec: {} });
    const hb = new Heartbeater(await openBucket(bus.nc, buckets.hb, heartbeat), node.id, { intervalMs: testTimings.heartbeatIntervalMs });
    await hb.start();
    await waitFor('the node to be alive', 10_000, async () => {
      const n = await client.get({ kind: 'node', id: node.id });
      return n.kind === 'node' && n.status.liveness === 'alive';
    });

    const before = await waitForLeader(client);
    replicas.get(before.leader)!.signal('SIGKILL');
    const after = await waitForLeader(client, 20_000, before.leader);
    expect(after.epoch).toBeGreaterThan(before.epoch);

    // The new leader still detects failures: the node goes silent now.
    hb.stop();
    // Right after the failover a get may find no replica answering yet: that is "not yet".
    await waitFor(
      'the node to be declared dead by the new leader',
      15_000,
      async () => {
        const n = await client.get({ kind: 'node', id: node.id });
        return n.kind === 'node' && n.status.liveness === 'dead';
      },
      { retryIf: isUnavailable },
    );
    const dead = (await readEvents(bus.nc)).filter((e) => e.id === node.id && e.type === 'node.dead');
    expect(dead).toHaveLength(1);
    expect(dead[0]!.epoch).toBe(after.epoch);
    // And it takes writes.
    await expect(client.create({ kind: 'pool', name: 'after-failover', spec: {} })).resolves.toMatchObject({ epoch: after.epoch });
  });

  it('a leader paused past its lease and resumed cannot commit a change', async () => {
    env = await setup('single', 2);
    const { client, replicas, bus } = env;
    const before = await waitForLeader(client);
    const paused = replicas.get(before.leader)!;
    paused.signal('SIGSTOP');
    try {
      const after = await waitForLeader(client, 20_000, before.leader);
      expect(after.epoch).toBeGreaterThan(before.epoch);
      // This request reaches both subscribers; the paused one has it queued, and will
      // see it on waking with a lease it no longer holds.
      await client.create({ kind: 'pool', name: 'during-pause', spec: {} });
    } finally {
      paused.signal('SIGCONT');
    }
    // Give the resumed replica time to act on everything it had queued.
    await sleep(2 * testTimings.leaseTtlMs);
    await paused.waitForOutput(/stepped down as config leader|lease lost/, 10_000);

    const now = await waitForLeader(client);
    expect(now.leader).not.toBe(before.leader);
    const cfg = await openBucket(bus.nc, buckets.cfg, cfgEntry, { history: 8 });
    const history = [];
    for await (const e of await cfg.kv.history({ key: '>' })) {
      if (e.operation === 'PUT') history.push(cfg.decodeEntry(e));
    }
    const marker = history.find((e) => e.key === keys.cfgLeader && e.value.epoch === now.epoch);
    expect(marker).toBeDefined();
    const later = history.filter((e) => e.revision > marker!.revision);
    expect(later.length).toBeGreaterThan(0);
    for (const e of later) expect(e.value.epoch).toBe(now.epoch);
    expect(paused.child.exitCode).toBeNull();
  });

  it('a replica that takes the lease but cannot write its takeover marker lets the lease go, and leads once it can', async () => {
    env = await setup('single', 2);
    const { client, replicas, bus } = env;
    const before = await waitForLeader(client);
    const [successorName, successor] = [...replicas].find(([name]) => name !== before.leader)!;
    // cfg refuses every write (as JetStream does while it elects leaders after a
    // partition heals): a stream at its message limit that discards new messages.
    const jsm = await jetstreamManager(bus.nc);
    const info = await jsm.streams.info('KV_cfg');
    await jsm.streams.update('KV_cfg', { ...info.config, max_msgs: info.state.messages });
    try {
      replicas.get(before.leader)!.signal('SIGKILL');
      await successor.waitForOutput(/leadership abandoned before it began/, 20_000);
      // It keeps trying: the lease is let go and taken again, more than once.
      await waitFor('a second abandoned attempt', 10_000, () => (successor.output().match(/leadership abandoned before it began/g) ?? []).length >= 2);
    } finally {
      await jsm.streams.update('KV_cfg', { ...info.config, max_msgs: -1 });
    }
    const after = await waitForLeader(client, 20_000, before.leader);
    expect({ leader: after.leader, newer: after.epoch > before.epoch }).toEqual({ leader: successorName, newer: true });
    await expect(client.create({ kind: 'pool', name: 'after-marker', spec: {} })).resolves.toMatchObject({ epoch: after.epoch });
  });

  it('keeps serving reads and writes with one of three nats-servers killed -9', async () => {
    env = await setup('cluster', 2);
    const { client, nats, bus } = env;
    await client.create({ kind: 'pool', name: 'before-kill', spec: {} });
    // The hardest server to lose: the one leading the cfg bucket's stream, so that
    // writes in flight time out while the stream elects a new leader.
    const jsm = await jetstreamManager(bus.nc);
    const streamLeader = (await jsm.streams.info('KV_cfg')).cluster?.leader;
    const victim = nats.servers.find((s) => s.name === streamLeader);
    expect(victim).toBeDefined();
    victim!.signal('SIGKILL');
    await victim!.exited();
    for (let i = 0; i < 10; i++) {
      const name = `after-kill-${i}`;
      // A careful client: a write that timed out may have been applied, so it checks.
      await waitFor(`create ${name}`, 30_000, async () => {
        try {
          await client.create({ kind: 'pool', name, spec: {} });
          return true;
        } catch (err) {
          if (isStrataError(err, 'CONFLICT')) return true;
          if (isStrataError(err) && err.retryable) return false;
          throw err;
        }
      });
      await expect(client.get({ kind: 'pool', name })).resolves.toMatchObject({ name });
    }
    const names = (await client.list('pool')).map((p) => p.name);
    expect(names).toEqual(expect.arrayContaining(['before-kill', ...Array.from({ length: 10 }, (_, i) => `after-kill-${i}`)]));
  });
});
