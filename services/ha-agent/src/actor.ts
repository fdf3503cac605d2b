// The HA agent as an actor definition: the buckets, the host's own agent (host-agent.ts)
// and the contention for `role.ha`, which runs the master (master.ts) while held.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { ActorContext, ActorDefinition } from '@strata/actor';
import { ConfigClient } from '@strata/config-client';
import { ErrorCode, isStrataError } from '@strata/errors';
import { EventLog, ensureEventStream } from '@strata/events';
import { WatchCache, openBucket } from '@strata/kv';
import { Lease, leaseRecord } from '@strata/lease';
import { buckets, cfgEntry, hostRecord, keys, mdValue, restartRecord, subjects, haHeartbeat, vmProtection, type ObjectOf } from '@strata/proto';
import { AccessChecker } from './accessibility';
import { HeartbeatBoard } from './board';
import { ProcessDriver } from './drivers/process';
import { QemuDriver } from './drivers/qemu';
import type { VmDriver } from './drivers/driver';
import { HaEvents } from './events';
import { HaLink } from './ha-link';
import { registerHaMetrics } from './metrics';
import { HostAgent } from './host-agent';
import { Master } from './master';
import { MasterState, type StateBuckets } from './master-state';
import { PowerOnLeases } from './power-on-lease';
import { Sightings } from './sightings';
import { DEFAULT_GUEST_PARENT, type AgentSettings } from './settings';

/** How long the agent waits for its host object to exist in the configuration. */
const HOST_WAIT_MS = 60_000;

export function haAgentActor(s: AgentSettings): ActorDefinition {
  return {
    actor: 'ha-agent',
    instance: s.host,
    start: (ctx) => startAgent(s, ctx),
  };
}

async function startAgent(s: AgentSettings, { bus, log, metrics }: ActorContext): Promise<() => Promise<void>> {
  const nc = bus.nc;
  await ensureEventStream(nc);
  const [own, leases, records, protections, restarts, cfg, rows, egroups] = await Promise.all([
    openBucket(nc, buckets.own, leaseRecord),
    openBucket(nc, buckets.ha, leaseRecord),
    openBucket(nc, buckets.ha, hostRecord),
    openBucket(nc, buckets.ha, vmProtection),
    openBucket(nc, buckets.ha, restartRecord),
    // The same settings as their owners create them with (the config service, the metadata shards).
    openBucket(nc, buckets.cfg, cfgEntry, { history: 8 }),
    openBucket(nc, buckets.mdVdisk, mdValue.vdisk, { history: 1 }),
    openBucket(nc, buckets.mdEgroup, mdValue.egroup, { history: 1 }),
  ]);
  const config = new ConfigClient(bus);
  const host = await waitForHost(config, s.host, log);
  const incarnation = ((await records.get(keys.hostRecord(s.host)))?.value.incarnation ?? 0) + 1;
  const board = new HeartbeatBoard(s.host, () => performance.now());
  const link = new HaLink(bus, s.host, s.haFaultsFile, log);
  await link.start();
  const heartbeats = bus.subscribe(subjects.haHeartbeatAll, haHeartbeat, (beat) => link.reaches(beat.host) && board.hear(beat));
  const events = new HaEvents(new EventLog(nc), log);
  const cfgCache = await WatchCache.start(cfg, { key: 'host.>' });
  const protectionCache = await WatchCache.start(protections, { key: keys.vmProtectionAll });
  const sightings = await Sightings.start(leases, records, log);
  const state: StateBuckets = { cfg, protections, leases, records, restarts };
  // What this agent gets and writes goes through the storage fault injector; the watches above do not.
  const reach: StateBuckets = { cfg, protections: link.guardStorage(protections), leases: link.guardStorage(leases), records: link.guardStorage(records), restarts: link.guardStorage(restarts) };

  let master: { epoch: number; run: Promise<Master | undefined> } | undefined;
  /** The master this agent runs, once it started (for the metrics). */
  let serving: Master | undefined;
  const lease = new Lease(own, {
    key: keys.haMasterLease,
    holder: s.host,
    ttlMs: s.masterLeaseTtlMs,
    log,
    onAcquired: (epoch) => {
      const run = MasterState.load(state, sightings, log, 30_000).then(async (loaded) => {
        const m = new Master({ bus, log, settings: s, me: s.host, epoch, leading: () => lease.epoch === epoch, state: loaded, buckets: reach, board, events, access: new AccessChecker(rows, egroups), link });
        await m.start();
        if (master?.epoch === epoch) serving = m;
        return m;
      });
      master = {
        epoch,
        run: run.catch((err: unknown) => {
          // Holding the lease without acting would leave the cluster without a master: give it up.
          log.error({ err }, 'could not start the HA master; releasing role.ha');
          void lease.stop().then(() => lease.start());
          return undefined;
        }),
      };
    },
    onLost: (epoch) => {
      const lost = master;
      master = undefined;
      serving = undefined;
      if (lost?.epoch === epoch) void lost.run.then(async (m) => m?.stop());
    },
  });

  const agent = new HostAgent({
    bus,
    log,
    settings: s,
    host: { name: host.name, cpuCount: host.spec.cpuCount, memoryBytes: host.spec.memoryBytes },
    incarnation,
    leases: new PowerOnLeases(reach.leases, s.host, s.powerOnLeaseTtlMs),
    records: reach.records,
    protections: reach.protections,
    restarts: reach.restarts,
    protectionCache,
    config,
    drivers: drivers(s, log),
    events,
    board,
    masterEpoch: () => (master !== undefined && lease.epoch === master.epoch ? master.epoch : undefined),
    otherHosts: () => cfgCache.values().filter((e) => 'kind' in e.value && e.value.kind === 'host' && e.value.name !== s.host).length,
  });
  registerHaMetrics(metrics, () => serving, () => agent.vms().length);
  await agent.start();
  lease.start();
  log.info({ host: s.host, incarnation, nbd: `${s.nbdHost}:${s.nbdPort}`, runDir: s.runDir }, 'HA agent started');

  return async () => {
    await lease.stop();
    await master?.run.then((m) => m?.stop());
    await agent.stop();
    await heartbeats.stop();
    cfgCache.stop();
    protectionCache.stop();
    sightings.stop();
    link.stop();
  };
}

