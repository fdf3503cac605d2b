// The master's derived views: use per host, free capacity, and how a VM stands.
import type { HostState, ObjectOf } from '@strata/proto';
import { vmStanding, usageOf, capacities, capacityFingerprint } from '../src/view';
import type { VmView } from '../src/plan';
import { restartMachine, startRestart, nextRestart } from '../src/restart-machine';

const GiB = 2 ** 30;
const base: VmView = { id: 1n, name: 'web', cpuCount: 1, memoryBytes: GiB, haProtected: true, restartPriority: 'medium', protection: undefined, lease: { kind: 'free', revision: 0, epoch: 0 }, restart: undefined, inFlight: false, access: undefined };
const states = new Map<string, HostState>([['n1', 'dead'], ['n2', 'alive']]);

test('use counts each VM once per host: leases held, host records, power-ons in flight', () => {
  const vms: VmView[] = [
    { ...base, lease: { kind: 'held', revision: 3, holder: 'n2', epoch: 1, expiresInMs: 5 } },
    { ...base, id: 2n, name: 'db', cpuCount: 2 },
    { ...base, id: 3n, name: 'x', lease: { kind: 'expired', revision: 3, holder: 'n1', epoch: 1 } },
  ];
  const usage = usageOf(vms, [{ host: 'n2', incarnation: 1, seq: 1, atMs: 0, cpuCount: 4, memoryBytes: 4 * GiB, vms: [{ vm: 1n, powerOnEpoch: 1, pid: 9 }], isolated: false, intervalMs: 1000 }], new Map([[2n, 'n2']]));
  expect([...usage.get('n2')!.keys()]).toEqual([1n, 2n]);
  expect(usage.has('n1')).toBe(false);
  const host = (name: string) => ({ kind: 'host', id: 1n, name, createdAtMs: 0, updatedAtMs: 0, epoch: 1, revision: 1, spec: { cpuCount: 4, memoryBytes: 4 * GiB } }) as ObjectOf<'host'>;
  const caps = capacities([host('n1'), host('n2')], states, usage);
  expect(caps).toEqual([
    { host: 'n1', usable: false, cpuCount: 4, memoryBytes: 4 * GiB, cpuUsed: 0, memoryUsedBytes: 0 },
    { host: 'n2', usable: true, cpuCount: 4, memoryBytes: 4 * GiB, cpuUsed: 3, memoryUsedBytes: 2 * GiB },
  ]);
  expect(capacityFingerprint(caps)).toBe(`n2:1:${2 * GiB}`);
});

test('how a VM stands', () => {
  const on = { power: 'on' as const, protected: true, host: 'n1', service: 'ha-master' as const, setBy: 'n2', haEpoch: 2, reason: 'operator start', atMs: 0 };
  expect(vmStanding(base, states)).toEqual({ state: 'stopped', host: '', reason: 'never started' });
  expect(vmStanding({ ...base, protection: on, lease: { kind: 'held', revision: 3, holder: 'n2', epoch: 4, expiresInMs: 5 } }, states)).toEqual({ state: 'running', host: 'n2', reason: 'power-on lease epoch 4 held by n2' });
  expect(vmStanding({ ...base, protection: on, lease: { kind: 'held', revision: 3, holder: 'n1', epoch: 4, expiresInMs: 5 } }, states).state).toBe('unknown');
  expect(vmStanding({ ...base, protection: on, lease: { kind: 'expired', revision: 3, holder: 'n1', epoch: 4 } }, states)).toEqual({ state: 'down', host: 'n1', reason: 'host n1 failed: its power-on lease (epoch 4) held by n1 expired' });
  const m = restartMachine({ retryDelayMs: 1, retryDelayMaxMs: 1, attemptsMax: 2 });
  const r = startRestart(m, { vm: 1n, cause: 'host n1 failed', reason: 'to be placed', priority: 'high', listedAtMs: 0, attempts: 0, excluded: [], haEpoch: 2 });
  expect(vmStanding({ ...base, protection: on, restart: r }, states)).toEqual({ state: 'restarting', host: 'n1', reason: 'to be placed (host n1 failed)' });
  expect(vmStanding({ ...base, protection: on, restart: nextRestart(m, r, { type: 'inaccessible', reason: 'vdisk db: no node' }) }, states).state).toBe('waiting');
});
