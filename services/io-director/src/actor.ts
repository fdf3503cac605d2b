// The io-director as an actor definition: serves strata.io.<node>.{read,write,zero,flush}
// with the Director. Run alone by main.ts, or with the node's other actors in one process.
import { z } from 'zod';
import type { ActorDefinition } from '@strata/actor';
import { openBucket, WatchCache } from '@strata/kv';
import { DirectorOp, IoOp, buckets, ioAttachRequest, vdcSnapshotRequest, cfgEntry, ioSchemas, keys, subjects, vdiskOwnership, objectName } from '@strata/proto';
import { Director } from './director';

export const directorSettings = z
  .object({
    node: objectName,
    /** I/O requests handled at once. */
    requestsInFlightMax: z.coerce.number().int().positive().default(1024),
  })
  .strict();
export type DirectorSettings = z.output<typeof directorSettings>;

export function ioDirectorActor(s: DirectorSettings): ActorDefinition {
  return {
    actor: 'io-director',
    instance: s.node,
    node: s.node,
    start: async ({ bus, log }) => {
      const [own, cfg] = await Promise.all([openBucket(bus.nc, buckets.own, vdiskOwnership), openBucket(bus.nc, buckets.cfg, cfgEntry, { history: 8 })]);
      const [ownership, config, nodes] = await Promise.all([
        WatchCache.start(own, { key: keys.vdiskOwnershipAll, onBadEntry: (key, err) => log.warn({ key, err }, 'unreadable ownership record') }),
        WatchCache.start(cfg, { key: 'vdisk.>' }),
        WatchCache.start(cfg, { key: 'node.>' }),
      ]);
      await Promise.all([ownership.ready, config.ready, nodes.ready]);
      const director = new Director({ node: s.node, bus, own, ownership, config, nodes });
      const services = await Promise.all([
        ...Object.values(IoOp).map((op) => bus.serve(subjects.io(s.node, op), ioSchemas[op].request, (req, ctx) => director.handle(op, req, ctx), { maxInFlight: s.requestsInFlightMax })),
        bus.serve(subjects.io(s.node, DirectorOp.attach), ioAttachRequest, (req) => director.attach(req.vdisk), { maxInFlight: s.requestsInFlightMax }),
        bus.serve(subjects.io(s.node, DirectorOp.snapshot), vdcSnapshotRequest, (req, ctx) => director.snapshot(req, ctx), { maxInFlight: s.requestsInFlightMax }),
      ]);
      return async () => {
        await Promise.all(services.map((svc) => svc.stop()));
        ownership.stop();
        config.stop();
        nodes.stop();
      };
    },
  };
}
