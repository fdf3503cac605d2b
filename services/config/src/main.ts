#!/usr/bin/env node
// Entry point of a config replica: reads its settings, opens the buckets, and runs
// the replica until SIGTERM. `node services/config/dist/main.js --replica config-1`.
import { commandLineSettings, runActor } from '@strata/actor';
import { IdAllocator } from '@strata/ids';
import { WatchCache, openBucket } from '@strata/kv';
import { leaseRecord } from '@strata/lease';
import { buckets, cfgEntry, diskUsage, heartbeat, keys, takeoverRecord, vdiskOwnership } from '@strata/proto';
import { EventLog, ensureEventStream } from '@strata/events';
import { registerConfigMetrics } from './metrics';
import { ConfigReplica } from './replica';
import { SpaceMonitor } from './space-monitor';
import { configSettings } from './settings';

function main(): void {
  const settings = commandLineSettings('strata-config', configSettings);
  void runActor({
    actor: 'config',
    instance: settings.replica,
    start: async ({ bus, log, metrics }) => {
      const nc = bus.nc;
      const [cfg, hb, own, owners, takeovers, ids] = await Promise.all([
        // History 8: the last few versions of each object, for operators and audits.
        openBucket(nc, buckets.cfg, cfgEntry, { history: 8 }),
        openBucket(nc, buckets.hb, heartbeat),
        openBucket(nc, buckets.own, leaseRecord),
        openBucket(nc, buckets.own, vdiskOwnership),
        openBucket(nc, buckets.own, takeoverRecord),
        IdAllocator.open(nc),
        ensureEventStream(nc),
      ]);
      const ref: { replica?: ConfigReplica } = {};
      const meters = registerConfigMetrics(metrics, () => ref.replica);
      const replica = new ConfigReplica({ bus, cfg, hb, own, owners, takeovers, ids, events: new EventLog(nc), log, settings, onTakeoverDone: meters.takeoverDone });
      ref.replica = replica;
      await replica.start();
      const usageBucket = await openBucket(nc, buckets.hb, diskUsage);
      const [disks, nodes, containers, usage] = await Promise.all([
        WatchCache.start(cfg, { key: 'disk.>' }),
        WatchCache.start(cfg, { key: 'node.>' }),
        WatchCache.start(cfg, { key: 'container.>' }),
        WatchCache.start(usageBucket, { key: keys.diskUsageAll }),
      ]);
      const space = new SpaceMonitor({
        disks,
        nodes,
        containers,
        usage,
        leaderEpoch: () => (replica.isLeader() ? replica.epoch : undefined),
        events: new EventLog(nc),
        log,
        thresholds: { warnPercent: settings.spaceWarnPercent, fullFreeBytes: settings.spaceFullFreeBytes },
        tickMs: settings.spaceTickMs,
      });
      space.start();
      return async () => {
        space.stop();
        for (const cache of [disks, nodes, containers, usage]) cache.stop();
        await replica.stop();
      };
    },
  });
}

main();
