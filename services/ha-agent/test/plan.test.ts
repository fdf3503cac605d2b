// One look of the HA master: who goes on the restart list, who is not restarted, and
// what each restart machine is fed, with the safety rules checked over random worlds:
// a VM whose lease is held is never powered on, power-ons in flight stay within their
// bound, and placements within one look never overcommit a host.
import fc from 'fast-check';
import type { HostState, VmProtection } from '@strata/proto';
import type { LeaseState } from '../src/lease-view';
import type { HostCapacity } from '../src/placement';
import { look, needsAccessCheck, type Access, type Action, type LookInput, type VmView } from '../src/plan';
import { nextRestart, restartMachine, startRestart, type RestartEvent, type RestartSnapshot } from '../src/restart-machine';

const GiB = 2 ** 30;
const machine = restartMachine({ retryDelayMs: 1_000, retryDelayMaxMs: 30_000, attemptsMax: 5 });
const on = (prot = true): VmProtection => ({ power: 'on', protected: prot, host: 'n1', service: 'ha-master', setBy: 'n1', haEpoch: 1, reason: 'operator start', atMs: 0 });
const free: LeaseState = { kind: 'free', revision: 0, epoch: 0 };
const expired = (holder = 'n1', revision = 40): LeaseState => ({ kind: 'expired', revision, holder, epoch: 3 });
const held = (holder = 'n2'): LeaseState => ({ kind: 'held', revision: 50, holder, epoch: 4, expiresInMs: 1_000 });

function restart(vm: bigint, events: RestartEvent[] = [], priority: 'high' | 'medium' | 'low' = 'medium', listedAtMs = 1_000): RestartSnapshot {
  let s = startRestart(machine, { vm, cause: 'host n1 failed', reason: 'to be placed', priority, listedAtMs, attempts: 0, excluded: [], haEpoch: 1 });
  for (const e of events) s = nextRestart(machine, s, e);
  return s;
}

function vm(id: number, o: Partial<VmView> = {}): VmView {
  return { id: BigInt(id), name: `vm${id}`, cpuCount: 1, memoryBytes: GiB, haProtected: true, restartPriority: 'medium', protection: on(), lease: expired(), restart: undefined, inFlight: false, access: { ok: true }, ...o };
}

const host = (name: string, usable = true): HostCapacity => ({ host: name, usable, cpuCount: 4, memoryBytes: 4 * GiB, cpuUsed: 0, memoryUsedBytes: 0 });

function input(vms: VmView[], o: Partial<LookInput> = {}): LookInput {
  return { vms, orphans: [], hosts: [host('n2'), host('n3')], hostStates: new Map<string, HostState>([['n1', 'dead']]), wallNowMs: 10_000, capacityChanged: false, accessAnnounced: false, inFlightMax: 4, ...o };
}

describe('look: VMs not on the list', () => {
  test('a protected VM whose lease expired goes on the restart list, with the cause', () => {
    expect(look(input([vm(1, { restartPriority: 'high' })]))).toEqual([{ kind: 'list', vm: 1n, cause: 'host n1 failed: its power-on lease (epoch 3) held by n1 expired', priority: 'high' }]);
  });

  test('an unprotected one is not restarted: its power is SET off', () => {
    expect(look(input([vm(1, { protection: on(false), lease: { kind: 'free', revision: 9, epoch: 3 } })]))).toEqual([{ kind: 'notRestarted', vm: 1n, reason: 'not HA-protected: it stopped running (its power-on lease was released at epoch 3)' }]);
  });

  test('nothing for a VM that runs, is powered off, or is being started', () => {
    expect(look(input([vm(1, { lease: held() }), vm(2, { protection: { ...on(), power: 'off' } }), vm(3, { protection: undefined }), vm(4, { inFlight: true })]))).toEqual([]);
  });

  test('the restart record of a VM that is gone is forgotten', () => {
    expect(look(input([], { orphans: [7n] }))).toEqual([{ kind: 'forget', vm: 7n }]);
  });
});

