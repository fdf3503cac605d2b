#!/usr/bin/env node
// Entry point of a node's extent store: reads its settings, opens the `hb` bucket,
// and runs the store until SIGTERM. `node services/extent-store/dist/main.js --node n1`.
import { commandLineSettings, runActor } from '@strata/actor';
import { ConfigClient } from '@strata/config-client';
import { openBucket } from '@strata/kv';
import { buckets, diskUsage } from '@strata/proto';
import { ExtentStore } from './service';
import { extentStoreSettings } from './settings';

function main(): void {
  const settings = commandLineSettings('strata-extent-store', extentStoreSettings);
  void runActor({
    actor: 'extent-store',
    instance: settings.node,
    node: settings.node,
    start: async ({ bus, log, metrics }) => {
      // hb holds node heartbeats too; this typed view is only ever used for disk.<id> keys.
      const usage = await openBucket(bus.nc, buckets.hb, diskUsage);
      const store = new ExtentStore({ bus, config: new ConfigClient(bus, settings.configTimeoutMs), usage, log, metrics, settings });
      await store.start();
      return () => store.stop();
    },
  });
}

main();
