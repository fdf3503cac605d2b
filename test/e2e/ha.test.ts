// HA end to end (design.md, "HA"; PROTOCOL.md section 12): a cluster started by
// `strata up` (three nodes, each also a host with its HA agent), real VMs (QEMU guests
// booting Debian's kernel, and workload processes) doing I/O through their host's
// gateway over NBD, and whole hosts killed (every process: node actors, agent, VMs),
// kept down by a long supervisor restart delay. A monitor watches every VM process on
// the machine (every 50 ms) and every power-on lease throughout. It proves that:
//  - a host running two protected QEMU guests, one protected process VM and one
//    unprotected process VM is killed: every protected VM runs on another host within
//    the bound, the unprotected one does not restart (and says why), there is never
//    more than one instance of a VM, no lease epoch has two holders, and each VM's
//    counter continues from the last value it printed as acknowledged;
//  - with every host full (one CPU each), a protected VM of a killed host waits for
//    capacity, shown with its reason, and restarts as soon as a VM is stopped, not before.
import { EventType } from '@strata/proto';
import { UpClusters, connectClient, readEvents, run, sleep, waitFor, type UpCluster } from '../harness';
import { HA_TEST_ENV, VmMonitor, consoleMark, counters, countersPast, createVm, hostProcesses, killAll, restartedPast, strata } from '../harness/ha';

const clusters = new UpClusters('ha');
/** How long a protected VM may take from its host's death to running elsewhere, in these tests. */
const RESTART_BOUND_MS = 30_000;

describe('a whole host killed', () => {
  let cluster: UpCluster;
  let monitor: VmMonitor;
  beforeAll(async () => {
    cluster = await clusters.start({ env: { ...HA_TEST_ENV, STRATA_RESTART_DELAY_MS: '600000' } });
    monitor = await new VmMonitor().start(cluster.natsUrl);
  }, 120_000);
  afterAll(async () => {
    await monitor?.stop();
    await clusters.stopAll();
  }, 60_000);

  it('two protected QEMU guests, a protected and an unprotected process VM: the protected ones run elsewhere within the bound, never twice, counters continuing; the unprotected one stays off', async () => {
    const vms = { q1: { driver: 'qemu', protected: true, priority: 'high' }, q2: { driver: 'qemu', protected: true }, p1: { driver: 'process', protected: true, priority: 'low', memory: '128M' }, u1: { driver: 'process', protected: false, memory: '128M' } } as const;
    for (const [name, o] of Object.entries(vms)) await createVm(cluster, name, 'n1', o);
    for (const name of Object.keys(vms)) expect(await strata(cluster, ['vm', 'start', name])).toMatch(new RegExp(`^vm ${name} running on n1 `));
    for (const name of Object.keys(vms)) await countersPast(cluster, name, 0, 3, 30_000);
    const status = await strata(cluster, ['ha', 'status']);
    const master = /^master: (\S+)/.exec(status)?.[1];

    const victims = await hostProcesses(cluster.up.pid(), 'n1');
    expect([...victims.values()].filter((c) => /--host n1/.test(c))).toHaveLength(1);
    const marks = new Map(Object.keys(vms).map((name) => [name, consoleMark(cluster.dir, name)]));
    const killedAt = Date.now();
    killAll(victims.keys());
    // Read once they are dead: they printed on until the kill landed.
    const before = new Map(Object.keys(vms).map((name) => [name, Math.max(...counters(cluster.dir, name).printed)]));

    const restartedIn = new Map<string, number>();
    for (const name of ['q1', 'q2', 'p1']) {
      const next = await restartedPast(cluster, name, marks.get(name)!, 2, RESTART_BOUND_MS);
      restartedIn.set(name, Date.now() - killedAt);
      // The new instance read the counter last acknowledged (or the one after it, written but not yet printed) and went on from there.
      expect(next.host).not.toBe('n1');
      expect(next.counter).toBeGreaterThanOrEqual(before.get(name)!);
      expect(next.counter).toBeLessThanOrEqual(before.get(name)! + 1);
      expect(next.printed[0]).toBe(next.counter + 1);
    }
    console.log(`master ${master}; restarted after the kill: ${[...restartedIn].map(([n, ms]) => `${n} ${ms} ms`).join(', ')}`);

    // The unprotected VM: not restarted, and the reason is recorded.
    await sleep(3_000);
    expect(monitor.instances('u1').filter((i) => i.lastMs > killedAt + 500)).toEqual([]);
    const ls = await strata(cluster, ['vm', 'ls']);
    for (const name of ['q1', 'q2', 'p1']) expect(ls).toMatch(new RegExp(`^${name} +n[23] +running `, 'm'));
    expect(ls).toMatch(/^u1 +n1 +stopped +no .*not HA-protected/m);
    expect(await strata(cluster, ['vm', 'why', 'u1'])).toMatch(/ha\.vm\.not-restarted +vm u1 is not restarted: not HA-protected/);
    expect(await strata(cluster, ['vm', 'why', 'q1'])).toMatch(/ha\.vm\.listed[\s\S]*ha\.vm\.restarted +vm q1 restarted on n[23]/);

    // Never two instances, and every lease epoch had one holder.
    expect(monitor.doubles).toEqual([]);
    expect([...monitor.peak.values()].every((n) => n <= 1)).toBe(true);
    expect(monitor.leaseViolations()).toEqual([]);
    const nc = await connectClient(cluster.natsUrl);
    try {
      const restarted = (await readEvents(nc)).filter((e) => e.type === EventType.haVmRestarted);
      expect(restarted.map((e) => e.name).sort()).toEqual(['p1', 'q1', 'q2']);
    } finally {
      await nc.close();
    }
    cluster.passed = true;
  }, 240_000);
});

