// Tiering through the curator (PROTOCOL.md section 13, "Tiering"), end to end with
// real processes on one `strata up` cluster of 3 nodes, RF 2, each node with a small
// ssd disk (64 MiB, what `strata up --disk-capacity` gives) and an hdd disk of 1 GiB
// added with `strata disk add --tier hdd`. The default container's tier order is
// ssd, hdd; the test sets the tier threshold to 40% and the cold age to 3 s.
//
// A vDisk is written through qemu-io (48 MiB, so its replicas fill the ssd tier to
// about 50%), and the writes stop. The test proves: the curator moves cold extent
// groups down to hdd until the ssd tier is at or under 40% (counted from the
// extent-group map over the ssd disks' capacity); each move is an event
// (curator.tier.move) with its reason; every extent group keeps RF 2 on distinct
// nodes; the replicas the map names on hdd disks are files there; `strata curator
// status` shows the tiers; and the data reads back byte for byte.
//
// Its teeth: with STRATA_TIERING=off (CURATOR_TEST_TIERING=off runs it so) nothing
// moves and the wait for the ssd tier to go under the threshold times out.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { EventType } from '@strata/proto';
import { UpClusters, connectClient, readEvents, waitFor, type UpCluster } from '../harness';
import { egroupsOf, protectionProblem } from '../harness/curator';
import { HA_TEST_ENV, strata } from '../harness/ha';
import { createdId, qemuIo } from '../harness/strata';

const KiB = 1024;
const MiB = 1024 * KiB;
const SSD_BYTES = 64 * MiB;
const THRESHOLD_PCT = 40;

const ENV: Record<string, string> = {
  ...HA_TEST_ENV,
  STRATA_CURATOR_SCAN_INTERVAL_MS: '1000',
  STRATA_EGROUP_SIZE_BYTES: String(2 * MiB),
  STRATA_DRAIN_START_BYTES: String(64 * KiB),
  STRATA_TIER_THRESHOLD_PCT: String(THRESHOLD_PCT),
  STRATA_TIER_COLD_AFTER_MS: '3000',
  STRATA_TIERING: process.env.CURATOR_TEST_TIERING ?? 'on',
};

const clusters = new UpClusters('tiering');

interface DiskRow {
  id: string;
  name: string;
  spec: { node: string; tier: string; path: string };
}

describe('tiering through the curator', () => {
  let cluster: UpCluster;

  beforeAll(async () => {
    cluster = await clusters.start({ env: ENV, upArgs: ['--disk-capacity', '64M'] });
    for (const k of [1, 2, 3]) {
      await strata(cluster, ['disk', 'add', `n${k}-hdd`, '--node', `n${k}`, '--path', join(cluster.dir, 'disks', `n${k}-hdd`), '--capacity', '1G', '--tier', 'hdd']);
    }
  }, 120_000);

  afterAll(async () => {
    await clusters.stopAll();
  }, 60_000);

  it('moves cold extent groups from a full ssd tier down to hdd, never below RF, and the data reads back', async () => {
    const disks = JSON.parse(await strata(cluster, ['--json', 'disk', 'ls'])) as DiskRow[];
    const tierOf = new Map(disks.map((d) => [BigInt(d.id), d.spec.tier]));
    const pathOf = new Map(disks.map((d) => [BigInt(d.id), d.spec.path]));
    expect([...tierOf.values()].sort()).toEqual(['hdd', 'hdd', 'hdd', 'ssd', 'ssd', 'ssd']);

    const id = createdId(await strata(cluster, ['vdisk', 'create', 'tiered', '--size', '64M']));
    const uri = `nbd://127.0.0.1:${cluster.nbdPort}/tiered`;
    const writes = Array.from({ length: 12 }, (_, i) => `write -P ${0x10 + i} ${i * 4}M 4M`);
    await qemuIo(uri, writes);

    /** The ssd tier's used share as the extent-group map has it, and the map. */
    const ssdShare = async (): Promise<{ pct: number; map: Awaited<ReturnType<typeof egroupsOf>> }> => {
      const map = await egroupsOf(cluster.natsUrl, id);
      let bytes = 0;
      for (const e of map.values()) for (const r of e.replicas) if (tierOf.get(r.disk) === 'ssd') bytes += e.sizeBytes;
      return { pct: (100 * bytes) / (3 * SSD_BYTES), map };
    };
    // Drained to the extent stores: every block is in an extent group.
    const before = await waitFor('48 MiB in extent groups on the ssd tier', 60_000, async () => {
      const s = await ssdShare();
      return s.pct > THRESHOLD_PCT ? s : false;
    });
    console.log(`tiering: the ssd tier at ${before.pct.toFixed(1)}% with ${before.map.size} extent groups before tiering`);

    const after = await waitFor(`the ssd tier at or under ${THRESHOLD_PCT}%`, 60_000, async () => {
      const s = await ssdShare();
      return s.pct <= THRESHOLD_PCT ? s : false;
    }, 500);
    const onHdd = [...after.map.entries()].flatMap(([egroup, e]) => e.replicas.filter((r) => tierOf.get(r.disk) === 'hdd').map((r) => ({ egroup, disk: r.disk })));
    console.log(`tiering: the ssd tier at ${after.pct.toFixed(1)}%, ${onHdd.length} replicas on hdd`);
    expect(onHdd.length).toBeGreaterThan(0);
    for (const [egroup, e] of after.map) expect(protectionProblem(egroup, e, 2, new Set())).toBeUndefined();
    for (const r of onHdd) expect(existsSync(join(pathOf.get(r.disk)!, 'egroups', `${r.egroup}.eg`))).toBe(true);

    const nc = await connectClient(cluster.natsUrl);
    try {
      const moves = (await readEvents(nc)).filter((e) => e.type === EventType.curatorTierMove);
      expect(moves.length).toBeGreaterThanOrEqual(onHdd.length);
      for (const m of moves) {
        expect(m.reason).toMatch(new RegExp(`^tiering: tier ssd at [\\d.]+% used \\(threshold ${THRESHOLD_PCT}%\\); extent group not written for \\d+ s moves to tier hdd$`));
        expect(tierOf.get(m.toDisk!)).toBe('hdd');
        expect(tierOf.get(m.fromDisk!)).toBe('ssd');
      }
    } finally {
      await nc.close();
    }
    expect(await strata(cluster, ['curator', 'status'])).toMatch(new RegExp(`^tiering: on, threshold ${THRESHOLD_PCT}%, cold after 3 s; tiers (ssd|hdd) [\\d.]+%, (ssd|hdd) [\\d.]+%; \\d+ moves queued or running, [1-9]\\d* done$`, 'm'));
    await qemuIo(uri, Array.from({ length: 12 }, (_, i) => `read -P ${0x10 + i} ${i * 4}M 4M`));
    cluster.passed = true;
  }, 150_000);
});
