// One look of the HA master, as a pure function: given every VM (its spec, its
// protection state, its power-on lease, its restart machine) and the hosts' free
// capacity, say what to do. The master (master.ts) gathers the inputs, feeds each
// action to the restart machines, stores the snapshots, and only then acts
// (power-ons, SETs, events). PROTOCOL.md section 12 states the rules in prose.
import { type RestartPriority, RestartStep, VmPower, type HostState, type VmProtection } from '@strata/proto';
import { describeLease, mayPowerOn, type LeaseState } from './lease-view';
import { place, reserve, type HostCapacity } from './placement';
import { stepOf, type RestartEvent, type RestartSnapshot } from './restart-machine';

export type Access = { ok: true } | { ok: false; reason: string };

export interface VmView {
  id: bigint;
  name: string;
  cpuCount: number;
  memoryBytes: number;
  haProtected: boolean;
  restartPriority: RestartPriority;
  protection: VmProtection | undefined;
  lease: LeaseState;
  restart: RestartSnapshot | undefined;
  /** A power-on this master sent awaits its reply. */
  inFlight: boolean;
  /** Whether its vDisks are all accessible, when checked for this look (see needsAccessCheck). */
  access: Access | undefined;
}

export interface LookInput {
  vms: readonly VmView[];
  /** Restart records of VMs no longer in the configuration. */
  orphans: readonly bigint[];
  /** Free capacity; placements made in this look are added to it. */
  hosts: HostCapacity[];
  hostStates: ReadonlyMap<string, HostState>;
  wallNowMs: number;
  /** A host's capacity changed since the last look. */
  capacityChanged: boolean;
  /** An accessibility change was announced since the last look. */
  accessAnnounced: boolean;
  /** Power-ons in flight at most. */
  inFlightMax: number;
}

export type Action =
  /** Put the VM on the restart list. */
  | { kind: 'list'; vm: bigint; cause: string; priority: RestartPriority }
  /** It stopped running and is not protected: SET its power off. */
  | { kind: 'notRestarted'; vm: bigint; reason: string }
  /** Feed its restart machine; with `powerOn`, tell that host to power it on once the snapshot is stored. */
  | { kind: 'feed'; vm: bigint; event: RestartEvent; powerOn?: { host: string; leaseRevision: number } }
  /** Delete the restart record of a VM that is gone. */
  | { kind: 'forget'; vm: bigint };

const priorityRank: Record<RestartPriority, number> = { high: 0, medium: 1, low: 2 };

/** The order restarts are handled in: priority, then time on the list, then id. */
export function restartOrder(a: VmView, b: VmView): number {
  const ra = a.restart!.context;
  const rb = b.restart!.context;
  return priorityRank[ra.priority] - priorityRank[rb.priority] || ra.listedAtMs - rb.listedAtMs || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

/** Whether the master must check this VM's vDisks before the look. */
export function needsAccessCheck(vm: VmView, accessAnnounced: boolean): boolean {
  const step = vm.restart === undefined ? undefined : stepOf(vm.restart);
  if (step === RestartStep.pending) return mayPowerOn(vm.lease);
  return step === RestartStep.waitAccess && accessAnnounced;
}

export function look(input: LookInput): Action[] {
  const actions: Action[] = input.orphans.map((vm): Action => ({ kind: 'forget', vm }));
  let inFlight = input.vms.filter((v) => v.inFlight).length;
  const restarting = input.vms.filter((v) => v.restart !== undefined && stepOf(v.restart) !== undefined).sort(restartOrder);
  for (const vm of input.vms) if (vm.restart === undefined || stepOf(vm.restart) === undefined) actions.push(...notOnList(vm, input));
  for (const vm of restarting) {
    const action = onList(vm, input, inFlight < input.inFlightMax);
    if (action === undefined) continue;
    if (action.kind === 'feed' && action.powerOn !== undefined) {
      inFlight++;
      reserve(input.hosts, action.powerOn.host, vm);
    }
    actions.push(action);
  }
  return actions;
}

/** A VM with no restart under way: list it, or record that it is not restarted. */
function notOnList(vm: VmView, input: LookInput): Action[] {
  if (vm.protection?.power !== VmPower.on || !mayPowerOn(vm.lease) || vm.inFlight) return [];
  const cause = stopCause(vm.lease, input.hostStates);
  if (vm.protection.protected) return [{ kind: 'list', vm: vm.id, cause, priority: vm.restartPriority }];
  return [{ kind: 'notRestarted', vm: vm.id, reason: `not HA-protected: ${cause}` }];
}

/** Why a powered-on VM no longer runs, from its lease. */
export function stopCause(lease: LeaseState, hostStates: ReadonlyMap<string, HostState>): string {
  if (lease.kind === 'expired') {
    const state = hostStates.get(lease.holder);
    const host = state === 'dead' || state === 'isolated' || state === 'partitioned' ? `host ${lease.holder} ${state === 'dead' ? 'failed' : `is ${state}`}: ` : '';
    return `${host}its power-on lease (epoch ${lease.epoch}) held by ${lease.holder} expired`;
  }
  return lease.epoch === 0 ? 'it is not running' : `it stopped running (its power-on lease was released at epoch ${lease.epoch})`;
}

/** The next event for a VM on the restart or wait list, if any. */
function onList(vm: VmView, input: LookInput, mayDispatch: boolean): Action | undefined {
  const snapshot = vm.restart!;
  const step = stepOf(snapshot)!;
  const feed = (event: RestartEvent): Action => ({ kind: 'feed', vm: vm.id, event });
  if (vm.protection?.power !== VmPower.on) return feed({ type: 'cancel', reason: 'powered off by the operator' });
  if (!mayPowerOn(vm.lease)) {
    if (step === RestartStep.poweringOn && vm.inFlight) return undefined;
    if (step === RestartStep.poweringOn && vm.lease.holder === snapshot.context.host) return feed({ type: 'poweredOn' });
    return feed({ type: 'cancel', reason: `it runs: ${describeLease(vm.lease)}` });
  }
  switch (step) {
    case RestartStep.pending:
      return pending(vm, input, mayDispatch);
    case RestartStep.poweringOn:
      return vm.inFlight ? undefined : feed({ type: 'redispatch', reason: `the power-on sent to ${snapshot.context.host ?? '?'} did not happen (${describeLease(vm.lease)})` });
    case RestartStep.retryDelay:
      return (snapshot.context.retryAtMs ?? 0) <= input.wallNowMs ? feed({ type: 'retryDue' }) : undefined;
    case RestartStep.waitCapacity:
      return input.capacityChanged ? feed({ type: 'capacityChanged' }) : undefined;
    case RestartStep.waitAccess:
      return vm.access?.ok === true ? feed({ type: 'accessible' }) : undefined;
  }
}

function pending(vm: VmView, input: LookInput, mayDispatch: boolean): Action | undefined {
  const feed = (event: RestartEvent, powerOn?: { host: string; leaseRevision: number }): Action => ({ kind: 'feed', vm: vm.id, event, ...(powerOn === undefined ? {} : { powerOn }) });
  // A power-on under way (an operator's start) is not doubled.
  if (vm.access === undefined || vm.inFlight) return undefined;
  if (!vm.access.ok) return feed({ type: 'inaccessible', reason: vm.access.reason });
  const where = place(vm, input.hosts, { excluded: vm.restart!.context.excluded });
  if ('none' in where) return feed({ type: 'noCapacity', reason: where.none });
  if (!mayDispatch) return undefined;
  return feed({ type: 'placed', host: where.host }, { host: where.host, leaseRevision: vm.lease.revision });
}
