// The master's derived views, pure: what each host has in use, each host's free
// capacity, and how each VM stands (strata vm ls, strata ha status).
import { HostState, RestartStep, VmState, type HostRecord, type ObjectOf } from '@strata/proto';
import { describeLease, type LeaseState } from './lease-view';
import type { Demand, HostCapacity } from './placement';
import { stopCause, type VmView } from './plan';
import { stepOf } from './restart-machine';

/**
 * The VMs each host runs or is about to run: those whose lease it holds (and that
 * has not expired), those its host record lists, and the power-ons in flight to it.
 */
export function usageOf(vms: readonly VmView[], records: readonly HostRecord[], inFlight: ReadonlyMap<bigint, string>): Map<string, Map<bigint, Demand>> {
  const demand = new Map(vms.map((v) => [v.id, { cpuCount: v.cpuCount, memoryBytes: v.memoryBytes }]));
  const usage = new Map<string, Map<bigint, Demand>>();
  const add = (host: string, vm: bigint): void => {
    const d = demand.get(vm);
    if (d === undefined) return;
    if (!usage.has(host)) usage.set(host, new Map());
    usage.get(host)!.set(vm, d);
  };
  for (const v of vms) if (v.lease.kind === 'held') add(v.lease.holder, v.id);
  for (const r of records) for (const h of r.vms) add(r.host, h.vm);
  for (const [vm, host] of inFlight) add(host, vm);
  return usage;
}

/**
 * Each host's free capacity. A host takes VMs while it is alive and, when `fresh` is
 * given, was heard from lately: one heard last 2.9 s ago is still alive (the dead
 * timeout is 3 s) but likely gone, and a power-on sent there waits for nothing.
 */
export function capacities(hosts: readonly ObjectOf<'host'>[], states: ReadonlyMap<string, HostState>, usage: ReadonlyMap<string, ReadonlyMap<bigint, Demand>>, fresh?: ReadonlySet<string>): HostCapacity[] {
  return hosts.map((h) => {
    const used = [...(usage.get(h.name)?.values() ?? [])];
    return {
      host: h.name,
      usable: states.get(h.name) === HostState.alive && (fresh === undefined || fresh.has(h.name)),
      cpuCount: h.spec.cpuCount,
      memoryBytes: h.spec.memoryBytes,
      cpuUsed: used.reduce((n, d) => n + d.cpuCount, 0),
      memoryUsedBytes: used.reduce((n, d) => n + d.memoryBytes, 0),
    };
  });
}

/** A fingerprint of what can be placed where: when it changes, VMs waiting for capacity try again. */
export function capacityFingerprint(hosts: readonly HostCapacity[]): string {
  return hosts
    .filter((h) => h.usable)
    .map((h) => `${h.host}:${h.cpuCount - h.cpuUsed}:${h.memoryBytes - h.memoryUsedBytes}`)
    .sort()
    .join(',');
}

export interface VmStanding {
  state: VmState;
  host: string;
  reason: string;
}

/** How a VM stands, for people. */
export function vmStanding(v: VmView, hostStates: ReadonlyMap<string, HostState>): VmStanding {
  const lastHost = v.protection?.host ?? '';
  const step = v.restart === undefined ? undefined : stepOf(v.restart);
  if (step !== undefined) {
    const reason = `${v.restart!.context.reason} (${v.restart!.context.cause})`;
    return { state: step === RestartStep.waitAccess ? VmState.waiting : VmState.restarting, host: lastHost, reason };
  }
  if (v.lease.kind === 'held') return held(v.lease, hostStates);
  if (v.protection?.power === 'on') return { state: v.inFlight ? VmState.restarting : VmState.down, host: lastHost, reason: v.inFlight ? 'being powered on' : stopCause(v.lease, hostStates) };
  return { state: VmState.stopped, host: lastHost, reason: v.protection === undefined ? 'never started' : v.protection.reason };
}

function held(lease: Extract<LeaseState, { kind: 'held' }>, hostStates: ReadonlyMap<string, HostState>): VmStanding {
  const hostState = hostStates.get(lease.holder) ?? HostState.unknown;
  const heard = hostState === HostState.alive || hostState === HostState.partitioned;
  return { state: heard ? VmState.running : VmState.unknown, host: lease.holder, reason: `${describeLease(lease)}${heard ? '' : ` (host ${hostState})`}` };
}
