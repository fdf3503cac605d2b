// The curator as an actor definition: the buckets it reads, the map tasks of scans it
// serves on `strata.curator.<node>.map` (map.ts) for whichever curator is master, and
// the contention for the lease `curator.master`, which runs the master (master.ts)
// while held. The curators that do not hold it map for it and take over when it lapses.
import type { ActorContext, ActorDefinition } from '@strata/actor';
import { registerCuratorMetrics } from './metrics';
import { ConfigClient } from '@strata/config-client';
import { EventLog, ensureEventStream } from '@strata/events';
import { openBucket } from '@strata/kv';
import { Lease, leaseRecord } from '@strata/lease';
import { MdClient } from '@strata/md-client';
import { buckets, curatorMapOutput, curatorMapRequest, curatorProgress, curatorScanRecord, diskUsage, keys, mdValue, subjects, vdiskOwnership, type CuratorMapRequest } from '@strata/proto';
import { mapPage, refuseStale } from './map';
import { CuratorMaster } from './master';
import type { CuratorSettings } from './settings';

export function curatorActor(s: CuratorSettings): ActorDefinition {
  return {
    actor: 'curator',
    instance: s.node,
    node: s.node,
    start: (ctx) => startCurator(s, ctx),
  };
}

async function startCurator(s: CuratorSettings, { bus, log, metrics }: ActorContext): Promise<() => Promise<void>> {
  const nc = bus.nc;
  await ensureEventStream(nc);
  const [leases, own, progress, scans, outputs, egroups, vdiskRows, usage] = await Promise.all([
    openBucket(nc, buckets.own, leaseRecord),
    openBucket(nc, buckets.own, vdiskOwnership),
    openBucket(nc, buckets.own, curatorProgress),
    openBucket(nc, buckets.own, curatorScanRecord),
    openBucket(nc, buckets.own, curatorMapOutput),
    // The same settings as the metadata shards create it with.
    openBucket(nc, buckets.mdEgroup, mdValue.egroup, { history: 1 }),
    openBucket(nc, buckets.mdVdisk, mdValue.vdisk, { history: 1 }),
    openBucket(nc, buckets.hb, diskUsage),
  ]);
  const config = new ConfigClient(bus);
  const md = new MdClient(bus, { timeoutMs: s.curatorRequestTimeoutMs });
  const events = new EventLog(nc);
  const mapPorts = { bus, egroups, timeoutMs: s.curatorRequestTimeoutMs, holdMs: s.curatorMapHoldMs };
  const mapLocal = (req: CuratorMapRequest): ReturnType<typeof mapPage> => mapPage(mapPorts, req);
  // Map tasks for the master, whichever curator it is; a task from a master whose lease has passed is refused.
  const mapService = await bus.serve(subjects.curatorMap(s.node), curatorMapRequest, async (req) => {
    refuseStale(req, (await leases.get(keys.curatorMasterLease))?.value);
    return mapLocal(req);
  });

  let master: { epoch: number; run: Promise<CuratorMaster | undefined> } | undefined;
  /** The master this curator runs, once it started (for the metrics). */
  let serving: CuratorMaster | undefined;
  registerCuratorMetrics(metrics, () => serving?.status());
  const lease = new Lease(leases, {
    key: keys.curatorMasterLease,
    holder: s.node,
    ttlMs: s.curatorLeaseTtlMs,
    log,
    onAcquired: (epoch) => {
      const m = new CuratorMaster({ bus, log, settings: s, me: s.node, epoch, leading: () => lease.epoch === epoch, config, md, egroups, vdiskRows, usage, own, progress, scans, outputs, mapLocal, events });
      master = {
        epoch,
        run: m.start().then(
          () => {
            if (master?.epoch === epoch) serving = m;
            return m;
          },
          async (err: unknown) => {
            // Holding the lease without acting would leave the cluster without a curator: give it up.
            log.error({ err }, 'could not start the curator master; releasing curator.master');
            await m.stop();
            void lease.stop().then(() => lease.start());
            return undefined;
          },
        ),
      };
    },
    onLost: (epoch) => {
      const lost = master;
      master = undefined;
      serving = undefined;
      if (lost?.epoch === epoch) void lost.run.then(async (m) => m?.stop());
    },
  });
  lease.start();
  log.info({ node: s.node, rebuild: s.rebuild, reprotectDelayMs: s.reprotectDelayMs, scanIntervalMs: s.curatorScanIntervalMs }, 'curator started');

  return async () => {
    await mapService.stop();
    await lease.stop();
    await master?.run.then((m) => m?.stop());
  };
}
