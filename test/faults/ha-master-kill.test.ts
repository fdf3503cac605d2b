// The HA master killed -9 while it restarts VMs (PROTOCOL.md section 12): four
// protected process VMs run on a host that is not the master's; every process of that
// host is killed; as soon as the master powers one on (restarted one at a time,
// restartsInFlightMax 1) while at least two others have not run again yet, its agent
// is killed -9. (The master lists each VM when its lease expires, and the leases
// expire up to a renewal interval apart, so the test cannot wait for all four to be
// listed: the first restarts may be over by then.) The third host's agent takes
// role.ha, reads the protection state, the leases and the restart records, lists
// whatever VM the first master had not, and finishes the restarts. It proves that every VM
// runs again, once: a monitor of every VM process and every power-on lease never sees
// two instances of a VM, nor two holders of one lease epoch.
import { EventType } from '@strata/proto';
import { UpClusters, connectClient, readEvents, waitFor, type UpCluster } from '../harness';
import { HA_TEST_ENV, VmMonitor, consoleMark, counters, countersPast, createVm, hostProcesses, instanceAfter, killAll, readRestarts, restartedPast, strata, type NewInstance } from '../harness/ha';
import { childMatching } from '../harness/strata';

const clusters = new UpClusters('ha-master-kill');
const VMS = ['v1', 'v2', 'v3', 'v4'];

describe('the HA master killed in the middle of restarts', () => {
  let cluster: UpCluster;
  let monitor: VmMonitor;
  beforeAll(async () => {
    cluster = await clusters.start({ env: { ...HA_TEST_ENV, STRATA_RESTART_DELAY_MS: '600000', STRATA_RESTARTS_IN_FLIGHT_MAX: '1' } });
    monitor = await new VmMonitor().start(cluster.natsUrl);
  }, 120_000);
  afterAll(async () => {
    await monitor?.stop();
    await clusters.stopAll();
  }, 60_000);

  it('the next master reads the state and finishes them; no VM is started twice', async () => {
    const first = await strata(cluster, ['ha', 'status']);
    const [, master, epoch] = /^master: (\S+) \(epoch (\d+)\)/.exec(first)!;
    const [victim, survivor] = ['n1', 'n2', 'n3'].filter((h) => h !== master);
    for (const name of VMS) {
      await createVm(cluster, name, victim!, { driver: 'process', protected: true, memory: '128M' });
      await strata(cluster, ['vm', 'start', name]);
    }
    for (const name of VMS) await countersPast(cluster, name, 0, 3, 30_000);
    const marks = new Map(VMS.map((name) => [name, consoleMark(cluster.dir, name)]));

    const masterAgent = await childMatching(cluster.up.pid(), new RegExp(`ha-agent/dist/main\\.js --host ${master} `));
    killAll((await hostProcesses(cluster.up.pid(), victim!)).keys());
    // Read once they are dead: they printed on until the kill landed.
    const before = new Map(VMS.map((name) => [name, Math.max(...counters(cluster.dir, name).printed)]));
    // In the middle: one being powered on, at least two others not running again yet.
    const listed = await waitFor('the master to power one on while two others have not run again', 20_000, async () => {
      const records = await readRestarts(cluster.natsUrl);
      const notYet = VMS.filter((name) => instanceAfter(cluster.dir, name, marks.get(name)!) === undefined);
      return notYet.length >= 2 && [...records.values()].some((r) => r.step === 'powering-on') ? records : false;
    }, 20);
    killAll([masterAgent]);
    console.log(`master ${master} killed with ${listed.size} restart records: ${[...listed.values()].map((r) => `${r.vm} ${r.step}`).join(', ')}`);

    const restarted = new Map<string, NewInstance>();
    for (const name of VMS) restarted.set(name, await restartedPast(cluster, name, marks.get(name)!, 2, 60_000));
    // The master ends a restart once the power-on's reply is in, which may come after the VM's first counters.
    const after = await waitFor('the restart list to be empty', 15_000, async () => {
      const status = await strata(cluster, ['ha', 'status']);
      return /^restart list: empty$/m.test(status) ? status : false;
    }, 250);
    expect(after).toMatch(new RegExp(`^master: ${survivor} \\(epoch (\\d+)\\)`));
    expect(Number(/epoch (\d+)/.exec(after)![1])).toBeGreaterThan(Number(epoch));
    const ls = await strata(cluster, ['vm', 'ls']);
    for (const name of VMS) expect(ls).toMatch(new RegExp(`^${name} +${survivor} +running `, 'm'));
    for (const name of VMS) expect(restarted.get(name)!.host).toBe(survivor);
    for (const name of VMS) expect(restarted.get(name)!.counter).toBeGreaterThanOrEqual(before.get(name)!);

    const nc = await connectClient(cluster.natsUrl);
    const events = await readEvents(nc).finally(() => nc.close());
    expect(events.some((e) => e.type === EventType.haMasterElected && e.host === survivor)).toBe(true);
    expect(monitor.doubles).toEqual([]);
    expect([...monitor.peak.values()].every((n) => n <= 1)).toBe(true);
    expect(monitor.leaseViolations()).toEqual([]);
    cluster.passed = true;
  }, 240_000);
});
