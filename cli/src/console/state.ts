// What the console shows, gathered once a second: the config (nodes with their
// liveness, hosts, vDisks with QoS), each vDisk's owner, epoch, volunteers and
// takeover (from watches of the ownership records, owners.ts), the processes'
// metrics (health, I/O rates, admission queues, oplog backlog and drain), the curator
// and HA masters' status, and the latest events. Everything a source cannot give now
// (a master not elected, a process down) is shown as such; the page never waits for it.
import type { Bus } from '@strata/bus';
import type { ConfigClient } from '@strata/config-client';
import type { NatsConnection } from '@nats-io/transport-node';
import { curatorStatus } from '../curator';
import { haStatus } from '../ha';
import { readEvents } from '../ownership';
import { OwnerWatch } from './owners';
import { parseScrape, ratePerSec, total, type Series } from './prom';

/** The series the console reads from each process's /metrics. */
const WANTED = new Set([
  'strata_gateway_requests_total',
  'strata_admission_queue_depth',
  'strata_oplog_backlog_bytes',
  'strata_oplog_backlog_entries',
  'strata_oplog_replication_lag_seconds',
  'strata_drain_bytes_total',
]);
const SCRAPE_TIMEOUT_MS = 800;
const EVENTS_SHOWN = 40;

export interface ProcessState {
  name: string;
  target: string;
  up: boolean;
  /** NBD requests a second through this process's gateway. */
  iops: number;
  /** Requests waiting in its admission queue. */
  queued: number;
}

export interface VdiskState {
  name: string;
  id: string;
  sizeBytes: number;
  shared: boolean;
  qos: string;
  owner: string | null;
  epoch: number | null;
  volunteers: string[];
  takeover: string | null;
  backlogBytes: number;
  backlogEntries: number;
  lagSeconds: number;
  drainBytesPerSec: number;
}

export interface ConsoleState {
  atMs: number;
  leader: string;
  nodes: Array<{ name: string; liveness: string; draining: boolean }>;
  hosts: string[];
  processes: ProcessState[];
  vdisks: VdiskState[];
  curator: { master: string; underReplicated: number; bytesToCopy: number; bytesPerSec: number; etaMs: number | null; lastScan: string | null } | { error: string };
  ha: { master: string; restartList: string[]; waitList: string[] } | { error: string };
  /** `traceId`: the trace the event was recorded in (a takeover's, for one), when its process traced. */
  events: Array<{ atMs: number; type: string; message: string; name: string | null; traceId: string | null }>;
}

/** Where the processes' metrics are: `strata up`'s targets file, read by the caller. */
export interface Target {
  process: string;
  address: string;
}

const errorText = (err: unknown): string => (err instanceof Error ? err.message : String(err));

/** Gathers the state; keeps counter readings between calls to turn them into rates. */
export class StateGatherer {
  private readonly last = new Map<string, { value: number; atMs: number }>();
  private readonly owners: OwnerWatch;

  constructor(
    private readonly client: ConfigClient,
    private readonly nc: NatsConnection,
    private readonly bus: Bus,
    private readonly targets: () => Target[],
  ) {
    this.owners = new OwnerWatch(nc);
  }

  /** Stops the watches of the ownership records. */
  stop(): Promise<void> {
    return this.owners.stop();
  }

  async gather(): Promise<ConsoleState> {
    const [status, nodes, hosts, vdisks, scrapes, curator, ha, events] = await Promise.all([
      this.client.status(),
      this.client.list('node'),
      this.client.list('host'),
      this.client.list('vdisk'),
      this.scrapeAll(),
      curatorStatus(this.bus).then(
        (s) => ({ master: s.master, underReplicated: s.progress.underReplicated, bytesToCopy: s.progress.bytesToCopy, bytesPerSec: s.progress.bytesPerSec, etaMs: s.progress.etaMs ?? null, lastScan: s.progress.lastScan === undefined ? null : new Date(s.progress.lastScan.startedAtMs).toISOString() }),
        (err: unknown) => ({ error: errorText(err) }),
      ),
      haStatus(this.bus).then(
        (s) => ({ master: s.master, restartList: s.restarts.filter((r) => !r.step.startsWith('wait-')).map((r) => `${r.vm} ${r.step}: ${r.reason}`), waitList: s.restarts.filter((r) => r.step.startsWith('wait-')).map((r) => `${r.vm} ${r.step}: ${r.reason}`) }),
        (err: unknown) => ({ error: errorText(err) }),
      ),
      readEvents(this.nc, { limit: EVENTS_SHOWN, timeoutMs: 2_000 }).then((r) => r.events),
    ]);
    const now = Date.now();
    const all = scrapes.flatMap((s) => s.series);
    return {
      atMs: now,
      leader: `${status.leader} (epoch ${status.epoch})`,
      nodes: nodes.map((n) => ({ name: n.name, liveness: n.status.liveness, draining: n.spec.drainingSinceMs !== undefined })),
      hosts: hosts.map((h) => h.name),
      processes: scrapes.map((s) => ({
        name: s.target.process,
        target: s.target.address,
        up: s.up,
        iops: Math.round(this.rate(`io ${s.target.process}`, total(s.series, 'strata_gateway_requests_total'), now)),
        queued: total(s.series, 'strata_admission_queue_depth'),
      })),
      vdisks: await Promise.all(
        vdisks.map(async (v) => {
          const own = await this.owners.of(v.id);
          const where = { label: 'vdisk', value: v.name };
          return {
            name: v.name,
            id: String(v.id),
            sizeBytes: v.spec.sizeBytes,
            shared: v.spec.shared,
            qos: `${v.spec.qos.priority} w${v.spec.qos.weight}`,
            owner: own.ownership?.owner ?? null,
            epoch: own.ownership?.epoch ?? null,
            volunteers: own.ownership?.volunteers ?? [],
            takeover: own.takeover === null ? null : `${own.takeover.from} -> ${own.takeover.to}, step ${own.takeover.step} (${own.takeover.reason})`,
            backlogBytes: total(all, 'strata_oplog_backlog_bytes', where),
            backlogEntries: total(all, 'strata_oplog_backlog_entries', where),
            lagSeconds: total(all, 'strata_oplog_replication_lag_seconds', where),
            drainBytesPerSec: Math.round(this.rate(`drain ${v.name}`, total(all, 'strata_drain_bytes_total', where), now)),
          };
        }),
      ),
      curator,
      ha,
      events: events.reverse().map((e) => ({ atMs: e.atMs, type: e.type, message: e.message ?? '', name: e.name ?? null, traceId: e.traceId ?? null })),
    };
  }

  private rate(key: string, value: number, atMs: number): number {
    const r = ratePerSec(this.last.get(key), { value, atMs });
    this.last.set(key, { value, atMs });
    return r;
  }

  private async scrapeAll(): Promise<Array<{ target: Target; up: boolean; series: Series[] }>> {
    return Promise.all(
      this.targets().map(async (target) => {
        try {
          const response = await fetch(`http://${target.address}/metrics`, { signal: AbortSignal.timeout(SCRAPE_TIMEOUT_MS) });
          if (!response.ok) return { target, up: false, series: [] };
          return { target, up: true, series: parseScrape(await response.text(), WANTED) };
        } catch {
          return { target, up: false, series: [] };
        }
      }),
    );
  }
}
