// Admission control as an actor definition: serves strata.adm.<node>.{read,write,zero,flush},
// refuses I/O for vDisks this node does not own (NOT_OWNER with the owner as hint),
// queues the rest (bounded) and passes at most inFlightMax at a time to the node's
// vdisk-controller. Run alone by main.ts, or with the node's other actors in one process.
import { performance } from 'node:perf_hooks';
import { z } from 'zod';
import type { ActorDefinition } from '@strata/actor';
import { ErrorCode, StrataError } from '@strata/errors';
import { openBucket, WatchCache } from '@strata/kv';
import { IoOp, buckets, ioSchemas, keys, subjects, vdiskOwnership, objectName } from '@strata/proto';
import { SpanAttr, recordingSpan } from '@strata/tracing';
import { FifoQueue, Gate } from './gate';

export const admissionSettings = z
  .object({
    node: objectName,
    /** Requests waiting at most; beyond it QUEUE_FULL. */
    queueDepthMax: z.coerce.number().int().positive().default(2048),
    /** Requests passed to the controller at once. */
    inFlightMax: z.coerce.number().int().positive().default(128),
  })
  .strict();
export type AdmissionSettings = z.output<typeof admissionSettings>;

export function admissionActor(s: AdmissionSettings): ActorDefinition {
  return {
    actor: 'admission',
    instance: s.node,
    node: s.node,
    start: async ({ bus, log, metrics }) => {
      const own = await openBucket(bus.nc, buckets.own, vdiskOwnership);
      const ownership = await WatchCache.start(own, { key: 'vdisk.>', onBadEntry: (key, err) => log.warn({ key, err }, 'unreadable ownership record') });
      await ownership.ready;
      const wait = metrics.histogram('strata_admission_queue_wait_seconds', 'Time a request waited in the admission queue', [], [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5]);
      const depth = metrics.gauge('strata_admission_queue_depth', 'Requests waiting in the admission queue');
      const gate = new Gate<unknown>(new FifoQueue(s.queueDepthMax), s.inFlightMax, () => performance.now(), (waitedMs) => wait.observe(waitedMs / 1000));
      const services = await Promise.all(
        Object.values(IoOp).map((op) =>
          bus.serve(
            subjects.admission(s.node, op),
            ioSchemas[op].request,
            (req, ctx) => {
              const owner = ownership.get(keys.vdiskOwnership(req.vdisk))?.value.owner;
              if (owner !== s.node) {
                throw new StrataError(ErrorCode.NOT_OWNER, `node ${s.node} does not own vdisk ${req.vdisk}${owner === undefined ? '' : `; ${owner} does`}`, owner === undefined ? {} : { hint: owner });
              }
              depth.set(gate.depth);
              // On the bus's `handle strata.adm.<node>.<op>` span and the queue wait under it; nothing is built when tracing is off.
              const span = recordingSpan();
              const attributes = span === undefined ? undefined : { [SpanAttr.vdisk]: String(req.vdisk), [SpanAttr.ioOp]: op };
              if (attributes !== undefined) span?.setAttributes(attributes);
              return gate.submit(
                () => bus.request(subjects.controller(s.node, op), req, ioSchemas[op].reply, { timeoutMs: Math.max(1, Math.floor(ctx.remainingMs())) }),
                attributes,
              );
            },
            { maxInFlight: s.queueDepthMax + s.inFlightMax },
          ),
        ),
      );
      return async () => {
        await Promise.all(services.map((svc) => svc.stop()));
        ownership.stop();
      };
    },
  };
}