describe('no host with capacity', () => {
  let cluster: UpCluster;
  let monitor: VmMonitor;
  beforeAll(async () => {
    cluster = await clusters.start({ env: { ...HA_TEST_ENV, STRATA_RESTART_DELAY_MS: '600000' }, upArgs: ['--host-cpus', '1'] });
    monitor = await new VmMonitor().start(cluster.natsUrl);
  }, 120_000);
  afterAll(async () => {
    await monitor?.stop();
    await clusters.stopAll();
  }, 60_000);

  it('a protected VM of a killed host waits for capacity, and restarts when a VM is stopped, not before', async () => {
    for (const [name, host] of [['a', 'n1'], ['b', 'n2'], ['c', 'n3']] as const) {
      await createVm(cluster, name, host, { driver: 'process', protected: name === 'a', memory: '128M' });
      await strata(cluster, ['vm', 'start', name]);
    }
    await countersPast(cluster, 'a', 0, 3, 30_000);
    const mark = consoleMark(cluster.dir, 'a');
    killAll((await hostProcesses(cluster.up.pid(), 'n1')).keys());

    const waiting = await waitFor('vm a to wait for capacity', 20_000, async () => {
      const status = await strata(cluster, ['ha', 'status']);
      return /^ {2}a \(medium\) wait-capacity: no alive host has 1 CPU and 128 MiB free \(n2 0 CPU\/.*, n3 0 CPU\/.*\) \(.*expired\)$/m.test(status) ? status : false;
    }, 500);
    expect(waiting).toMatch(/^restart list:$/m);
    expect(await strata(cluster, ['vm', 'ls'])).toMatch(/^a +n1 +restarting +yes /m);
    await sleep(3_000);
    const stoppedAt = Date.now();
    expect(await strata(cluster, ['vm', 'stop', 'c'])).toBe('vm c stopped\n');
    await restartedPast(cluster, 'a', mark, 2, RESTART_BOUND_MS);
    const after = monitor.instances('a').filter((i) => i.lastMs > stoppedAt);
    expect(after).toHaveLength(1);
    expect(after[0]!.firstMs).toBeGreaterThan(stoppedAt);
    expect(monitor.instances('a').filter((i) => i.firstMs < stoppedAt && i.lastMs > stoppedAt - 1_000)).toEqual([]);
    expect(await strata(cluster, ['vm', 'ls'])).toMatch(/^a +n3 +running /m);
    expect(await strata(cluster, ['vm', 'why', 'a'])).toMatch(/ha\.vm\.waiting +vm a waits for capacity: no alive host has 1 CPU[\s\S]*ha\.vm\.restarted +vm a restarted on n3/);
    // A running VM cannot be deleted; a stopped one can.
    const refused = await run(process.execPath, ['cli/dist/main.js', '--dir', cluster.dir, 'vm', 'rm', 'a'], { timeoutMs: 30_000 });
    expect({ code: refused.code, stderr: refused.stderr }).toEqual({ code: 1, stderr: 'strata: CONFLICT: vm a is running on n3; stop it first (strata vm stop a)\n' });
    expect(await strata(cluster, ['vm', 'rm', 'c'])).toBe('vm c deleted\n');
    expect(monitor.doubles).toEqual([]);
    expect(monitor.leaseViolations()).toEqual([]);
    cluster.passed = true;
  }, 180_000);
});
