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
// A second case: extent groups left with one live block of two (below the compaction
// threshold of 0.6) are evacuated by the owner's drain and then reclaimed; every block
// reads back.
//
// Its teeth: with the owner's in-use check disabled (Vdisk.release giving up every
// extent group that is not a lane's open one) the last overwrite's extent groups are
// deleted before drain, and the case fails (see the report of the change that added it).
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { openBucket } from '@strata/kv';
import { EventType, buckets, mdValue, type VdiskRow } from '@strata/proto';
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
  // Extent groups of two 1 MiB blocks: one live block of two is compacted.
  STRATA_COMPACT_LIVE_FRACTION: '0.6',
};

/** Every md-vdisk row and the ids of the md-egroup entries. */
async function metadata(cluster: UpCluster): Promise<{ rows: Array<{ key: string; value: VdiskRow }>; egroups: Set<bigint> }> {
  const nc = await connectClient(cluster.natsUrl);
  try {
    const rows = await (await openBucket(nc, buckets.mdVdisk, mdValue.vdisk, { history: 1 })).entries();
    const egroups = await (await openBucket(nc, buckets.mdEgroup, mdValue.egroup, { history: 1 })).keys();
    return { rows, egroups: new Set(egroups.filter((k) => /^\d+$/.test(k)).map(BigInt)) };
  } finally {
    await nc.close();
  }
}

/** Where the rows of `vdisk` place `block`. */
function egroupOf(rows: ReadonlyArray<{ key: string; value: VdiskRow }>, vdisk: bigint, block: number): bigint | undefined {
  for (const r of rows) if (r.key.startsWith(`${vdisk}.`) && r.value.blocks[String(block)] !== undefined) return r.value.blocks[String(block)]!.egroup;
  return undefined;
}

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
      console.log(
        `${ROUNDS} overwrites of 4 MiB: replica files ${(usedBefore / MiB).toFixed(1)} MiB -> ${(usedAfter / MiB).toFixed(1)} MiB (bound ${bound / MiB} MiB); ` +
          `${released.length} extent groups released at the first look; e.g. "${scans.at(-1)!.message}"; the case took ${Math.round((Date.now() - startedMs) / 1000)} s`,
      );
    } finally {
      await nc.close();
    }
  }, 90_000);

  it('compacts extent groups that are mostly dead: drain moves their live blocks, then they are reclaimed, and every block reads back', async () => {
    const startedMs = Date.now();
    const id = createdId(await strata(cluster, ['vdisk', 'create', 'cold', '--size', '8M']));
    // Eight 1 MiB blocks, two per extent group (lane 0 takes the even blocks, lane 1 the odd ones).
    await qemuIo(uri('cold'), ['write -P 1 0 8M']);
    await waitForDrained(cluster.natsUrl, id, 20_000);
    // Blocks 0 and 1 overwritten: the extent groups of blocks 2 and 3 are half dead.
    await qemuIo(uri('cold'), ['write -P 2 0 2M']);
    const before = await metadata(cluster);
    const halfDead = [egroupOf(before.rows, id, 2)!, egroupOf(before.rows, id, 3)!];
    await waitForDrained(cluster.natsUrl, id, 20_000);
    expect(halfDead.every((e) => before.egroups.has(e))).toBe(true);
    // Their blocks move (a drain of the owner, asked by the curator), then they are unnamed and reclaimed.
    await waitFor(`extent groups ${halfDead.join(', ')} compacted and reclaimed`, 30_000, async () => {
      const now = await metadata(cluster);
      return halfDead.every((e) => !now.egroups.has(e)) ? now : undefined;
    });
    const after = await metadata(cluster);
    for (const block of [2, 3]) expect(halfDead).not.toContain(egroupOf(after.rows, id, block));
    await qemuIo(uri('cold'), ['read -P 2 0 2M', 'read -P 1 2M 6M']);
    const nc = await connectClient(cluster.natsUrl);
    try {
      const events = await readEvents(nc);
      const scan = events.find((e) => e.type === EventType.curatorScanDone && /mostly dead extent groups evacuating \(\d+ blocks/.test(e.message));
      expect(scan).toBeDefined();
      cluster.passed = true;
      console.log(`extent groups ${halfDead.join(', ')} (one live block of two) compacted and reclaimed; e.g. "${scan!.message}"; the case took ${Math.round((Date.now() - startedMs) / 1000)} s`);
    } finally {
      await nc.close();
    }
  }, 60_000);
});
