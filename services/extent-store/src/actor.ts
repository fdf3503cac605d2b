// The extent store as an actor definition: opens the `hb` bucket for disk usage and
// runs the store. Run alone by main.ts, or with the node's other actors in one process.
import type { ActorDefinition } from '@strata/actor';
import { ConfigClient } from '@strata/config-client';
import { openBucket } from '@strata/kv';
import { buckets, diskUsage } from '@strata/proto';
import { ExtentStore } from './service';
import type { ExtentStoreSettings } from './settings';

export function extentStoreActor(settings: ExtentStoreSettings): ActorDefinition {
  return {
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
  };
}
