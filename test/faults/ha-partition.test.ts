// Partitions of the HA network and of storage (the partition scenarios of the VMware
// design), on one cluster, one after another. Every split is made by the agents'
// fault injector (ha-link.ts, STRATA_HA_FAULTS_FILE): `ha` makes hosts stop hearing
// each other's heartbeats and refuse each other's requests; `storage` makes a host's
// agent fail every get, write and delete of the ha bucket (protection state, restart
// records, power-on leases, host records), as if its link to JetStream were cut.
// The third scenario, the same split for both, is a host cut off from the HA network
// and storage at once: the isolation test (ha-isolation.test.ts) cuts an agent's
// connection to NATS. With the election a lease in storage there is one master per
// storage side, not per HA network side: the first test shows it.
//
// An HA network split with storage whole (the first scenario): one host, Y, and the
// two others stop hearing each other's heartbeats and cannot send each other
// requests, while every agent still reaches JetStream. It proves that:
//  - Y is not isolated (it still reaches storage): its VM keeps running, under its
//    lease, and the master, which sees Y `partitioned` (its host record still
//    renewed), does not restart it;
//  - when that VM's process dies inside the split, Y releases its lease and the master
//    restarts it on a host it can reach, once;
//  - there is one master throughout (the election is a lease in storage, which the
//    split does not cut), so on healing there is nothing to abdicate;
// The storage split with the HA network whole, and different splits of the two: see
// their tests. In every test a monitor sees at most one instance of each VM, one
// holder per lease epoch.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EventType, type ClusterEvent } from '@strata/proto';
import { ConfigClient, UpClusters, connectClient, readEvents, sleep, waitFor, type UpCluster } from '../harness';
import { HA_TEST_ENV, VmMonitor, consoleMark, counters, countersPast, createVm, instanceAfter, killAll, readProtection, restartedPast, strata } from '../harness/ha';

const clusters = new UpClusters('ha-partition');
const LEASE_TTL_MS = 4_000;

