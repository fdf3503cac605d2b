// Admission control as an actor definition: serves strata.adm.<node>.{read,write,zero,flush},
// refuses I/O for vDisks this node does not own (NOT_OWNER with the owner as hint),
// queues the rest in the QoS scheduler (bounded per node and per vDisk) and passes at
// most inFlightMax at a time to the node's vdisk-controller. Each vDisk's QoS comes
// from its config record, watched, so a change applies to the next request. Run alone
// by main.ts, or with the node's other actors in one process.
import { performance } from 'node:perf_hooks';
import { z } from 'zod';
import type { ActorDefinition } from '@strata/actor';
import { openBucket, WatchCache } from '@strata/kv';
import { notOwner, serves } from '@strata/ownership';
import { IoOp, buckets, cfgEntry, ioSchemas, keys, subjects, vdiskOwnership, objectName, type IoRequest, type QosSpec } from '@strata/proto';
import { SpanAttr, recordingSpan } from '@strata/tracing';
import { AGED_AT_FRACTION_DEFAULT, Gate, type Waiting } from './gate';
import { HighClassGuard } from './guard';
import { StallProbe } from './stall-probe';
import { QosScheduler, type FlowQos } from './scheduler';

const KiB = 1024;
/** The guard's window and how long high-class I/O counts as active after its last request. */
const GUARD_WINDOW_MS = 100;
const HIGH_IDLE_MS = 1_000;
/** The stall probe's period: about 50 samples a window. */
const PROBE_INTERVAL_MS = 2;
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
    /**
     * A vDisk's writes smaller than groupedWriteBytesMax share slots, this many to a
     * slot: the controller stores them together (group commit), so they cost it about
     * what one write does, and its batches grow only with the writes it has at once.
     * Measured with 4 KiB random writes at QD32 (`npm run bench`, 3 nodes, RF 3): with
     * every write in a slot of its own, 12 went to the controller at once, batches
     * averaged 6 writes and half of a write's 50 ms went waiting here: 852 IOPS; with
     * 64 slots, 1088.
     */
    groupedWritesPerSlot: z.coerce.number().int().positive().default(16),
    /** Writes below this many bytes are grouped (larger ones skip the oplog's group commit: the controller's directWriteBytesMin). */
    groupedWriteBytesMax: z.coerce.number().int().min(0).default(64 * KiB),
    /** Of those, the last ones free are kept for the high class (lower classes wait while only these are left). */
    highReservedSlots: z.coerce.number().int().min(0).default(4),
    /** Share of dispatched cost the normal class gets, at least, while it has work (strict priority otherwise). */
    normalClassSharePercent: percent(10),
    /** Share the low class gets, at least, while it has work. */
    lowClassSharePercent: percent(5),
    /** A request costs 1 + bytes / this in fair queueing: a 1 MiB write costs 17 four-KiB reads. */
    costUnitBytes: z.coerce.number().int().min(4 * KiB).default(64 * KiB),
    /**
     * While high-class I/O is active, the lower classes are throttled whenever the
     * event loop stalls this much longer, or high-class requests run this much slower,
     * than in their best recent window (see HighClassGuard), µs.
     */
    guardTargetUs: z.coerce.number().int().positive().default(300),
    /** The least the guard lets the lower classes dispatch, cost units a second (50: 50 small I/Os, or 2.5 MiB of large ones). */
    guardFloorCostPerSec: z.coerce.number().positive().default(50),
    /**
     * A request the guard's limit holds back goes anyway once it has waited this share
     * of the time its requester gave it, so it is served before the requester's
     * attempt times out and sends it again (which would put it at the back of the queue).
     */
    lowerClassAgedAtPercent: z.coerce.number().int().min(10).max(95).default(AGED_AT_FRACTION_DEFAULT * 100),
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
        WatchCache.start(own, { key: keys.vdiskOwnershipAll, onBadEntry: (key, err) => log.warn({ key, err }, 'unreadable ownership record') }),
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
        groupPerSlot: s.groupedWritesPerSlot,
        highReservedSlots: s.highReservedSlots,
        agedAtFraction: s.lowerClassAgedAtPercent / 100,
        now: () => performance.now(),
        onDispatch: (waitedMs) => wait.observe(waitedMs / 1000),
        onRefused: (why) => refused.inc({ queue: why === 'flow-full' ? 'vdisk' : 'node' }),
      });
      // The guard runs (window timer and stall probe) only while high-class I/O is active.
      const guard = new HighClassGuard({ windowMs: GUARD_WINDOW_MS, targetUs: s.guardTargetUs, floorCostPerSec: s.guardFloorCostPerSec, highIdleMs: HIGH_IDLE_MS });
      const probe = new StallProbe(PROBE_INTERVAL_MS);
      const lowerLimit = metrics.gauge('strata_admission_lower_class_limit', 'Cost units a second the normal and low classes may dispatch while high-class I/O is protected (0: no limit)');
      const stall = metrics.gauge('strata_admission_event_loop_stall_seconds', "The event loop's stall (p98 of a 100 ms window) while high-class I/O is active");
      let guardTimer: NodeJS.Timeout | undefined;
      const stopGuard = (): void => {
        clearInterval(guardTimer);
        guardTimer = undefined;
        probe.stop();
      };
      const guardHigh = (): void => {
        guard.noteHighArrival(performance.now());
        if (guardTimer !== undefined) return;
        probe.start();
        guardTimer = setInterval(() => {
          const nowMs = performance.now();
          const stallUs = probe.take(0.98);
          stall.set(stallUs / 1e6);
          const limit = guard.endWindow(nowMs, stallUs, scheduler.lowerCostDispatched);
          scheduler.setLowerClassLimit(limit);
          lowerLimit.set(limit ?? 0);
          gate.poke();
          if (limit === undefined && !guard.highActive(nowMs)) stopGuard();
        }, GUARD_WINDOW_MS);
        guardTimer.unref();
      };

      const services = await Promise.all(
        Object.values(IoOp).map((op) =>
          bus.serve(
            subjects.admission(s.node, op),
            ioSchemas[op].request,
            async (req, ctx) => {
              if (!serves(ownership.get(keys.vdiskOwnership(req.vdisk))?.value, s.node)) {
                // The watched copy lags a claim, takeover or relinquish by a moment:
                // ask the bucket itself before turning the request away.
                const current = (await own.get(keys.vdiskOwnership(req.vdisk)))?.value ?? null;
                if (!serves(current, s.node)) throw notOwner(s.node, req.vdisk, current?.owner);
              }
              depth.set(gate.depth);
              // On the bus's `handle strata.adm.<node>.<op>` span and the queue wait under it; nothing is built when tracing is off.
              const span = recordingSpan();
              const attributes = span === undefined ? undefined : { [SpanAttr.vdisk]: String(req.vdisk), [SpanAttr.ioOp]: op };
              if (attributes !== undefined) span?.setAttributes(attributes);
              const flow = String(req.vdisk);
              // The controller is told the class too: it paces lower classes' drains while high-class I/O is served.
              const priority = scheduler.classOf(flow);
              const submittedMs = performance.now();
              const bytes = requestBytes(op, req);
              const grouped = op === IoOp.write && bytes < s.groupedWriteBytesMax;
              const done = gate.submit(
                { flow, bytes, deadlineMs: ctx.deadline, group: grouped ? flow : undefined },
                () => bus.request(subjects.controller(s.node, op), { ...req, priority }, ioSchemas[op].reply, { timeoutMs: Math.max(1, Math.floor(ctx.remainingMs())) }),
                attributes,
              );
              if (priority === 'high') {
                guardHigh();
                const noteDone = (): void => guard.noteHighDone((performance.now() - submittedMs) * 1000);
                done.then(noteDone, noteDone);
              }
              return done;
            },
            // Running: at most inFlightMax slots, a slot of grouped writes holding several.
            { maxInFlight: s.queueDepthMax + s.inFlightMax * s.groupedWritesPerSlot },
          ),
        ),
      );
      return async () => {
        await Promise.all(services.map((svc) => svc.stop()));
        gate.close();
        stopGuard();
        stopWatching();
        ownership.stop();
        config.stop();
      };
    },
  };
}
