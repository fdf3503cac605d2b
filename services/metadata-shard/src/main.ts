#!/usr/bin/env node
// Entry point of a metadata shard: reads its settings, opens the buckets, and serves
// partitions until SIGTERM, which releases them. `node services/metadata-shard/dist/main.js --shard md-1`.
import { commandLineSettings, runActor } from '@strata/actor';
import { openBucket } from '@strata/kv';
import { leaseRecord } from '@strata/lease';
import { buckets } from '@strata/proto';
import { shardHeartbeat } from './peers';
import { resolveSettings, shardSettings } from './settings';
import { MetadataShard } from './shard';
import { openMdBuckets } from './store';

function main(): void {
  const settings = commandLineSettings('strata-metadata-shard', shardSettings, resolveSettings);
  void runActor({
    actor: 'metadata-shard',
    instance: settings.shard,
    start: async ({ bus, log, metrics }) => {
      const nc = bus.nc;
      const [md, own, hb] = await Promise.all([openMdBuckets(nc), openBucket(nc, buckets.own, leaseRecord), openBucket(nc, buckets.hb, shardHeartbeat)]);
      const shard = new MetadataShard({ bus, md, own, hb, log, metrics, settings });
      await shard.start();
      return () => shard.stop();
    },
  });
}

main();
