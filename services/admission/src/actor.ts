// Admission control as an actor definition: serves strata.adm.<node>.{read,write,zero,flush},
// refuses I/O for vDisks this node does not own (NOT_OWNER with the owner as hint),
// queues the rest in the QoS scheduler (bounded per node and per vDisk) and passes at
// most inFlightMax at a time to the node's vdisk-controller. Each vDisk's QoS comes
// from its config record, watched, so a change applies to the next request. Run alone
// by main.ts, or with the node's other actors in one process.
import { performance } from 'node:perf_hooks';
import { z } from 'zod';
import type { ActorDefinition } from '@strata/actor';
import { ErrorCode, StrataError } from '@strata/errors';
import { openBucket, WatchCache } from '@strata/kv';
import { IoOp, buckets, cfgEntry, ioSchemas, keys, subjects, vdiskOwnership, objectName, type IoRequest, type QosSpec } from '@strata/proto';
import { SpanAttr, recordingSpan } from '@strata/tracing';
import { Gate, type Waiting } from './gate';
import { QosScheduler, type FlowQos } from './scheduler';

const KiB = 1024;
const percent = (def: number) => z.coerce.number().min(0).max(49).default(def);

export const admissionSettings = z
  .object({
    node: objectName,
    /** Requests waiting on the node at most; beyond it QUEUE_FULL. */
    queueDepthMax: z.coerce.number().int().positive().default(2048),
    /** Requests waiting for one vDisk at most; beyond it QUEUE_FULL, so one vDisk cannot fill the node's queue. */
    vdiskQueueDepthMax: z.coerce.number().int().positive().default(512),
    /**
     * Requests passed to the controller at once. The scheduler decides only among
     * requests that wait here, so this is what gives QoS its grip: small enough that a
     * busy node queues in admission, large enough that group commit gets batches.
     * A slot is freed at the end of the event-loop turn its request finished in (see
     * Gate.release). Measured with bench:qos and 4 KiB reads from the page cache: at
     * 8, weights 3:1 gave 2.96 and 16.6k IOPS in all; at 16, 2.93 and 19.4k; at 32,
     * 1.25 (requests no longer waited here).
     */
    inFlightMax: z.coerce.number().int().positive().default(16),
    /** Of those, the last ones free are kept for the high class (lower classes wait while only these are left). */
    highReservedSlots: z.coerce.number().int().min(0).default(4),
    /** Share of dispatched cost the normal class gets, at least, while it has work (strict priority otherwise). */
    normalClassSharePercent: percent(10),
    /** Share the low class gets, at least, while it has work. */
    lowClassSharePercent: percent(5),
    /** A request costs 1 + bytes / this in fair queueing: a 1 MiB write costs 17 four-KiB reads. */
    costUnitBytes: z.coerce.number().int().min(4 * KiB).default(64 * KiB),
  })
  .strict()
  .refine((s) => s.vdiskQueueDepthMax <= s.queueDepthMax, { message: 'vdiskQueueDepthMax must not exceed queueDepthMax', path: ['vdiskQueueDepthMax'] })
  .refine((s) => s.highReservedSlots < s.inFlightMax, { message: 'highReservedSlots must be below inFlightMax', path: ['highReservedSlots'] });
export type AdmissionSettings = z.output<typeof admissionSettings>;

/** The scheduler's view of a vDisk's QoS spec. */
export function flowQos(q: QosSpec): FlowQos {
  return {
    priority: q.priority,
    weight: q.weight,
    ...(q.iopsCap === undefined ? {} : { iopsCap: q.iopsCap }),
    ...(q.bandwidthCapBytesPerSec === undefined ? {} : { bandwidthCapBytesPerSec: q.bandwidthCapBytesPerSec }),
    ...(q.burstMs === undefined ? {} : { burstSeconds: q.burstMs / 1000 }),
    ...(q.reservedIops === undefined ? {} : { reservedIops: q.reservedIops }),
  };
}

/** Payload bytes of a request, its size for caps and cost (a flush moves none). */
function requestBytes(op: IoOp, req: IoRequest): number {
  if (op === IoOp.write && 'data' in req) return req.data.length;
  return 'length' in req ? req.length : 0;
}