/** The host object of this agent; the agent cannot run before it exists. */
async function waitForHost(config: ConfigClient, name: string, log: ActorContext['log']): Promise<ObjectOf<'host'>> {
  const deadline = performance.now() + HOST_WAIT_MS;
  for (let said = false; ; said = true) {
    try {
      return (await config.get({ kind: 'host', name })) as ObjectOf<'host'>;
    } catch (err) {
      if (!isStrataError(err) || !(err.code === ErrorCode.NOT_FOUND || err.retryable) || performance.now() >= deadline) throw err;
      if (!said) log.warn({ host: name, err }, 'waiting for this host to exist in the configuration');
      await new Promise((r) => setTimeout(r, 1_000));
    }
  }
}

function drivers(s: AgentSettings, log: ActorContext['log']): Record<string, VmDriver> {
  const guestDir = s.guestDir ?? newestGuest();
  if (guestDir === undefined) log.warn({ looked: DEFAULT_GUEST_PARENT }, 'no QEMU guest found: qemu VMs cannot start here until infra/scripts/build-guest.sh has built one (or --guest-dir names it)');
  return {
    process: new ProcessDriver({ workloadScript: s.workloadScript, intervalMs: s.vmIntervalMs, startTimeoutMs: s.vmStartTimeoutMs }),
    qemu: new QemuDriver({ qemuBinary: s.qemuBinary, guestDir: guestDir ?? join(DEFAULT_GUEST_PARENT, 'none'), intervalMs: s.vmIntervalMs, startTimeoutMs: s.vmStartTimeoutMs }),
  };
}

/** The guest build-guest.sh made last, if any. */
function newestGuest(): string | undefined {
  if (!existsSync(DEFAULT_GUEST_PARENT)) return undefined;
  const dirs = readdirSync(DEFAULT_GUEST_PARENT)
    .map((d) => join(DEFAULT_GUEST_PARENT, d))
    .filter((d) => existsSync(join(d, 'vmlinuz')) && existsSync(join(d, 'initrd.img')));
  return dirs.sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs)[0];
}
