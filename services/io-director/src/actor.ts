// The io-director as an actor definition: serves strata.io.<node>.{read,write,zero,flush}
// with the Director. Run alone by main.ts, or with the node's other actors in one process.
import { z } from 'zod';
import type { ActorDefinition } from '@strata/actor';
import { isStrataError } from '@strata/errors';
import { openBucket, WatchCache } from '@strata/kv';
import type { Metrics } from '@strata/metrics';
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

/** Wraps each I/O request: counted by operation and outcome (the error code, or ok), and timed to its reply. */
function measure(metrics: Metrics): <T>(op: IoOp, handle: () => Promise<T>) => Promise<T> {
  const requests = metrics.counter('strata_director_requests_total', 'I/O requests the io-director answered, by operation and outcome.', ['op', 'code']);
  const seconds = metrics.histogram('strata_director_request_seconds', 'Time from an I/O request reaching the io-director to its reply (admission and the owner included).', ['op'], [0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.25, 1, 5]);
  return async (op, handle) => {
    const end = seconds.startTimer({ op });
    try {
      const reply = await handle();
      requests.inc({ op, code: 'ok' });
      return reply;
    } catch (err) {
      requests.inc({ op, code: isStrataError(err) ? err.code : 'INTERNAL' });
      throw err;
    } finally {
      end();
    }
  };
}

export function ioDirectorActor(s: DirectorSettings): ActorDefinition {
  return {
    actor: 'io-director',
    instance: s.node,
    node: s.node,
    start: async ({ bus, log, metrics }) => {
      const [own, cfg] = await Promise.all([openBucket(bus.nc, buckets.own, vdiskOwnership), openBucket(bus.nc, buckets.cfg, cfgEntry, { history: 8 })]);
      const [ownership, config, nodes] = await Promise.all([
        WatchCache.start(own, { key: keys.vdiskOwnershipAll, onBadEntry: (key, err) => log.warn({ key, err }, 'unreadable ownership record') }),
        WatchCache.start(cfg, { key: 'vdisk.>' }),
        WatchCache.start(cfg, { key: 'node.>' }),
      ]);
      await Promise.all([ownership.ready, config.ready, nodes.ready]);
      const director = new Director({ node: s.node, bus, own, ownership, config, nodes });
      const measured = measure(metrics);
      const services = await Promise.all([
        ...Object.values(IoOp).map((op) => bus.serve(subjects.io(s.node, op), ioSchemas[op].request, (req, ctx) => measured(op, () => director.handle(op, req, ctx)), { maxInFlight: s.requestsInFlightMax })),
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
