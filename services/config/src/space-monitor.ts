// The config leader's space monitor: every `spaceTickMs` it computes each disk's and
// container's space state from the config and the disks' usage reports (libs/space)
// and publishes one event per change of state (space.warning, space.full, space.ok,
// with the reason), so an operator hears of a disk filling before writes fail and
// again when it has room. Only the leader publishes; a replica that starts leading
// starts from "every object ok", so it announces what is not ok once.
import type { WatchCache } from '@strata/kv';
import type { Logger } from '@strata/log';
import { EventType, type CfgEntry, type ClusterEvent, type DiskUsage } from '@strata/proto';
import { formatBytes, spaceChanges, spaceReport, type ClusterObjects, type SpaceChange, type SpaceState, type SpaceThresholds } from '@strata/space';

export interface SpaceMonitorDeps {
  /** The config's disk.>, node.> and container.> entries. */
  disks: WatchCache<CfgEntry>;
  nodes: WatchCache<CfgEntry>;
  containers: WatchCache<CfgEntry>;
  /** The hb bucket's disk.> entries. */
  usage: WatchCache<DiskUsage>;
  /** The leader's epoch while this replica leads, undefined otherwise. */
  leaderEpoch: () => number | undefined;
  events: { append(event: ClusterEvent): Promise<void> };
  log: Logger;
  thresholds: SpaceThresholds;
  tickMs: number;
}

const eventOf: Record<SpaceState, ClusterEvent['type']> = { ok: EventType.spaceOk, warning: EventType.spaceWarning, full: EventType.spaceFull };

export class SpaceMonitor {
  private states = new Map<string, SpaceState>();
  private timer: NodeJS.Timeout | undefined;
  private running = false;

  constructor(private readonly deps: SpaceMonitorDeps) {}

  start(): void {
    this.timer = setInterval(() => void this.tick(), this.deps.tickMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** One look; a tick that finds the previous one still publishing skips. */
  async tick(): Promise<void> {
    if (this.running) return;
    const epoch = this.deps.leaderEpoch();
    if (epoch === undefined) {
      this.states = new Map();
      return;
    }
    this.running = true;
    try {
      const report = spaceReport(this.objects(), (disk) => this.deps.usage.get(`disk.${disk}`)?.value, this.deps.thresholds);
      const { changes, states } = spaceChanges(this.states, report.disks, report.containers);
      for (const change of changes) await this.deps.events.append(toEvent(change, epoch));
      // Kept only once published: a failed append is tried again on the next tick.
      this.states = states;
    } catch (err) {
      this.deps.log.warn({ err }, 'space monitor: could not publish a change of space state; trying again next tick');
    } finally {
      this.running = false;
    }
  }

  private objects(): ClusterObjects {
    const of = <K extends 'disk' | 'node' | 'container'>(cache: WatchCache<CfgEntry>, kind: K): Array<Extract<CfgEntry, { kind: K }>> => {
      const out: Array<Extract<CfgEntry, { kind: K }>> = [];
      for (const { value } of cache.values()) if ('kind' in value && value.kind === kind) out.push(value as Extract<CfgEntry, { kind: K }>);
      return out;
    };
    return { disks: of(this.deps.disks, 'disk'), nodes: of(this.deps.nodes, 'node'), containers: of(this.deps.containers, 'container') };
  }
}

function toEvent(c: SpaceChange, epoch: number): ClusterEvent {
  const what = c.to === 'full' ? 'is full' : c.to === 'warning' ? 'is filling up' : 'has room again';
  return {
    type: eventOf[c.to],
    atMs: Date.now(),
    epoch,
    kind: c.kind,
    id: c.id,
    name: c.name,
    usedBytes: c.usedBytes,
    capacityBytes: c.capacityBytes,
    cause: 'space-monitor',
    message: `${c.kind} ${c.name} ${what} (was ${c.from}): ${c.reason}; ${formatBytes(c.usedBytes)} used of ${formatBytes(c.capacityBytes)}`,
  };
}
