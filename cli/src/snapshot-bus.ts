// The ports of `strata vdisk snapshot` and `strata vdisk clone` over NATS: the config
// service, the source's owner reached through an io-director, the vDisk map (read
// directly for a snapshot's row keys, written through the metadata shards), and the
// EVENTS stream.
import type { Bus } from '@strata/bus';
import type { ConfigClient } from '@strata/config-client';
import { ErrorCode, StrataError, isStrataError } from '@strata/errors';
import { EventLog } from '@strata/events';
import { openBucket } from '@strata/kv';
import { MdClient } from '@strata/md-client';
import { DirectorOp, buckets, keys, subjects, vdcSnapshotReply, vdiskOwnership, vdiskRow, type ObjectOf } from '@strata/proto';
import { NAMED_TIMEOUT } from './client';
import type { SnapshotPorts } from './snapshot';

/** A snapshot's whole budget: the owner holds writes, drains and copies the rows within it. */
const CUT_TIMEOUT_MS = 60_000;

function asVdisk(o: { kind: string }): ObjectOf<'vdisk'> {
  if (o.kind !== 'vdisk') throw new StrataError(ErrorCode.INTERNAL, `config returned a ${o.kind} for a vdisk`);
  return o as ObjectOf<'vdisk'>;
}

export async function snapshotPortsFor(bus: Bus, config: ConfigClient): Promise<SnapshotPorts> {
  const [rows, own] = await Promise.all([openBucket(bus.nc, buckets.mdVdisk, vdiskRow), openBucket(bus.nc, buckets.own, vdiskOwnership)]);
  const md = new MdClient(bus);
  const events = new EventLog(bus.nc);
  /** The node whose director takes the request: the owner's, or else any live node (its director claims the vDisk). */
  const directorFor = async (vdisk: bigint): Promise<string> => {
    const owner = (await own.get(keys.vdiskOwnership(vdisk)))?.value.owner;
    if (owner !== undefined) return owner;
    const live = (await config.list('node')).find((n) => n.kind === 'node' && n.status.liveness === 'alive');
    if (live === undefined) throw new StrataError(ErrorCode.UNAVAILABLE, 'no live node to take the snapshot');
    return live.name;
  };
  return {
    get: async (name) => asVdisk(await config.get({ kind: 'vdisk', name })),
    create: async (name, spec) => asVdisk(await config.create({ kind: 'vdisk', name, spec })),
    update: async (name, spec, revision) => asVdisk(await config.update({ kind: 'vdisk', name, spec, revision })),
    cut: async (vdisk, snapshot) => {
      const node = await directorFor(vdisk);
      try {
        return await bus.request(subjects.io(node, DirectorOp.snapshot), { vdisk, snapshot }, vdcSnapshotReply, { timeoutMs: CUT_TIMEOUT_MS });
      } catch (err) {
        // Not the config service: the owner's controller (killed or restarted mid-cut, found by the crash test).
        if (!isStrataError(err, ErrorCode.TIMEOUT)) throw err;
        throw new StrataError(ErrorCode.TIMEOUT, `node ${node} did not finish the cut of vdisk ${vdisk} (${err.message}); its vdisk-controller may have restarted: take the snapshot again`, { cause: err, hint: NAMED_TIMEOUT });
      }
    },
    copyRows: async (from, to) => {
      let copied = 0;
      let blocks = 0;
      for (const key of await rows.keys(`${from}.*`)) {
        const row = await rows.get(key);
        if (row === null) continue;
        const target = `${to}.${key.slice(key.indexOf('.') + 1)}`;
        const current = await md.get('vdisk', target);
        await md.put('vdisk', target, row.value, current?.revision ?? 0);
        copied++;
        blocks += Object.keys(row.value.blocks).length;
      }
      return { rows: copied, blocks };
    },
    event: (event) => events.append(event),
    nowMs: () => Date.now(),
  };
}
