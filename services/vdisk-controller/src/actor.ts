// The vdisk-controller as an actor definition: serves strata.vdc.<node>.{read,write,zero,flush}
// for the vDisks this node owns. Run alone by main.ts, or with the node's other actors
// in one process.
import { performance } from 'node:perf_hooks';
import type { z } from 'zod';
import type { ActorDefinition } from '@strata/actor';
import { ConfigClient } from '@strata/config-client';
import { IdAllocator } from '@strata/ids';
import { openBucket, WatchCache } from '@strata/kv';
import { ensureOplogStream } from '@strata/oplog';
import { MdClient } from '@strata/md-client';
import { ErrorCode, StrataError, isStrataError } from '@strata/errors';
import { EventLog, ensureEventStream } from '@strata/events';
import { Heartbeater } from '@strata/liveness';
import {
  IoOp,
  VdcOp,
  buckets,
  cfgEntry,
  diskUsage,
  heartbeat,
  ioDoneReply,
  ioFlushRequest,
  ioReadRequest,
  ioWriteRequest,
  ioZeroRequest,
  keys,
  subjects,
  vdcOpenRequest,
  vdcRelinquishRequest,
  vdcSnapshotRequest,
  vdcRecordCopyRequest,
  vdcReleaseRequest,
  vdcCompactRequest,
  vdiskOwnership,
} from '@strata/proto';
import { Controller } from './controller';
import { registerControllerMetrics } from './metrics';
import { watchNodes } from './node-watch';
import { ReplicaHealth } from './replica-health';
import type { controllerSettings } from './settings';

/** The node's id in the config service: `strata up` (or an operator) registers the node before its actors start. */
async function nodeIdOf(config: ConfigClient, node: string): Promise<bigint> {
  try {
    return (await config.get({ kind: 'node', name: node })).id;
  } catch (err) {
    if (isStrataError(err, ErrorCode.NOT_FOUND)) throw new StrataError(ErrorCode.NOT_FOUND, `node ${node} is not registered in the config service (strata node add ${node})`, { cause: err });
    throw err;
  }
}

export function vdiskControllerActor(s: z.output<typeof controllerSettings>): ActorDefinition {
  return {
    actor: 'vdisk-controller',
    instance: s.node,
    node: s.node,
    start: async ({ bus, log, metrics }) => {
      const nc = bus.nc;
      await Promise.all([ensureOplogStream(nc), ensureEventStream(nc)]);
      const [own, hb, heartbeats, cfg, ids] = await Promise.all([
        openBucket(nc, buckets.own, vdiskOwnership),
        openBucket(nc, buckets.hb, diskUsage),
        openBucket(nc, buckets.hb, heartbeat),
        openBucket(nc, buckets.cfg, cfgEntry, { history: 8 }),
        IdAllocator.open(nc),
      ]);
      const config = new ConfigClient(bus);
      const nodeId = await nodeIdOf(config, s.node);
      const [usage, nodeCache, disks, nodes] = await Promise.all([
        WatchCache.start(hb, { key: 'disk.>' }),
        WatchCache.start(cfg, { key: keys.object('node', nodeId) }),
        WatchCache.start(cfg, { key: 'disk.>' }),
        WatchCache.start(cfg, { key: 'node.>' }),
      ]);
      await Promise.all([nodeCache.ready, disks.ready, nodes.ready]);
      // The node's heartbeat. Declared dead (it was silent too long, or paused), the
      // node stops serving at once and rejoins with a new incarnation: its vDisks
      // have moved or are moving, and each is reopened from own and the oplog.
      const ref: { controller?: Controller } = {};
      const heartbeater = new Heartbeater(heartbeats, nodeId, {
        intervalMs: s.heartbeatIntervalMs,
        config: nodeCache,
        log,
        onDeclaredDead: () => ref.controller?.dropAll('declared dead by the config leader'),
        fenceTimeoutMs: s.fenceTimeoutMs,
        onLapse: (gapMs) => ref.controller?.dropAll(`the heartbeat was not renewed for ${Math.round(gapMs)} ms`),
      });
      await heartbeater.start();
      const health = new ReplicaHealth(
        { localNode: s.node, suspectAfterMs: 3 * s.heartbeatIntervalMs, failureSuspectMs: s.failureSuspectMs, hedgeFloorMs: s.hedgeFloorMs, hedgeCeilingMs: s.hedgeCeilingMs },
        () => performance.now(),
      );
      const stopNodeWatch = await watchNodes(cfg, heartbeats, health);
      const meters = registerControllerMetrics(metrics, () => ref.controller);
      const controller = new Controller({ bus, config, own, md: new MdClient(bus), ids, usage, disks, nodes, log, settings: s, liveness: heartbeater, events: new EventLog(nc), health, onOpened: meters.opened });
      ref.controller = controller;
      await controller.start();
      const opts = { maxInFlight: s.requestsInFlightMax };
      const services = await Promise.all([
        bus.serve(
          subjects.controller(s.node, IoOp.read),
          ioReadRequest,
          async (req) => {
            controller.noteClass(req.vdisk, req.priority);
            return { data: await controller.serve(req.vdisk, (v) => v.read(req.offset, req.length), req.offset + req.length) };
          },
          opts,
        ),
        bus.serve(
          subjects.controller(s.node, IoOp.write),
          ioWriteRequest,
          async (req, ctx) => {
            controller.noteClass(req.vdisk, req.priority);
            await controller.serve(req.vdisk, (v) => v.write(req.offset, req.data, performance.now() + ctx.remainingMs()), req.offset + req.data.length);
            return ioDoneReply.parse({});
          },
          opts,
        ),
        bus.serve(
          subjects.controller(s.node, IoOp.zero),
          ioZeroRequest,
          async (req, ctx) => {
            controller.noteClass(req.vdisk, req.priority);
            await controller.serve(req.vdisk, (v) => v.zero(req.offset, req.length, performance.now() + ctx.remainingMs()), req.offset + req.length);
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
        bus.serve(subjects.controller(s.node, VdcOp.open), vdcOpenRequest, (req) => controller.takeOver(req.vdisk, req.epoch), opts),
        bus.serve(subjects.controller(s.node, VdcOp.relinquish), vdcRelinquishRequest, (req) => controller.relinquish(req.vdisk, req.to), opts),
        bus.serve(subjects.controller(s.node, VdcOp.recordCopy), vdcRecordCopyRequest, (req) => controller.recordCopy(req), opts),
        bus.serve(subjects.controller(s.node, VdcOp.release), vdcReleaseRequest, (req) => controller.release(req), opts),
        bus.serve(subjects.controller(s.node, VdcOp.compact), vdcCompactRequest, (req) => controller.compact(req), opts),
        bus.serve(subjects.controller(s.node, VdcOp.snapshot), vdcSnapshotRequest, (req, ctx) => controller.snapshot(req.vdisk, req.snapshot, performance.now() + ctx.remainingMs()), opts),
      ]);
      return async () => {
        await Promise.all(services.map((svc) => svc.stop()));
        await controller.stop();
        heartbeater.stop();
        stopNodeWatch();
        usage.stop();
        nodeCache.stop();
        disks.stop();
        nodes.stop();
      };
    },
  };
}
