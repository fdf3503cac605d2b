// What the HA commands ask and print: the HA master's status (`strata ha status`,
// `strata host ls`, `strata vm ls`), its start and stop, and a VM's HA history from
// the events (`strata vm why`).
import type { Bus } from '@strata/bus';
import { ErrorCode, StrataError, isStrataError } from '@strata/errors';
import { HaMasterOp, haStartReply, haStatusReply, haStopReply, subjects, type ClusterEvent, type HaPowerOnReply, type HaStatusReply, type ObjectOf, type RestartRecord } from '@strata/proto';
import { formatSize, listNames, table } from './units';

const MASTER_TIMEOUT_MS = 10_000;

/** Any request to the master; no responders becomes a message that says what is missing. */
async function askMaster<T>(run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (err) {
    if (isStrataError(err, ErrorCode.UNAVAILABLE) && err.hint === 'no-responders') {
      throw new StrataError(ErrorCode.UNAVAILABLE, 'no HA master answers: no ha-agent holds role.ha (is "strata up" running its ha-agents?)', { cause: err });
    }
    throw err;
  }
}

export function haStatus(bus: Bus): Promise<HaStatusReply> {
  return askMaster(() => bus.request(subjects.haMaster(HaMasterOp.status), {}, haStatusReply, { timeoutMs: MASTER_TIMEOUT_MS, retry: true }));
}

/** A power-on waits for the guest to come up: the master's power-on bound and then some. */
export function haStart(bus: Bus, vm: bigint): Promise<HaPowerOnReply> {
  return askMaster(() => bus.request(subjects.haMaster(HaMasterOp.start), { vm }, haStartReply, { timeoutMs: 90_000 }));
}

export function haStop(bus: Bus, vm: bigint): Promise<{ wasRunning: boolean }> {
  return askMaster(() => bus.request(subjects.haMaster(HaMasterOp.stop), { vm }, haStopReply, { timeoutMs: 30_000 }));
}

/** States of a host whose agent the HA master does not hear: its processes are gone (or it is cut off for good). */
const SILENT_HOST_STATES: ReadonlySet<string> = new Set(['dead', 'unknown']);

/**
 * Why `strata host rm NAME` is refused, or undefined. Never overridden: VMs defined on
 * the host or running there (they would be left without one), and a storage node still
 * registered on it (node rm first). Overridden by `force`: an agent the HA master still
 * hears, or no master to ask (removing a live host's record takes it from under its agent).
 */
export function hostRmRefusal(host: ObjectOf<'host'>, vms: readonly ObjectOf<'vm'>[], status: HaStatusReply | undefined, nodeName: string | undefined, force: boolean): StrataError | undefined {
  const conflict = (why: string): StrataError => new StrataError(ErrorCode.CONFLICT, `host ${host.name} ${why}`);
  const defined = vms.filter((v) => v.spec.host === host.id).map((v) => v.name);
  if (defined.length > 0) return conflict(`is where VMs ${listNames(defined)} are defined; move or remove them first (strata vm rm)`);
  const running = (status?.vms ?? []).filter((v) => v.host === host.name && v.state !== 'stopped' && v.state !== 'down').map((v) => v.name);
  if (running.length > 0) return conflict(`runs VMs ${listNames(running)}; stop them first (strata vm stop)`);
  if (host.spec.node !== undefined) return conflict(`still has storage node ${nodeName ?? String(host.spec.node)}; remove it first (strata node rm ${nodeName ?? '<node>'})`);
  if (force) return undefined;
  if (status === undefined) return conflict('cannot be checked: no HA master answers, so whether its agent still runs is unknown; --force removes it anyway');
  const state = status.hosts.find((h) => h.host === host.name)?.state;
  if (state !== undefined && !SILENT_HOST_STATES.has(state)) return conflict(`is ${state}: its HA agent still runs; stop its processes first, or --force`);
  return undefined;
}

const used = (usedCount: number, total: number): string => `${usedCount}/${total}`;

export function formatHosts(hosts: ObjectOf<'host'>[], nodeNames: Map<bigint, string>, status: HaStatusReply | undefined): string {
  const byName = new Map(status?.hosts.map((h) => [h.host, h]) ?? []);
  const rows = hosts.map((h) => {
    const s = byName.get(h.name);
    const node = h.spec.node === undefined ? '-' : (nodeNames.get(h.spec.node) ?? String(h.spec.node));
    return [
      h.name + (status?.master === h.name ? ' (master)' : ''),
      node,
      s?.state ?? 'unknown',
      used(s?.cpuUsed ?? 0, h.spec.cpuCount),
      `${formatSize(s?.memoryUsedBytes ?? 0)}/${formatSize(h.spec.memoryBytes)}`,
      s === undefined || s.vms.length === 0 ? '-' : s.vms.join(','),
    ];
  });
  return table(['NAME', 'NODE', 'STATE', 'CPUS', 'MEMORY', 'VMS'], rows);
}

export function formatVms(vms: ObjectOf<'vm'>[], status: HaStatusReply): string {
  const byId = new Map(status.vms.map((v) => [v.vm, v]));
  const rows = vms.map((vm) => {
    const s = byId.get(vm.id);
    return [vm.name, s?.host === '' || s === undefined ? '-' : s.host, s?.state ?? 'unknown', vm.spec.haProtected ? 'yes' : 'no', vm.spec.restartPriority, vm.spec.driver, s?.reason ?? ''];
  });
  return table(['NAME', 'HOST', 'STATE', 'PROTECTED', 'PRIORITY', 'DRIVER', 'WHY'], rows);
}

function restartLine(r: RestartRecord, names: Map<bigint, string>): string {
  const name = names.get(r.vm) ?? String(r.vm);
  const where = r.host === undefined ? '' : ` at ${r.host}`;
  const attempts = r.attempts === 0 ? '' : `, ${r.attempts} failed attempt${r.attempts === 1 ? '' : 's'}`;
  return `  ${name} (${r.priority}) ${r.step}${where}${attempts}: ${r.reason} (${r.cause})`;
}

export function formatHaStatus(status: HaStatusReply, hosts: ObjectOf<'host'>[], nodeNames: Map<bigint, string>): string {
  const names = new Map(status.vms.map((v) => [v.vm, v.name]));
  const restartList = status.restarts.filter((r) => r.step !== 'wait-access');
  const waitList = status.restarts.filter((r) => r.step === 'wait-access');
  return [
    `master: ${status.master} (epoch ${status.haEpoch})`,
    '',
    formatHosts(hosts, nodeNames, status),
    '',
    `restart list: ${restartList.length === 0 ? 'empty' : ''}`.trimEnd(),
    ...restartList.map((r) => restartLine(r, names)),
    `wait list: ${waitList.length === 0 ? 'empty' : ''}`.trimEnd(),
    ...waitList.map((r) => restartLine(r, names)),
  ].join('\n');
}

/** `strata vm why`: the VM's HA events, oldest first, and how it stands now. */
export function formatWhy(vm: ObjectOf<'vm'>, events: ClusterEvent[], status: HaStatusReply | undefined): string {
  const lines = events.map((e) => `${new Date(e.atMs).toISOString()} ${e.type.padEnd(22)} ${e.message}`);
  if (lines.length === 0) lines.push(`no HA event about vm ${vm.name} in the event history`);
  const now = status?.vms.find((v) => v.vm === vm.id);
  lines.push(now === undefined ? 'now: unknown (no HA master answers)' : `now: ${now.state}${now.host === '' ? '' : ` on ${now.host}`}: ${now.reason}`);
  return lines.join('\n');
}
