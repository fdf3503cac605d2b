// The metadata shard as an actor definition: opens the buckets and serves partitions
// until stopped, which releases them. Run alone by main.ts, or with the node's other
// actors in one process.
import type { ActorDefinition } from '@strata/actor';
import { openBucket } from '@strata/kv';
import { leaseRecord } from '@strata/lease';
import { buckets, vdiskOwnership } from '@strata/proto';
import { shardHeartbeat } from './peers';
import type { ShardSettings } from './settings';
import { MetadataShard } from './shard';
import { openMdBuckets } from './store';

export function metadataShardActor(settings: ShardSettings): ActorDefinition {
  return {
    actor: 'metadata-shard',
    instance: settings.shard,
    start: async ({ bus, log, metrics }) => {
      const nc = bus.nc;
      const [md, own, ownership, hb] = await Promise.all([
        openMdBuckets(nc),
        openBucket(nc, buckets.own, leaseRecord),
        openBucket(nc, buckets.own, vdiskOwnership),
        openBucket(nc, buckets.hb, shardHeartbeat),
      ]);
      const shard = new MetadataShard({ bus, md, own, ownership, hb, log, metrics, settings });
      await shard.start();
      return () => shard.stop();
    },
  };
}
