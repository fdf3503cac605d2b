// The consistency check of a running cluster (imported directly): reads every config
// vDisk and disk, every metadata map (md-vdisk, md-extent, md-egroup), the `own` keys
// and ownership generations, the OPLOG stream's subjects and every configured disk's
// directory of replica files (`<path>/egroups/<id>.eg` and its `.meta` sidecar), and
// hands them to checkCluster (@strata/sweep, pure) for its garbage and dangling
// references. The disks are read from the file system, not through the extent stores,
// so a store that lists wrongly cannot hide a file.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { ConfigClient } from '@strata/config-client';
import { openBucket } from '@strata/kv';
import { buckets, mdValue, streams, vdiskOwnership } from '@strata/proto';
import { checkCluster, type CheckInput, type DiskContents, type Finding } from '@strata/sweep';
import { withNats } from './space';

const REPLICA_FILE = /^([0-9]+)\.(?:eg|meta)$/;
const OWNERSHIP_KEY = /^vdisk\.([0-9]+)$/;

/** The extent groups with a file on the disk at `path` (none when it has no directory yet). */
export function replicaFiles(path: string): bigint[] {
  let names: string[];
  try {
    names = readdirSync(join(path, 'egroups'));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const ids = new Set<bigint>();
  for (const name of names) {
    const match = REPLICA_FILE.exec(name);
    if (match !== null) ids.add(BigInt(match[1]!));
  }
  return [...ids].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/** Everything checkCluster reads, from the cluster at `natsUrl` and its disks' directories. */
export async function readCluster(natsUrl: string, creatingTimeoutMs?: number): Promise<CheckInput> {
  const config = await ConfigClient.connect(natsUrl);
  try {
    const [vdisks, disks, nodes] = await Promise.all([config.list('vdisk'), config.list('disk'), config.list('node')]);
    const nodeName = new Map(nodes.map((n) => [n.id, n.name]));
    return await withNats(natsUrl, async (nc) => {
      const [rowsBucket, extentsBucket, egroupsBucket, own] = await Promise.all([
        openBucket(nc, buckets.mdVdisk, mdValue.vdisk, { history: 1 }),
        openBucket(nc, buckets.mdExtent, mdValue.extent, { history: 1 }),
        openBucket(nc, buckets.mdEgroup, mdValue.egroup, { history: 1 }),
        openBucket(nc, buckets.own, vdiskOwnership),
      ]);
      const ownKeys = await own.keys();
      const generations = new Map<bigint, number>();
      for (const key of ownKeys) {
        const match = OWNERSHIP_KEY.exec(key);
        const record = match === null ? null : await own.get(key);
        if (record !== null && match !== null) generations.set(BigInt(match[1]!), record.value.generation);
      }
      const jsm = await jetstreamManager(nc);
      const info = await jsm.streams.info(streams.oplog, { subjects_filter: '>' }).catch(() => undefined);
      const listings: DiskContents[] = disks.map((d) => ({ node: nodeName.get(d.spec.node) ?? `node ${d.spec.node}`, disk: d.id, egroups: replicaFiles(d.spec.path) }));
      return {
        vdisks,
        disks: disks.map((d) => d.id),
        rows: await rowsBucket.entries(),
        extents: (await extentsBucket.entries()).map((e) => ({ key: e.key, egroup: e.value.egroup })),
        egroups: (await egroupsBucket.entries()).filter((e) => /^[0-9]+$/.test(e.key)).map((e) => ({ id: BigInt(e.key), entry: e.value })),
        generations,
        ownKeys,
        oplog: new Map(Object.entries(info?.state.subjects ?? {})),
        listings,
        nowMs: Date.now(),
        ...(creatingTimeoutMs === undefined ? {} : { creatingTimeoutMs }),
      };
    });
  } finally {
    await config.close();
  }
}

/** The garbage and dangling references of the cluster at `natsUrl` now (empty: clean). */
export async function checkLiveCluster(natsUrl: string, creatingTimeoutMs?: number): Promise<Finding[]> {
  return checkCluster(await readCluster(natsUrl, creatingTimeoutMs));
}
