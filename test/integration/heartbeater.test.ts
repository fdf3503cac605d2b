// A node's heartbeater against a real nats-server: when its config watch has stalled
// (the watch's consumer gone while the connection stays up, as a cut-off server leaves
// it), it still learns from the config bucket itself that it was declared dead, and
// rejoins with a new incarnation. Without that check, a node cut off from the cluster
// and reconnected beat on with its old incarnation, which the failure detector never
// takes as alive again (the multi-host test once waited 30 s for it in vain). The
// control heartbeater, with the check turned off, stays unaware.
import { jetstreamManager } from '@nats-io/jetstream';
import { openBucket, WatchCache, type TypedBucket } from '@strata/kv';
import { Heartbeater } from '@strata/liveness';
import { cfgEntry, heartbeat, keys, type CfgEntry } from '@strata/proto';
import { connectClient, startTopology, uniqueName, waitFor, type NatsTopology } from '../harness';
import type { NatsConnection } from '@nats-io/transport-node';

const NODE = 7n;
const nodeRecord = (liveness: 'alive' | 'dead', incarnation: number): CfgEntry => ({
  kind: 'node',
  id: NODE,
  name: 'n7',
  spec: {},
  status: { liveness, incarnation, changedAtMs: Date.now() },
  createdAtMs: 0,
  updatedAtMs: Date.now(),
  epoch: 1,
});

describe('a heartbeater whose config watch has stalled', () => {
  let nats: NatsTopology;
  let nc: NatsConnection;
  beforeAll(async () => {
    nats = await startTopology('single');
    nc = await connectClient(nats.url);
  });
  afterAll(async () => {
    await nc?.close();
    await nats?.stop();
  });

  /** A heartbeater following its node's record through a watch whose consumer is then deleted; the record then says dead. */
  async function declaredDeadBehindAStalledWatch(recordCheckEveryBeats: number): Promise<{ beater: Heartbeater; deadWith: number[]; cache: WatchCache<CfgEntry> }> {
    const cfg: TypedBucket<typeof cfgEntry> = await openBucket(nc, uniqueName('cfg'), cfgEntry);
    const hb = await openBucket(nc, uniqueName('hb'), heartbeat);
    await cfg.put(keys.object('node', NODE), nodeRecord('alive', 0));
    const cache = await WatchCache.start(cfg, { key: keys.object('node', NODE) });
    await cache.ready;
    const deadWith: number[] = [];
    const beater = new Heartbeater(hb, NODE, { intervalMs: 100, config: cache, recordCheckEveryBeats, onDeclaredDead: (incarnation) => deadWith.push(incarnation) });
    await beater.start();
    expect(beater.incarnation).toBe(1);
    const jsm = await jetstreamManager(nc);
    for await (const c of jsm.consumers.list(cfg.streamName)) await jsm.consumers.delete(cfg.streamName, c.name);
    await cfg.put(keys.object('node', NODE), nodeRecord('dead', 1));
    return { beater, deadWith, cache };
  }

  it('reads its record from the bucket every few beats and rejoins with a new incarnation', async () => {
    const { beater, deadWith, cache } = await declaredDeadBehindAStalledWatch(5);
    try {
      await waitFor('the heartbeater to rejoin', 5_000, () => deadWith.length > 0, 50);
      expect({ deadWith, incarnation: beater.incarnation }).toEqual({ deadWith: [1], incarnation: 2 });
      expect(cache.get(keys.object('node', NODE))?.value).toMatchObject({ status: { liveness: 'dead', incarnation: 1 } });
    } finally {
      beater.stop();
      cache.stop();
    }
  });

  it('without the check (the control) it stays unaware behind the stalled watch', async () => {
    const { beater, deadWith, cache } = await declaredDeadBehindAStalledWatch(1_000_000);
    try {
      await new Promise((r) => setTimeout(r, 2_000));
      expect({ deadWith, incarnation: beater.incarnation }).toEqual({ deadWith: [], incarnation: 1 });
    } finally {
      beater.stop();
      cache.stop();
    }
  });
});
