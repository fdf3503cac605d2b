// Extent-level garbage collection of a live vDisk (issue 17; PROTOCOL.md section 13,
// "Extent-level garbage collection"), end to end with real processes: one `strata up`
// cluster of 3 nodes (RF 2), 2 MiB extent groups, two direct-write lanes, a curator
// scan every second and a reclaim grace of 1.5 s. Drain waits 4 s after the last
// write, so direct writes stay undrained (named only by `ref` ops in the owner's
// index) for longer than the grace: the owner must keep those.
//
// A vDisk written with pattern 1 is snapshotted, then overwritten 12 times with large
// (direct) writes of the same 4 MiB, and last a second range is written once, which
// moves the lanes on: the last overwrite's extent groups are then no lane's open one,
// and their only names are undrained references. After scans:
//  - the replica files on the disks come back near the live data (within RF x (2 x
//    the live bytes + one extent group per lane and drain));
//  - `egroup.reclaimed` events say the owner released them, and the scan summary counts them;
//  - every acknowledged write reads back (the last pattern), also after drain;
//  - the snapshot still reads pattern 1 (its extent groups are named by its rows).
//
// Its teeth: with the owner's in-use check disabled (Vdisk.release giving up every
// extent group that is not a lane's open one) the last overwrite's extent groups are
// deleted before drain, and the case fails (see the report of the change that added it).
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { EventType } from '@strata/proto';
import { UpClusters, connectClient, readEvents, waitFor, type UpCluster } from '../harness';
import { strata } from '../harness/ha';
import { createdId, qemuIo, qemuIoReadOnly, waitForDrained } from '../harness/strata';

const KiB = 1024;
const MiB = 1024 * KiB;
const EGROUP = 2 * MiB;
const LANES = 2;
const RF = 2;
const ROUNDS = 12;

const clusters = new UpClusters('curator-reclaim');

const ENV: Record<string, string> = {
  NATS_URL: '',
  STRATA_DRAIN_IDLE_MS: '4000',
  STRATA_EGROUP_SIZE_BYTES: String(EGROUP),
  STRATA_DIRECT_LANES: String(LANES),
  STRATA_CURATOR_SCAN_INTERVAL_MS: '1000',
  STRATA_RECLAIM_GRACE_MS: '1500',
};

/** Bytes of every replica file on the cluster's disks. */
function replicaBytes(cluster: UpCluster): number {
  let total = 0;
  const disks = join(cluster.dir, 'disks');
  for (const disk of readdirSync(disks)) {
    const dir = join(disks, disk, 'egroups');
    for (const f of readdirSync(dir)) if (f.endsWith('.eg')) total += statSync(join(dir, f)).size;
  }
  return total;
}

describe('extent groups of a live vDisk that nothing names are reclaimed', () => {
  let cluster: UpCluster;
  const uri = (name: string): string => `nbd://127.0.0.1:${cluster.nbdPort}/${name}`;
  beforeAll(async () => {
    cluster = await clusters.start({ nodes: 3, env: ENV });
  }, 120_000);
  afterAll(async () => {
    await clusters.stopAll();
  }, 60_000);

  it('frees the space of repeated overwrites, keeps undrained direct writes and the snapshot, and every write reads back', async () => {
    const startedMs = Date.now();
    const id = createdId(await strata(cluster, ['vdisk', 'create', 'hot', '--size', '16M']));
    await qemuIo(uri('hot'), ['write -P 1 0 4M']);
    await strata(cluster, ['vdisk', 'snapshot', 'hot', 'base']);
    for (let round = 0; round < ROUNDS; round++) await qemuIo(uri('hot'), [`write -P ${2 + round} 0 4M`]);
    const last = 1 + ROUNDS;
    // The lanes move on: the last overwrite's extent groups are no lane's open one now.
    await qemuIo(uri('hot'), ['write -P 99 8M 4M']);
    const usedBefore = replicaBytes(cluster);

    // Live: 4 MiB of the snapshot, 8 MiB of the vDisk.
    const liveBytes = 12 * MiB;
    const bound = RF * (2 * liveBytes + (LANES + 1) * EGROUP);
    const nc = await connectClient(cluster.natsUrl);
    try {
      // Reclaimed while the newest writes are still undrained (drain waits 4 s): they read back meanwhile.
      const released = await waitFor('an extent group released by its owner and reclaimed', 20_000, async () => {
        const events = (await readEvents(nc)).filter((e) => e.type === EventType.egroupReclaimed && /released by its writer, vdisk \d+, owned by n\d/.test(e.reason ?? ''));
        return events.length > 0 ? events : undefined;
      });
      await qemuIo(uri('hot'), [`read -P ${last} 0 4M`, 'read -P 99 8M 4M']);
      await waitForDrained(cluster.natsUrl, id, 20_000);
      const usedAfter = await waitFor(`replica files within ${bound / MiB} MiB`, 20_000, () => {
        const used = replicaBytes(cluster);
        return used <= bound ? used : undefined;
      });
      expect(usedBefore).toBeGreaterThan(bound);
      await qemuIo(uri('hot'), [`read -P ${last} 0 4M`, 'read -P 0 4M 4M', 'read -P 99 8M 4M', 'read -P 0 12M 4M']);
      await qemuIoReadOnly(uri('base'), ['read -P 1 0 4M', 'read -P 0 4M 12M']);
      const events = await readEvents(nc);
      const scans = events.filter((e) => e.type === EventType.curatorScanDone && /extent groups reclaimed/.test(e.message));
      expect(scans.length).toBeGreaterThan(0);
      cluster.passed = true;
      console.log(
        `${ROUNDS} overwrites of 4 MiB: replica files ${(usedBefore / MiB).toFixed(1)} MiB -> ${(usedAfter / MiB).toFixed(1)} MiB (bound ${bound / MiB} MiB); ` +
          `${released.length} extent groups released at the first look; e.g. "${scans.at(-1)!.message}"; the case took ${Math.round((Date.now() - startedMs) / 1000)} s`,
      );
    } finally {
      await nc.close();
    }
  }, 90_000);
});
