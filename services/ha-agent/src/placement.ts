// Where a VM can run: the hosts' free capacity, and the choice of one. Pure.

export interface Demand {
  cpuCount: number;
  memoryBytes: number;
}

export interface HostCapacity {
  host: string;
  /** Placeable: heartbeats arrive and it is not isolated. */
  usable: boolean;
  cpuCount: number;
  memoryBytes: number;
  cpuUsed: number;
  memoryUsedBytes: number;
}

export interface PlacementPreference {
  /** Hosts where a power-on of this VM failed: chosen only when no other fits. */
  excluded: readonly string[];
  /** The host to use when it fits (the VM's own host, for an operator's start). */
  preferred?: string;
}

export function fits(h: HostCapacity, d: Demand): boolean {
  return h.usable && h.cpuCount - h.cpuUsed >= d.cpuCount && h.memoryBytes - h.memoryUsedBytes >= d.memoryBytes;
}

/**
 * The host for a VM: among the usable hosts that fit it, those not excluded before
 * the others, then the preferred host, then the one with the most free memory, then by
 * name. A reason when none fits.
 */
export function place(d: Demand, hosts: readonly HostCapacity[], pref: PlacementPreference): { host: string } | { none: string } {
  const candidates = hosts.filter((h) => fits(h, d));
  if (candidates.length === 0) return { none: noFit(d, hosts) };
  const rank = (h: HostCapacity): [number, number, number] => [pref.excluded.includes(h.host) ? 1 : 0, h.host === pref.preferred ? 0 : 1, -(h.memoryBytes - h.memoryUsedBytes)];
  const best = [...candidates].sort((a, b) => {
    const [ra, rb] = [rank(a), rank(b)];
    for (let i = 0; i < ra.length; i++) if (ra[i] !== rb[i]) return ra[i]! - rb[i]!;
    return a.host < b.host ? -1 : a.host > b.host ? 1 : 0;
  })[0]!;
  return { host: best.host };
}

function noFit(d: Demand, hosts: readonly HostCapacity[]): string {
  const usable = hosts.filter((h) => h.usable);
  const need = `${d.cpuCount} CPU${d.cpuCount === 1 ? '' : 's'} and ${formatBytes(d.memoryBytes)}`;
  if (usable.length === 0) return `no host is alive to take ${need}`;
  const free = usable.map((h) => `${h.host} ${h.cpuCount - h.cpuUsed} CPU/${formatBytes(h.memoryBytes - h.memoryUsedBytes)}`).join(', ');
  return `no alive host has ${need} free (${free})`;
}

/** Adds `d` to `host`'s use: a placement made within one look counts for the next. */
export function reserve(hosts: HostCapacity[], host: string, d: Demand): void {
  const h = hosts.find((x) => x.host === host);
  if (h === undefined) return;
  h.cpuUsed += d.cpuCount;
  h.memoryUsedBytes += d.memoryBytes;
}

/** 268435456 -> "256 MiB". */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${Number.isInteger(v) ? v : v.toFixed(1)} ${units[i]}`;
}
