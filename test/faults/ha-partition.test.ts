// An HA network split with storage whole (the first partition scenario of the VMware
// design). The split is made by the agents' fault injector (ha-link.ts,
// STRATA_HA_FAULTS_FILE): one host, Y, and the two others stop hearing each other's
// heartbeats and cannot send each other requests, while every agent still reaches
// JetStream. It proves that:
//  - Y is not isolated (it still reaches storage): its VM keeps running, under its
//    lease, and the master, which sees Y `partitioned` (its host record still
//    renewed), does not restart it;
//  - when that VM's process dies inside the split, Y releases its lease and the master
//    restarts it on a host it can reach, once;
//  - there is one master throughout (the election is a lease in storage, which the
//    split does not cut), so on healing there is nothing to abdicate;
// and a monitor sees at most one instance of each VM, one holder per lease epoch.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EventType } from '@strata/proto';
import { ConfigClient, UpClusters, connectClient, readEvents, sleep, waitFor, type UpCluster } from '../harness';
import { HA_TEST_ENV, VmMonitor, counters, countersPast, createVm, killAll, strata } from '../harness/ha';

const clusters = new UpClusters('ha-partition');
const LEASE_TTL_MS = 4_000;

describe('an HA network split, storage whole', () => {
  let cluster: UpCluster;
  let monitor: VmMonitor;
  const scratch = mkdtempSync(join(tmpdir(), 'strata-ha-faults-'));
  const faults = join(scratch, 'faults.json');
  beforeAll(async () => {
    writeFileSync(faults, '{}');
    cluster = await clusters.start({ env: { ...HA_TEST_ENV, STRATA_HA_FAULTS_FILE: faults } });
    monitor = await new VmMonitor().start(cluster.natsUrl);
  }, 120_000);
  afterAll(async () => {
    await monitor?.stop();
    await clusters.stopAll();
    rmSync(scratch, { recursive: true, force: true });
  }, 60_000);

  it('the cut-off host keeps its VM under its lease; a VM that dies there is restarted on the master\'s side once; one master throughout', async () => {
    const [, master, epoch] = /^master: (\S+) \(epoch (\d+)\)/.exec(await strata(cluster, ['ha', 'status']))!;
    const [x, y] = ['n1', 'n2', 'n3'].filter((h) => h !== master);
    await createVm(cluster, 'v', y!, { driver: 'process', protected: true, memory: '128M' });
    await createVm(cluster, 'w', x!, { driver: 'process', protected: true, memory: '128M' });
    for (const name of ['v', 'w']) await strata(cluster, ['vm', 'start', name]);
    for (const name of ['v', 'w']) await countersPast(cluster, name, 0, 3, 30_000);
    const original = monitor.instances('v').at(-1)!;

    writeFileSync(faults, JSON.stringify({ [master!]: [y], [x!]: [y], [y!]: [master, x] }));
    await waitFor(`host ${y} partitioned`, 15_000, async () => new RegExp(`^${y} +${y} +partitioned `, 'm').test(await strata(cluster, ['host', 'ls'])), 500);
    const splitAt = Date.now();
    await sleep(2 * LEASE_TTL_MS);
    // Still the same instance, still counting, its lease still held by y.
    expect(monitor.instances('v').map((i) => i.pid)).toEqual([original.pid]);
    expect(monitor.instances('v')[0]!.lastMs).toBeGreaterThan(splitAt + 2 * LEASE_TTL_MS - 500);
    expect(counters(cluster.dir, 'v').readies).toHaveLength(1);
    expect(await strata(cluster, ['vm', 'ls'])).toMatch(new RegExp(`^v +${y} +running `, 'm'));

    // The VM crashes inside the split: its host releases the lease, the master restarts it on its side.
    const before = Math.max(...counters(cluster.dir, 'v').printed);
    const crashedAt = Date.now();
    // Throughout the split, y renewed v's lease, and nobody else wrote it.
    const client = await ConfigClient.connect(cluster.natsUrl);
    const vId = await client.get({ kind: 'vm', name: 'v' }).then((o) => o.id).finally(() => client.close());
    const during = monitor.leases.filter((c) => c.vm === vId && c.atMs > splitAt && c.atMs < crashedAt);
    expect(during.length).toBeGreaterThan(4);
    expect(new Set(during.map((c) => `${c.holder}@${c.epoch}`))).toEqual(new Set([`${y}@${during[0]!.epoch}`]));
    killAll([original.pid]);
    const elsewhere = await waitFor('vm v to come up on the master\'s side', 30_000, () => counters(cluster.dir, 'v').readies.find((r) => r.host !== y), 200);
    await countersPast(cluster, 'v', elsewhere.counter, 2, 30_000);
    expect(elsewhere.counter).toBeGreaterThanOrEqual(before);
    const next = monitor.instances('v').filter((i) => i.pid !== original.pid);
    expect(next).toHaveLength(1);
    expect(next[0]!.firstMs).toBeGreaterThan(crashedAt);

    writeFileSync(faults, '{}');
    await waitFor(`host ${y} alive again`, 15_000, async () => new RegExp(`^${y} +${y} +alive `, 'm').test(await strata(cluster, ['host', 'ls'])), 500);
    expect(await strata(cluster, ['ha', 'status'])).toMatch(new RegExp(`^master: ${master} \\(epoch ${epoch}\\)`));
    const nc = await connectClient(cluster.natsUrl);
    const events = await readEvents(nc).finally(() => nc.close());
    expect(events.filter((e) => e.type === EventType.haMasterElected).map((e) => e.host)).toEqual([master]);
    expect(monitor.doubles).toEqual([]);
    expect(monitor.leaseViolations()).toEqual([]);
    cluster.passed = true;
  }, 180_000);
});
