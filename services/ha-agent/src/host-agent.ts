// The slave side of an HA agent: the VMs of one host (PROTOCOL.md section 12). It
// powers VMs on when the master says so (taking each VM's power-on lease first),
// renews their leases while they run and powers a VM off before its lease could
// expire, releases a lease once its VM is off, heartbeats, rewrites its host record,
// detects isolation and applies the isolation response, and writes protection state
// and restart records for the master when asked (the master cannot reach the bucket).
import { performance } from 'node:perf_hooks';
import type { Bus } from '@strata/bus';
import type { ConfigClient } from '@strata/config-client';
import { ErrorCode, StrataError, isStrataError } from '@strata/errors';
import type { TypedBucket, WatchCache } from '@strata/kv';
import type { Logger } from '@strata/log';
import {
  EventType,
  HaAgentOp,
  HaService,
  haPowerOffRequest,
  haPowerOnRequest,
  haSetRequest,
  haSetRestartRequest,
  keys,
  subjects,
  type HaPowerOnReply,
  type HaSetRestartRequest,
  type ObjectOf,
  type VmProtection,
  type hostRecord,
  type restartRecord,
  type vmProtection,
} from '@strata/proto';
import type { HeartbeatBoard } from './board';
import type { VmDriver, VmInstance } from './drivers/driver';
import type { HaEvents } from './events';
import { isIsolated } from './host-view';
import { type PowerOnLeases, runUntil } from './power-on-lease';
import { DRIFT_FRACTION, type AgentSettings } from './settings';

export interface HostSpecView {
  name: string;
  cpuCount: number;
  memoryBytes: number;
}

export interface HostAgentDeps {
  bus: Bus;
  log: Logger;
  settings: AgentSettings;
  host: HostSpecView;
  incarnation: number;
  leases: PowerOnLeases;
  records: TypedBucket<typeof hostRecord>;
  protections: TypedBucket<typeof vmProtection>;
  /** Restart records, written here only for the master. */
  restarts: TypedBucket<typeof restartRecord>;
  /** A watched copy of `vm.>`: a VM whose protection state says off is powered off here. */
  protectionCache: WatchCache<VmProtection>;
  config: Pick<ConfigClient, 'get'>;
  drivers: Readonly<Record<string, VmDriver>>;
  events: HaEvents;
  board: HeartbeatBoard;
  /** The master epoch this agent holds, if it is the master. */
  masterEpoch: () => number | undefined;
  /** How many hosts the configuration has besides this one. */
  otherHosts: () => number;
}

/** A VM this host runs (or is starting). */
interface Running {
  vm: bigint;
  name: string;
  cpuCount: number;
  memoryBytes: number;
  epoch: number;
  /** The lease's revision after our last write. */
  revision: number;
  /** The revision of the take: a protection state older than it does not concern this instance. */
  takenAtRevision: number;
  /** Local monotonic ms until which the VM may run without another renewal. */
  runUntilMs: number;
  instance: VmInstance | undefined;
  stopping: Promise<void> | undefined;
  timer: NodeJS.Timeout | undefined;
}

const now = (): number => performance.now();

export class HostAgent {
  private readonly running = new Map<bigint, Running>();
  private readonly starting = new Map<bigint, Promise<HaPowerOnReply>>();
  /** Capacity taken by VMs being started, before they are in `running`. */
  private readonly reserved = new Map<bigint, { cpuCount: number; memoryBytes: number }>();
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly services: Array<{ stop(): Promise<void> }> = [];
  private readonly startedAtMs = now();
  private lastStorageOkMs: number | undefined;
  private isolated = false;
  private beatSeq = 0;
  private recordSeq = 0;
  private stopped = false;

  constructor(private readonly d: HostAgentDeps) {}