export function admissionActor(s: AdmissionSettings): ActorDefinition {
  return {
    actor: 'admission',
    instance: s.node,
    node: s.node,
    start: async ({ bus, log, metrics }) => {
      const [own, cfg] = await Promise.all([openBucket(bus.nc, buckets.own, vdiskOwnership), openBucket(bus.nc, buckets.cfg, cfgEntry, { history: 8 })]);
      const [ownership, config] = await Promise.all([
        WatchCache.start(own, { key: 'vdisk.>', onBadEntry: (key, err) => log.warn({ key, err }, 'unreadable ownership record') }),
        WatchCache.start(cfg, { key: 'vdisk.>' }),
      ]);
      await Promise.all([ownership.ready, config.ready]);

      const scheduler = new QosScheduler<Waiting<unknown>>({
        nodeDepthMax: s.queueDepthMax,
        flowDepthMax: s.vdiskQueueDepthMax,
        lowerClassShare: { normal: s.normalClassSharePercent / 100, low: s.lowClassSharePercent / 100 },
        costUnitBytes: s.costUnitBytes,
        defaultQos: { priority: 'normal', weight: 1 },
      });
      // The flow of a vDisk is its id; its QoS follows its config record.
      const applyQos = (key: string): void => {
        const value = config.get(key)?.value;
        const flow = key.slice('vdisk.'.length);
        if (value === undefined || !('kind' in value) || value.kind !== 'vdisk') {
          scheduler.setQos(flow, undefined);
          return;
        }
        try {
          scheduler.setQos(flow, flowQos(value.spec.qos));
        } catch (err) {
          // Config validated it; a value the scheduler still refuses keeps the old QoS.
          log.error({ err, key }, 'QoS setting refused by the scheduler; keeping the previous one');
        }
      };
      for (const entry of config.values()) applyQos(entry.key);
      const stopWatching = config.onChange((key) => applyQos(key));

      const wait = metrics.histogram('strata_admission_queue_wait_seconds', 'Time a request waited in the admission queue', [], [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5]);
      const depth = metrics.gauge('strata_admission_queue_depth', 'Requests waiting in the admission queue');
      const refused = metrics.counter('strata_admission_queue_full_total', 'Requests refused with QUEUE_FULL, by which queue was full', ['queue']);
      const gate = new Gate<unknown>(scheduler, {
        inFlightMax: s.inFlightMax,
        highReservedSlots: s.highReservedSlots,
        now: () => performance.now(),
        onDispatch: (waitedMs) => wait.observe(waitedMs / 1000),
        onRefused: (why) => refused.inc({ queue: why === 'flow-full' ? 'vdisk' : 'node' }),
      });
      const services = await Promise.all(
        Object.values(IoOp).map((op) =>
          bus.serve(
            subjects.admission(s.node, op),
            ioSchemas[op].request,
            async (req, ctx) => {
              if (ownership.get(keys.vdiskOwnership(req.vdisk))?.value.owner !== s.node) {
                // The watched copy lags a claim, takeover or relinquish by a moment:
                // ask the bucket itself before turning the request away.
                const owner = (await own.get(keys.vdiskOwnership(req.vdisk)))?.value.owner;
                if (owner !== s.node) {
                  throw new StrataError(ErrorCode.NOT_OWNER, `node ${s.node} does not own vdisk ${req.vdisk}${owner === undefined ? '' : `; ${owner} does`}`, owner === undefined ? {} : { hint: owner });
                }
              }
              depth.set(gate.depth);
              // On the bus's `handle strata.adm.<node>.<op>` span and the queue wait under it; nothing is built when tracing is off.
              const span = recordingSpan();
              const attributes = span === undefined ? undefined : { [SpanAttr.vdisk]: String(req.vdisk), [SpanAttr.ioOp]: op };
              if (attributes !== undefined) span?.setAttributes(attributes);
              return gate.submit(
                { flow: String(req.vdisk), bytes: requestBytes(op, req) },
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
        gate.close();
        stopWatching();
        ownership.stop();
        config.stop();
      };
    },
  };
}