describe('look: VMs on the list', () => {
  const feed = (id: number, event: RestartEvent, powerOn?: { host: string; leaseRevision: number }): Action => ({ kind: 'feed', vm: BigInt(id), event, ...(powerOn === undefined ? {} : { powerOn }) });

  test('pending and accessible: placed on the host with the most free memory, the power-on names the revision found', () => {
    const hosts = [host('n2'), { ...host('n3'), memoryUsedBytes: GiB }];
    expect(look(input([vm(1, { restart: restart(1n) })], { hosts }))).toEqual([feed(1, { type: 'placed', host: 'n2' }, { host: 'n2', leaseRevision: 40 })]);
  });

  test('pending but inaccessible: to the wait list; not yet checked: nothing', () => {
    const access: Access = { ok: false, reason: 'vdisk db: extent group 7 has no replica on a live node' };
    expect(look(input([vm(1, { restart: restart(1n), access })]))).toEqual([feed(1, { type: 'inaccessible', reason: access.reason })]);
    expect(look(input([vm(1, { restart: restart(1n), access: undefined })]))).toEqual([]);
  });

  test('pending with no host that fits: waits for capacity', () => {
    expect(look(input([vm(1, { restart: restart(1n), cpuCount: 8 })]))).toEqual([feed(1, { type: 'noCapacity', reason: 'no alive host has 8 CPUs and 1 GiB free (n2 4 CPU/4 GiB, n3 4 CPU/4 GiB)' })]);
  });

  test('waits end on their announcement only', () => {
    const waitCap = vm(1, { restart: restart(1n, [{ type: 'noCapacity', reason: 'x' }]) });
    const waitAccess = vm(2, { restart: restart(2n, [{ type: 'inaccessible', reason: 'x' }]), access: undefined });
    expect(look(input([waitCap, waitAccess]))).toEqual([]);
    expect(look(input([waitCap], { capacityChanged: true }))).toEqual([feed(1, { type: 'capacityChanged' })]);
    expect(needsAccessCheck(waitAccess, false)).toBe(false);
    expect(needsAccessCheck(waitAccess, true)).toBe(true);
    expect(look(input([{ ...waitAccess, access: { ok: false, reason: 'still' } }]))).toEqual([]);
    expect(look(input([{ ...waitAccess, access: { ok: true } }]))).toEqual([feed(2, { type: 'accessible' })]);
  });

  test('retry-delay ends at retryAtMs', () => {
    const r = vm(1, { restart: restart(1n, [{ type: 'placed', host: 'n2' }, { type: 'powerOnFailed', cause: 'other', reason: 'x', atMs: 9_500 }]) });
    expect(look(input([r], { wallNowMs: 10_499 }))).toEqual([]);
    expect(look(input([r], { wallNowMs: 10_500 }))).toEqual([feed(1, { type: 'retryDue' })]);
  });

  test('powering-on: wait for the reply; an earlier master\'s order is settled by the lease', () => {
    const powering = restart(1n, [{ type: 'placed', host: 'n2' }]);
    expect(look(input([vm(1, { restart: powering, inFlight: true })]))).toEqual([]);
    expect(look(input([vm(1, { restart: powering, lease: held('n2') })]))).toEqual([feed(1, { type: 'poweredOn' })]);
    expect(look(input([vm(1, { restart: powering })]))).toEqual([feed(1, { type: 'redispatch', reason: 'the power-on sent to n2 did not happen (power-on lease epoch 3 of n1 expired)' })]);
  });

  test('a VM on the list that runs again, or was powered off, is cancelled', () => {
    expect(look(input([vm(1, { restart: restart(1n), lease: held('n3') })]))).toEqual([feed(1, { type: 'cancel', reason: 'it runs: power-on lease epoch 4 held by n3' })]);
    expect(look(input([vm(1, { restart: restart(1n), protection: { ...on(), power: 'off' } })]))).toEqual([feed(1, { type: 'cancel', reason: 'powered off by the operator' })]);
  });

  test('restart order: priority, then time on the list; the in-flight bound holds back the rest', () => {
    const vms = [vm(1, { restart: restart(1n, [], 'low', 1) }), vm(2, { restart: restart(2n, [], 'high', 5) }), vm(3, { restart: restart(3n, [], 'high', 2) }), vm(4, { restart: restart(4n, [], 'medium', 0) })];
    const placed = look(input(vms, { inFlightMax: 2 })).map((a) => a.vm);
    expect(placed).toEqual([3n, 2n]);
  });
});

describe('look: properties over random worlds', () => {
  const leaseArb = fc.oneof(fc.constant(free), fc.constant(expired()), fc.constant(held('n2')), fc.constant(held('n3')));
  const stepArb = fc.constantFrom<RestartEvent[] | undefined>(undefined, [], [{ type: 'placed', host: 'n2' }], [{ type: 'noCapacity', reason: 'x' }], [{ type: 'inaccessible', reason: 'x' }]);
  const vmArb = fc.record({ lease: leaseArb, events: stepArb, inFlight: fc.boolean(), cpu: fc.integer({ min: 1, max: 3 }), prot: fc.boolean(), power: fc.boolean(), access: fc.boolean(), priority: fc.constantFrom('high' as const, 'medium' as const, 'low' as const) });

  test('never a power-on for a held lease or a VM in flight; in-flight bound kept; no host overcommitted', () => {
    fc.assert(
      fc.property(fc.array(vmArb, { maxLength: 12 }), fc.integer({ min: 1, max: 4 }), fc.boolean(), (specs, inFlightMax, capacityChanged) => {
        const vms = specs.map((s, i) =>
          vm(i + 1, {
            lease: s.lease,
            restart: s.events === undefined ? undefined : restart(BigInt(i + 1), s.events, s.priority, i),
            inFlight: s.inFlight,
            cpuCount: s.cpu,
            protection: s.power ? on(s.prot) : { ...on(s.prot), power: 'off' },
            access: s.access ? { ok: true } : { ok: false, reason: 'no' },
          }),
        );
        const hosts = [host('n2'), host('n3'), host('n4', false)];
        const actions = look(input(vms, { hosts, inFlightMax, capacityChanged }));
        const powerOns = actions.filter((a): a is Extract<Action, { kind: 'feed' }> => a.kind === 'feed' && a.powerOn !== undefined);
        const byId = new Map(vms.map((v) => [v.id, v]));
        for (const p of powerOns) {
          const v = byId.get(p.vm)!;
          if (v.lease.kind === 'held' || v.inFlight || v.protection?.power !== 'on' || v.access?.ok !== true) return false;
          if (p.powerOn!.leaseRevision !== v.lease.revision) return false;
        }
        if (powerOns.length > 0 && vms.filter((v) => v.inFlight).length + powerOns.length > inFlightMax) return false;
        return hosts.every((h) => h.cpuUsed <= h.cpuCount && (h.usable || h.cpuUsed === 0));
      }),
    );
  });
});
