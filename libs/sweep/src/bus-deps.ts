// The sweep's ports over NATS: the config service for the vDisks and the commit, the
// metadata buckets read directly for their keys (a scan; only the shards write them)
// and the shards for the deletes, the extent stores for the replicas, `own` and the
// OPLOG stream, and the EVENTS stream for the record of each vDisk swept.
import { jetstreamManager } from '@nats-io/jetstream';
import type { Bus } from '@strata/bus';
import type { ConfigClient } from '@strata/config-client';
import { ErrorCode, isStrataError } from '@strata/errors';
import { EventLog } from '@strata/events';
import { modify, openBucket } from '@strata/kv';
import { MdClient } from '@strata/md-client';
import { EstoreOp, VdcOp, vdcCompactReply, vdcReleaseReply, buckets, keys, egDeleteReply, egStatReply, egroupEntry, streams, subjects, vdiskOwnership, vdiskRow } from '@strata/proto';
import type { SweepPorts } from './sweep';

/** Compare-and-set attempts of the fence before the vDisk's sweep fails (and waits for the next). */
const FENCE_ATTEMPTS = 5;

export interface BusSweepOptions {
  bus: Bus;
  config: ConfigClient;
  /** Deadline of each request to an extent store or a metadata shard. */
  timeoutMs?: number;
}

export async function sweepPortsFor({ bus, config, timeoutMs = 10_000 }: BusSweepOptions): Promise<SweepPorts> {
  const nc = bus.nc;
  const [rows, egroups, own, jsm] = await Promise.all([
    openBucket(nc, buckets.mdVdisk, vdiskRow),
    openBucket(nc, buckets.mdEgroup, egroupEntry),
    openBucket(nc, buckets.own, vdiskOwnership),
    jetstreamManager(nc),
  ]);
  const md = new MdClient(bus, { timeoutMs });
  const events = new EventLog(nc);
  return {
    listVdisks: () => config.list('vdisk'),
    rows: () => rows.entries(),
    generation: async (vdisk) => (await own.get(keys.vdiskOwnership(vdisk)))?.value.generation ?? 0,
    egroups: async () => (await egroups.entries()).map((e) => ({ id: BigInt(e.key), entry: e.value, revision: e.revision })),
    ownership: async (vdisk) => {
      const got = await own.get(keys.vdiskOwnership(vdisk));
      return got === null ? null : { owner: got.value.owner, epoch: got.value.epoch };
    },
    compact: async (node, vdisk, epoch, ids) => {
      const reply = await bus.request(subjects.controller(node, VdcOp.compact), { vdisk, epoch, egroups: [...ids] }, vdcCompactReply, { timeoutMs });
      return { evacuating: reply.evacuating, blocks: reply.blocks };
    },
    release: async (node, vdisk, epoch, ids) => (await bus.request(subjects.controller(node, VdcOp.release), { vdisk, epoch, egroups: [...ids] }, vdcReleaseReply, { timeoutMs })).released,
    ownKeys: () => own.keys(),
    // Out of attempts: UNAVAILABLE, and the next sweep tries again.
    fenceOwnership: async (key) => {
      await modify(own, key, (current) => (current === null ? undefined : { ...current.value, epoch: current.value.epoch + 1 }), FENCE_ATTEMPTS);
    },
    deleteReplica: async (node, disk, egroup) => {
      const sizeBytes = await bus
        .request(subjects.estore(node, EstoreOp.stat), { disk, egroup }, egStatReply, { timeoutMs })
        .then((stat) => stat.sizeBytes)
        .catch((err: unknown) => {
          if (isStrataError(err, ErrorCode.NOT_FOUND)) return 0;
          throw err;
        });
      await bus.request(subjects.estore(node, EstoreOp.delete), { disk, egroup }, egDeleteReply, { timeoutMs });
      return sizeBytes;
    },
    deleteMd: (map, key, revision) => md.delete(map, key, revision),
    deleteOwn: (key) => own.delete(key),
    purgeOplog: async (subject) => {
      try {
        await jsm.streams.purge(streams.oplog, { filter: subject });
      } catch (err) {
        // No OPLOG stream: no vDisk was ever written, so there is nothing to purge.
        if (/stream not found/i.test((err as Error).message ?? '')) return;
        throw err;
      }
    },
    commit: async (vdisk, name, revision) => {
      try {
        await config.delete('vdisk', name, revision);
      } catch (err) {
        // Committed already: a sweep that stopped right after the delete.
        if (isStrataError(err, ErrorCode.NOT_FOUND)) return;
        throw err;
      }
    },
    event: (event) => events.append(event),
  };
}