  async start(): Promise<void> {
    const { bus, host } = this.d;
    this.services.push(await bus.serve(subjects.haAgent(host.name, HaAgentOp.powerOn), haPowerOnRequest, (r) => this.powerOn(r)));
    this.services.push(await bus.serve(subjects.haAgent(host.name, HaAgentOp.powerOff), haPowerOffRequest, (r) => this.powerOffRequest(r)));
    this.services.push(await bus.serve(subjects.haAgent(host.name, HaAgentOp.set), haSetRequest, (r) => this.setForMaster(r)));
    this.services.push(await bus.serve(subjects.haAgent(host.name, HaAgentOp.setRestart), haSetRestartRequest, (r) => this.setRestartForMaster(r)));
    const s = this.d.settings;
    this.every(s.haHeartbeatIntervalMs, () => this.beat());
    this.every(s.haHeartbeatIntervalMs, () => this.checkIsolation());
    this.every(s.recordIntervalMs, () => this.writeRecord());
    this.every(s.recordIntervalMs, () => this.checkProtection());
    this.beat();
    await this.writeRecord();
  }

  /** Stops serving and powers every VM off (a host that stops runs nothing). */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers) clearInterval(t);
    await Promise.all(this.services.map((s) => s.stop()));
    await Promise.all([...this.running.values()].map((r) => this.powerOff(r, 'its host agent stopped', 'stop')));
  }

  /** The VMs this host runs, for the master's own view. */
  vms(): Array<{ vm: bigint; powerOnEpoch: number; pid: number }> {
    return [...this.running.values()].filter((r) => r.instance !== undefined && r.stopping === undefined).map((r) => ({ vm: r.vm, powerOnEpoch: r.epoch, pid: r.instance!.pid }));
  }

  get isIsolated(): boolean {
    return this.isolated;
  }

  /** Runs `fn` every `ms`; a failure of one round is logged, and the next round runs. */
  private every(ms: number, fn: () => unknown): void {
    this.timers.push(
      setInterval(() => {
        try {
          void Promise.resolve(fn()).catch((err: unknown) => this.d.log.warn({ err }, 'a periodic task of the agent failed'));
        } catch (err) {
          this.d.log.warn({ err }, 'a periodic task of the agent failed');
        }
      }, ms),
    );
  }

  // ---- Orders from the master -----------------------------------------------------------

  /** Refuses an order from a master older than one this agent has seen. */
  private fence(haEpoch: number): void {
    const b = this.d.board;
    if (haEpoch < b.highestEpoch) throw new StrataError(ErrorCode.FENCED, `master epoch ${haEpoch} is stale: this agent has seen epoch ${b.highestEpoch}`);
    b.highestEpoch = haEpoch;
  }

  private async powerOn(r: { vm: bigint; haEpoch: number; leaseRevision: number; reason: string }): Promise<HaPowerOnReply> {
    this.fence(r.haEpoch);
    const running = this.running.get(r.vm);
    if (running?.instance !== undefined && running.stopping === undefined) return this.reply(running);
    const pending = this.starting.get(r.vm);
    if (pending !== undefined) return pending;
    if (this.isolated) throw new StrataError(ErrorCode.UNAVAILABLE, `host ${this.d.host.name} is isolated`);
    const start = this.startVm(r.vm, r.leaseRevision, r.reason).finally(() => this.starting.delete(r.vm));
    this.starting.set(r.vm, start);
    return start;
  }

  private reply(r: Running): HaPowerOnReply {
    return { host: this.d.host.name, powerOnEpoch: r.epoch, leaseRevision: r.takenAtRevision, pid: r.instance?.pid ?? 0 };
  }

  private async startVm(id: bigint, leaseRevision: number, reason: string): Promise<HaPowerOnReply> {
    const vm = (await this.d.config.get({ kind: 'vm', id })) as ObjectOf<'vm'>;
    // Checked and reserved with no await between, so two power-ons cannot both fit in one place.
    this.checkCapacity(vm);
    this.reserved.set(id, { cpuCount: vm.spec.cpuCount, memoryBytes: vm.spec.memoryBytes });
    try {
      return await this.takeAndStart(vm, leaseRevision, reason);
    } finally {
      this.reserved.delete(id);
    }
  }

  /** Takes the VM's lease on `leaseRevision`, then starts it under the lease, renewing it from the start. */
  private async takeAndStart(vm: ObjectOf<'vm'>, leaseRevision: number, reason: string): Promise<HaPowerOnReply> {
    const id = vm.id;
    const launch = await this.launchOf(vm);
    const sentAtMs = now();
    const taken = await this.d.leases.take(id, leaseRevision);
    this.lastStorageOkMs = now();
    const s = this.d.settings;
    const entry: Running = {
      vm: id,
      name: vm.name,
      cpuCount: vm.spec.cpuCount,
      memoryBytes: vm.spec.memoryBytes,
      epoch: taken.epoch,
      revision: taken.revision,
      takenAtRevision: taken.revision,
      runUntilMs: runUntil(sentAtMs, s.powerOnLeaseTtlMs, DRIFT_FRACTION, s.powerOffMarginMs),
      instance: undefined,
      stopping: undefined,
      timer: undefined,
    };
    this.running.set(id, entry);
    this.reserved.delete(id);
    this.scheduleRenewal(entry);
    this.d.log.info({ vm: vm.name, epoch: taken.epoch, reason }, 'power-on lease taken; starting the VM');
    try {
      const driver = this.d.drivers[vm.spec.driver];
      if (driver === undefined) throw new StrataError(ErrorCode.INTERNAL, `no ${vm.spec.driver} driver on host ${this.d.host.name}`);
      const instance = await driver.start({ ...launch, powerOnEpoch: taken.epoch, disks: launch.disks.map((d) => ({ vdisk: d.vdisk, exportName: `${d.vdisk}@${id}.${taken.epoch}` })) }, (spawned) => this.spawned(entry, spawned));
      if (entry.stopping !== undefined) throw new StrataError(ErrorCode.UNAVAILABLE, `vm ${vm.name} was powered off while it started`);
      this.d.log.info({ vm: vm.name, epoch: taken.epoch, pid: instance.pid, firstLineAfterMs: instance.firstLineAfterMs, upAfterMs: Math.round(now() - sentAtMs) }, 'VM up');
      void instance.exited.then(({ code, signal }) => {
        if (entry.stopping === undefined) void this.powerOff(entry, `its process exited (${code === null ? `signal ${signal}` : `code ${code}`}): ${instance.tail().trim().split('\n').slice(-1)[0] ?? ''}`, 'exited');
      });
      void this.writeRecord();
      return this.reply(entry);
    } catch (err) {
      await this.powerOff(entry, `start failed: ${(err as Error).message}`, 'start-failed');
      throw err;
    }
  }

  private spawned(entry: Running, instance: VmInstance): void {
    entry.instance = instance;
    if (entry.stopping !== undefined) void instance.kill();
  }

  private checkCapacity(vm: ObjectOf<'vm'>): void {
    let cpu = vm.spec.cpuCount;
    let memory = vm.spec.memoryBytes;
    for (const r of [...this.running.values(), ...this.reserved.values()]) {
      cpu += r.cpuCount;
      memory += r.memoryBytes;
    }
    const h = this.d.host;
    if (cpu > h.cpuCount || memory > h.memoryBytes) {
      throw new StrataError(ErrorCode.NO_SPACE, `host ${h.name} cannot take vm ${vm.name}: it would use ${cpu} of ${h.cpuCount} CPUs and ${memory} of ${h.memoryBytes} bytes of memory`);
    }
  }

  private async launchOf(vm: ObjectOf<'vm'>): Promise<{ vm: bigint; name: string; cpuCount: number; memoryBytes: number; disks: Array<{ vdisk: string; exportName: string }>; nbdHost: string; nbdPort: number; nbdTlsClientDir?: string; runDir: string }> {
    const disks = [];
    for (const id of vm.spec.vdisks) disks.push({ vdisk: (await this.d.config.get({ kind: 'vdisk', id })).name, exportName: '' });
    const s = this.d.settings;
    const tls = s.nbdTlsClientDir === undefined ? {} : { nbdTlsClientDir: s.nbdTlsClientDir };
    return { vm: vm.id, name: vm.name, cpuCount: vm.spec.cpuCount, memoryBytes: vm.spec.memoryBytes, disks, nbdHost: s.nbdHost, nbdPort: s.nbdPort, ...tls, runDir: s.runDir };
  }

  private async powerOffRequest(r: { vm: bigint; haEpoch: number; reason: string }): Promise<{ wasRunning: boolean }> {
    this.fence(r.haEpoch);
    await this.starting.get(r.vm)?.catch(() => undefined);
    const entry = this.running.get(r.vm);
    if (entry === undefined) return { wasRunning: false };
    await this.powerOff(entry, r.reason, 'operator');
    return { wasRunning: true };
  }

  private async setForMaster(r: { vm: bigint; value: VmProtection; revision: number }): Promise<{ revision: number }> {
    this.fence(r.value.haEpoch);
    const value: VmProtection = { ...r.value, service: HaService.agent, setBy: this.d.host.name };
    const key = keys.vmProtection(r.vm);
    const revision = r.revision === 0 ? await this.d.protections.create(key, value) : await this.d.protections.update(key, value, r.revision);
    this.lastStorageOkMs = now();
    this.toldForMaster(r.vm, r.value.setBy, r.value.haEpoch, `the protection state (power ${value.power}${value.host === '' ? '' : `, host ${value.host}`}: ${value.reason})`);
    return { revision };
  }

  private async setRestartForMaster(r: HaSetRestartRequest): Promise<{ revision: number }> {
    this.fence(r.haEpoch);
    const key = keys.restartRecord(r.vm);
    let revision = 0;
    if (r.record === undefined) await this.d.restarts.delete(key, r.revision);
    else revision = r.revision === 0 ? await this.d.restarts.create(key, r.record) : await this.d.restarts.update(key, r.record, r.revision);
    this.lastStorageOkMs = now();
    this.toldForMaster(r.vm, this.d.board.masterAt(r.haEpoch) ?? 'the master', r.haEpoch, r.record === undefined ? 'the end of its restart (record deleted)' : `its restart record (step ${r.record.step}: ${r.record.reason})`);
    return { revision };
  }

  /** Publishes `ha.vm.set-for-master`: who wrote what for which master, and why. */
  private toldForMaster(vm: bigint, master: string, haEpoch: number, what: string): void {
    const me = this.d.host.name;
    void this.d.config
      .get({ kind: 'vm', id: vm })
      .then((o) => o.name, () => String(vm))
      .then((name) =>
        this.d.events.agent(EventType.haVmSetForMaster, { vm: { id: vm, name }, host: me, haEpoch }, `${me} wrote ${what} of vm ${name} for ${master} (epoch ${haEpoch}), which cannot reach the ha bucket`),
      );
  }

  // ---- Leases --------------------------------------------------------------------------------

  /** Renews every powerOnRenewMs, and powers the VM off at runUntilMs unless a renewal moved it. */
  private scheduleRenewal(entry: Running): void {
    clearTimeout(entry.timer);
    if (entry.stopping !== undefined) return;
    const untilDeadline = entry.runUntilMs - now();
    if (untilDeadline <= 0) {
      void this.powerOff(entry, 'its power-on lease could not be renewed in time', 'lease');
      return;
    }
    entry.timer = setTimeout(() => void this.renew(entry), Math.min(this.d.settings.powerOnRenewMs, untilDeadline));
  }

  private async renew(entry: Running): Promise<void> {
    if (entry.stopping !== undefined) return;
    if (now() >= entry.runUntilMs) return this.scheduleRenewal(entry);
    const sentAtMs = now();
    try {
      entry.revision = await this.d.leases.renew(entry.vm, entry.epoch, entry.revision);
      const s = this.d.settings;
      entry.runUntilMs = runUntil(sentAtMs, s.powerOnLeaseTtlMs, DRIFT_FRACTION, s.powerOffMarginMs);
      this.lastStorageOkMs = now();
    } catch (err) {
      if (isStrataError(err, ErrorCode.CONFLICT)) {
        void this.powerOff(entry, 'its power-on lease was taken by another host', 'lease');
        return;
      }
      this.d.log.warn({ err, vm: entry.name }, 'power-on lease renewal failed');
    }
    this.scheduleRenewal(entry);
  }

  /**
   * Powers a VM off: kills its process, waits for it to exit, then releases its lease.
   * Idempotent: a second call waits for the first.
   */
  private powerOff(entry: Running, reason: string, why: 'operator' | 'lease' | 'isolation' | 'exited' | 'start-failed' | 'stop' | 'protection'): Promise<void> {
    entry.stopping ??= (async () => {
      clearTimeout(entry.timer);
      await entry.instance?.kill();
      if (this.running.get(entry.vm) === entry) this.running.delete(entry.vm);
      this.d.log.warn({ vm: entry.name, epoch: entry.epoch, reason }, 'VM powered off');
      if (why !== 'operator' && why !== 'start-failed') {
        void this.d.events.agent(EventType.haVmPoweredOff, { vm: { id: entry.vm, name: entry.name }, host: this.d.host.name, powerOnEpoch: entry.epoch }, `vm ${entry.name} powered off on ${this.d.host.name}: ${reason}`);
      }
      await this.d.leases.release(entry.vm, entry.epoch, entry.revision).then(
        () => (this.lastStorageOkMs = now()),
        (err: unknown) => this.d.log.warn({ err, vm: entry.name }, 'could not release the power-on lease; it expires by itself'),
      );
      if (!this.stopped) void this.writeRecord();
    })();
    return entry.stopping;
  }

  /** Powers off a VM whose protection state was SET to off after its power-on (an operator's stop the master could not deliver). */
  private checkProtection(): void {
    for (const entry of this.running.values()) {
      const p = this.d.protectionCache.get(keys.vmProtection(entry.vm));
      if (p !== undefined && p.value.power === 'off' && p.revision > entry.takenAtRevision && entry.stopping === undefined) {
        void this.powerOff(entry, `its protection state says powered off (${p.value.reason}, set by ${p.value.setBy})`, 'protection');
      }
    }
  }

  // ---- Heartbeats, host record, isolation ----------------------------------------------------

  private beat(): void {
    const epoch = this.d.masterEpoch();
    this.d.bus.publish(subjects.haHeartbeat(this.d.host.name), {
      host: this.d.host.name,
      incarnation: this.d.incarnation,
      seq: ++this.beatSeq,
      master: epoch !== undefined,
      haEpoch: epoch ?? this.d.board.highestEpoch,
      isolated: this.isolated,
      intervalMs: this.d.settings.haHeartbeatIntervalMs,
    });
  }

  private async writeRecord(): Promise<void> {
    if (this.stopped) return;
    const h = this.d.host;
    try {
      await this.d.records.put(keys.hostRecord(h.name), {
        host: h.name,
        incarnation: this.d.incarnation,
        seq: ++this.recordSeq,
        atMs: Date.now(),
        cpuCount: h.cpuCount,
        memoryBytes: h.memoryBytes,
        vms: this.vms(),
        isolated: this.isolated,
        intervalMs: this.d.settings.recordIntervalMs,
      });
      this.lastStorageOkMs = now();
    } catch (err) {
      this.d.log.warn({ err }, 'could not write the host record');
    }
  }

  private checkIsolation(): void {
    const verdict = isIsolated({
      lastHeardOtherMs: this.d.board.lastHeardOther(),
      lastStorageOkMs: this.lastStorageOkMs,
      startedAtMs: this.startedAtMs,
      nowMs: now(),
      timeoutMs: this.d.settings.isolationTimeoutMs,
      otherHosts: this.d.otherHosts(),
    });
    if (verdict === this.isolated) return;
    this.isolated = verdict;
    if (!verdict) {
      this.d.log.info('host no longer isolated: it hears other agents again');
      return;
    }
    const vms = [...this.running.values()];
    this.d.log.error({ vms: vms.map((v) => v.name) }, 'host isolated: it hears no other agent and cannot reach the ha bucket; powering its VMs off');
    for (const entry of vms) void this.powerOff(entry, 'host isolated (isolation response: power off)', 'isolation');
    void this.d.events.agent(EventType.haHostIsolated, { host: this.d.host.name }, `host ${this.d.host.name} isolated: no heartbeat from any other agent and the ha bucket unreachable for ${this.d.settings.isolationTimeoutMs} ms; powered off ${vms.length} VM${vms.length === 1 ? '' : 's'}`);
  }
}
