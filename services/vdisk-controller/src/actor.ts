// The vdisk-controller as an actor definition: serves strata.vdc.<node>.{read,write,zero,flush}
// for the vDisks this node owns. Run alone by main.ts, or with the node's other actors
// in one process.
import { performance } from 'node:perf_hooks';
import { jetstreamManager, RetentionPolicy, StorageType } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { z } from 'zod';
import type { ActorDefinition } from '@strata/actor';
import { ConfigClient } from '@strata/config-client';
import { IdAllocator } from '@strata/ids';
import { defaultReplicas, openBucket, WatchCache } from '@strata/kv';
import { MdClient } from '@strata/md-client';
import { IoOp, buckets, diskUsage, ioDoneReply, ioFlushRequest, ioReadRequest, ioWriteRequest, ioZeroRequest, streams, subjects, vdiskOwnership } from '@strata/proto';
import { Controller } from './controller';
import type { controllerSettings } from './settings';

/** Creates the OPLOG stream if missing (subjects oplog.<vdisk>, file storage, replicated like the cluster). */
async function ensureOplogStream(nc: NatsConnection): Promise<void> {
  const jsm = await jetstreamManager(nc);
  try {
    await jsm.streams.info(streams.oplog);
  } catch {
    try {
      await jsm.streams.add({
        name: streams.oplog,
        subjects: ['oplog.>'],
        retention: RetentionPolicy.Limits,
        storage: StorageType.File,
        num_replicas: defaultReplicas(nc),
        // Two minutes of duplicate detection: a retried append is recognised.
        duplicate_window: 120 * 1e9,
      });
    } catch (err) {
      await jsm.streams.info(streams.oplog).catch(() => {
        throw err;
      });
    }
  }
}

export function vdiskControllerActor(s: z.output<typeof controllerSettings>): ActorDefinition {
  return {
    actor: 'vdisk-controller',
    instance: s.node,
    node: s.node,
    start: async ({ bus, log }) => {
      const nc = bus.nc;
      await ensureOplogStream(nc);
      const [own, hb, ids] = await Promise.all([openBucket(nc, buckets.own, vdiskOwnership), openBucket(nc, buckets.hb, diskUsage), IdAllocator.open(nc)]);
      const usage = await WatchCache.start(hb, { key: 'disk.>' });
      const controller = new Controller({ bus, config: new ConfigClient(bus), own, md: new MdClient(bus), ids, usage, log, settings: s });
      await controller.start();
      const opts = { maxInFlight: s.requestsInFlightMax };
      const services = await Promise.all([
        bus.serve(subjects.controller(s.node, IoOp.read), ioReadRequest, async (req) => ({ data: await (await controller.get(req.vdisk)).read(req.offset, req.length) }), opts),
        bus.serve(
          subjects.controller(s.node, IoOp.write),
          ioWriteRequest,
          async (req, ctx) => {
            await (await controller.get(req.vdisk)).write(req.offset, req.data, performance.now() + ctx.remainingMs());
            return ioDoneReply.parse({});
          },
          opts,
        ),
        bus.serve(
          subjects.controller(s.node, IoOp.zero),
          ioZeroRequest,
          async (req) => {
            await (await controller.get(req.vdisk)).zero(req.offset, req.length);
            return {};
          },
          opts,
        ),
        // Every acknowledged write is already stored in the replicated oplog.
        bus.serve(
          subjects.controller(s.node, IoOp.flush),
          ioFlushRequest,
          async (req) => {
            await controller.get(req.vdisk);
            return {};
          },
          opts,
        ),
      ]);
      return async () => {
        await Promise.all(services.map((svc) => svc.stop()));
        await controller.stop();
        usage.stop();
      };
    },
  };
}