describe('partitions of the HA network and of storage', () => {
  let cluster: UpCluster;
  let monitor: VmMonitor;
  let passed = 0;
  const scratch = mkdtempSync(join(tmpdir(), 'strata-ha-faults-'));
  const faults = join(scratch, 'faults.json');
  const setFaults = (f: { ha?: Record<string, Array<string | undefined>>; storage?: Array<string | undefined> }): void => writeFileSync(faults, JSON.stringify(f));
  beforeAll(async () => {
    writeFileSync(faults, '{}');
    cluster = await clusters.start({ env: { ...HA_TEST_ENV, STRATA_HA_FAULTS_FILE: faults } });
    monitor = await new VmMonitor().start(cluster.natsUrl);
  }, 120_000);
  afterAll(async () => {
    await monitor?.stop();
    if (cluster !== undefined) cluster.passed = passed === 3;
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

    setFaults({ ha: { [master!]: [y], [x!]: [y], [y!]: [master, x] } });
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

    setFaults({});
    await waitFor(`host ${y} alive again`, 15_000, async () => new RegExp(`^${y} +${y} +alive `, 'm').test(await strata(cluster, ['host', 'ls'])), 500);
    expect(await strata(cluster, ['ha', 'status'])).toMatch(new RegExp(`^master: ${master} \\(epoch ${epoch}\\)`));
    const nc = await connectClient(cluster.natsUrl);
    const events = await readEvents(nc).finally(() => nc.close());
    expect(events.filter((e) => e.type === EventType.haMasterElected).map((e) => e.host)).toEqual([master]);
    expect(monitor.doubles).toEqual([]);
    expect(monitor.leaseViolations()).toEqual([]);
    passed++;
  }, 180_000);

  // The storage split with the HA network whole (the second scenario): the master's
  // agent cannot reach the ha bucket, so it cannot write a restart record nor the
  // protection state; the other agents, which can, write them for it, and the power-on
  // goes to a host that reaches storage (it takes the lease).
  it('storage split, HA network whole: agents that reach the ha bucket write for the master, and a crashed VM restarts once', async () => {
    const [, master, epoch] = /^master: (\S+) \(epoch (\d+)\)/.exec(await strata(cluster, ['ha', 'status']))!;
    const [x] = others(master!);
    for (const name of ['v', 'w']) await strata(cluster, ['vm', 'stop', name]);
    await createVm(cluster, 's', x!, { driver: 'process', protected: true, memory: '128M' });
    await strata(cluster, ['vm', 'start', 's']);
    await countersPast(cluster, 's', 0, 3, 30_000);
    const sId = await vmId(cluster, 's');

    setFaults({ storage: [master] });
    // Three record intervals: the master's own host record is stale, so it no longer places VMs on itself.
    await sleep(3_500);
    const mark = consoleMark(cluster.dir, 's');
    const crashed = monitor.instances('s').at(-1)!;
    const crashedAt = Date.now();
    const printed = Math.max(...counters(cluster.dir, 's').printed);
    killAll([crashed.pid]);
    const next = await restartedPast(cluster, 's', mark, 2, 30_000);
    expect(next.host).not.toBe(master);
    expect(next.counter).toBeGreaterThanOrEqual(printed);
    // After the restart the master SETs the new host (it may be the same): written by an agent, for it.
    const protection = await waitFor('the protection state of s to say where it restarted', 15_000, async () => {
      const p = await readProtection(cluster.natsUrl, sId);
      return p?.reason === `restarted on ${next.host}` ? p : false;
    }, 250);
    expect(protection).toMatchObject({ power: 'on', host: next.host, service: 'ha-agent', haEpoch: Number(epoch) });
    expect(protection.setBy).not.toBe(master);
    const events = await eventsOf(cluster, (e) => e.type === EventType.haVmSetForMaster && e.name === 's' && e.message.includes(`restarted on ${next.host}`));
    const forMaster = events.filter((e) => e.type === EventType.haVmSetForMaster && e.name === 's');
    expect(forMaster.every((e) => e.host !== master)).toBe(true);
    expect(forMaster.map((e) => e.message).join('\n')).toMatch(/wrote its restart record \(step pending[\s\S]*for \S+ \(epoch \d+\), which cannot reach the ha bucket/);
    expect(forMaster.map((e) => e.message).join('\n')).toMatch(new RegExp(`wrote the protection state \\(power on, host ${next.host}: restarted on ${next.host}\\) of vm s for ${master} `));
    const after = monitor.instances('s').filter((i) => i.pid !== crashed.pid);
    expect(after).toHaveLength(1);
    expect(after[0]!.firstMs).toBeGreaterThan(crashedAt);
    expect(await strata(cluster, ['ha', 'status'])).toMatch(new RegExp(`^master: ${master} \\(epoch ${epoch}\\)`));

    setFaults({});
    expect(monitor.doubles).toEqual([]);
    expect(monitor.leaseViolations()).toEqual([]);
    passed++;
  }, 120_000);

  // Different splits of the HA network and storage (the fourth scenario): the master
  // and x cannot reach the ha bucket, and y, which can, cannot reach them over the HA
  // network. x cannot renew its VM's lease and powers it off; the master, which knows
  // the VM is protected, has no path to storage and retries at every look; once the HA
  // network heals (storage still split) y writes for it and runs the VM, once.
  it('different splits: whoever knows a VM is protected retries until it succeeds', async () => {
    const [, master] = /^master: (\S+)/.exec(await strata(cluster, ['ha', 'status']))!;
    const [x, y] = others(master!);
    await strata(cluster, ['vm', 'stop', 's']);
    await createVm(cluster, 'r', x!, { driver: 'process', protected: true, memory: '128M' });
    await strata(cluster, ['vm', 'start', 'r']);
    await countersPast(cluster, 'r', 0, 3, 30_000);
    const rId = await vmId(cluster, 'r');
    const logMark = agentLog(cluster, master!).length;
    const mark = consoleMark(cluster.dir, 'r');
    const first = monitor.instances('r').at(-1)!;

    setFaults({ ha: { [master!]: [y], [x!]: [y], [y!]: [master, x] }, storage: [master, x] });
    const cutAt = Date.now();
    await waitFor('x to power r off (it cannot renew the lease)', 10_000, () => Date.now() - monitor.instances('r').find((i) => i.pid === first.pid)!.lastMs > 1_000, 200);
    // Longer than a lease TTL after the power-off: the lease has expired, the master wants r restarted and cannot list it.
    await sleep(LEASE_TTL_MS + 3_000);
    expect(instanceAfter(cluster.dir, 'r', mark)).toBeUndefined();
    const retries = agentLog(cluster, master!).slice(logMark).filter((l) => l.includes(`cannot write the restart record of vm ${rId}: the ha bucket is unreachable here and from ${x}`));
    expect(retries.length).toBeGreaterThanOrEqual(3);
    expect(new Set(monitor.leases.filter((c) => c.vm === rId && c.atMs > cutAt && c.holder !== '').map((c) => `${c.holder}@${c.epoch}`)).size).toBeLessThanOrEqual(1);

    const healedAt = Date.now();
    setFaults({ storage: [master, x] });
    const next = await restartedPast(cluster, 'r', mark, 2, 30_000);
    expect(next.host).toBe(y);
    const after = monitor.instances('r').filter((i) => i.pid !== first.pid);
    expect(after).toHaveLength(1);
    expect(after[0]!.firstMs).toBeGreaterThan(healedAt);
    const events = await eventsOf(cluster, (e) => e.type === EventType.haVmRestarted && e.name === 'r');
    expect(events.some((e) => e.type === EventType.haVmSetForMaster && e.name === 'r' && e.host === y)).toBe(true);

    setFaults({});
    expect(monitor.doubles).toEqual([]);
    expect(monitor.leaseViolations()).toEqual([]);
    passed++;
  }, 120_000);
});

/** The hosts but `master`, in name order. */
function others(master: string): string[] {
  return ['n1', 'n2', 'n3'].filter((h) => h !== master);
}

async function vmId(cluster: UpCluster, name: string): Promise<bigint> {
  const client = await ConfigClient.connect(cluster.natsUrl);
  return client.get({ kind: 'vm', name }).then((o) => o.id).finally(() => client.close());
}

/** The cluster's events, once one matches `until` (bounded: events are published after what they tell). */
async function eventsOf(cluster: UpCluster, until: (e: ClusterEvent) => boolean): Promise<ClusterEvent[]> {
  const nc = await connectClient(cluster.natsUrl);
  try {
    return await waitFor('the event awaited', 15_000, async () => {
      const events = await readEvents(nc);
      return events.some(until) ? events : false;
    }, 500);
  } finally {
    await nc.close();
  }
}

/** The lines of a host's HA agent log. */
function agentLog(cluster: UpCluster, host: string): string[] {
  return readFileSync(join(cluster.dir, 'logs', `${host}-ha-agent.log`), 'utf8').split('\n');
}
