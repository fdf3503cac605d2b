// The HA master (PROTOCOL.md section 12): while this agent holds `role.ha`, it looks
// at every VM every lookIntervalMs, keeps the restart and wait lists as restart
// machines persisted in `restart.<vm>`, powers VMs on through their hosts' agents,
// and answers the operator's start, stop and status. Every step of a look runs one at
// a time (a promise chain), so the machines see one event at a time; the decisions
// are those of plan.ts, and each new snapshot is stored before it is acted on.
import { performance } from 'node:perf_hooks';
import type { Bus, Service } from '@strata/bus';
import { ErrorCode, StrataError, isStrataError } from '@strata/errors';
import type { Logger } from '@strata/log';
import {
  EventType,
  HaAgentOp,
  HaMasterOp,
  HaService,
  HostState,
  RestartStep,
  VmPower,
  haPowerOffReply,
  haPowerOnReply,
  haSetReply,
  haStartRequest,
  haStatusRequest,
  haStopRequest,
  keys,
  subjects,
  type HaPowerOnReply,
  type HaStatusReply,
  type ObjectOf,
  type RestartRecord,
  type VmProtection,
} from '@strata/proto';
import type { AccessChecker } from './accessibility';
import type { HeartbeatBoard } from './board';
import { INACCESSIBLE_HINT } from './drivers/driver';
import type { HaEvents } from './events';
import type { HaLink } from './ha-link';
import { throughAgents } from './delegate';
import { hostState, recordFresh } from './host-view';
import { leaseState, type LeaseState } from './lease-view';
import type { ConfigView, MasterState, StateBuckets } from './master-state';
import { place } from './placement';
import { look, needsAccessCheck, restartOrder, type Action, type VmView } from './plan';
import { ProtectionStore } from './protection';
import { nextRestart, outcomeOf, recordOf, restartMachine, resumeRestart, startRestart, stepOf, type PowerOnFailure, type RestartEvent, type RestartMachine, type RestartSnapshot } from './restart-machine';
import type { AgentSettings } from './settings';
import { capacities, capacityFingerprint, usageOf, vmStanding } from './view';

export interface MasterDeps {
  bus: Bus;
  log: Logger;
  settings: AgentSettings;
  me: string;
  epoch: number;
  /** False once this agent no longer holds `role.ha` at `epoch`. */
  leading: () => boolean;
  state: MasterState;
  buckets: StateBuckets;
  board: HeartbeatBoard;
  events: HaEvents;
  access: AccessChecker;
  /** Requests to other agents, over the HA network. */
  link: HaLink;
}

/** Checks the wait list again at least this often, announcements or not. */
const ACCESS_RECHECK_MS = 5_000;
/** Keys of deleted VMs deleted per look, at most (of each kind). */
const FORGET_PER_LOOK = 8;

export class Master {
  private readonly machine: RestartMachine;
  private readonly protection: ProtectionStore;
  /** This master's copy of the restart records: the snapshot and its stored revision. */
  private readonly restarts = new Map<bigint, { snapshot: RestartSnapshot; revision: number }>();
  /** VMs this master restarted. */
  private restartedCount = 0;
  /** Power-ons under way: VM -> host. */
  private readonly inFlight = new Map<bigint, string>();
  private readonly hostStates = new Map<string, HostState>();
  /** Events already published for a VM, so a wait that repeats is told once. */
  private readonly told = new Map<bigint, string>();
  private readonly services: Service[] = [];
  private queue: Promise<void> = Promise.resolve();
  private timer: NodeJS.Timeout | undefined;
  private lastFingerprint = '';
  private lastAccessCheckMs = 0;
  private stopped = false;

  constructor(private readonly d: MasterDeps) {
    const s = d.settings;
    this.machine = restartMachine({ retryDelayMs: s.retryDelayMs, retryDelayMaxMs: s.retryDelayMaxMs, attemptsMax: s.restartAttemptsMax });
    this.protection = new ProtectionStore({
      bucket: d.buckets.protections,
      cache: d.state.protections,
      helpers: () => this.helpers(),
      setThrough: async (host, vm, value, revision) => (await d.link.request(host, HaAgentOp.set, { vm, value, revision }, haSetReply, { timeoutMs: 5_000 })).revision,
      log: d.log,
    });
    for (const { vm, record, revision } of d.state.storedRestarts()) this.restarts.set(vm, { snapshot: resumeRestart(this.machine, record), revision });
  }

  async start(): Promise<void> {
    const { bus } = this.d;
    this.services.push(await bus.serve(subjects.haMaster(HaMasterOp.start), haStartRequest, (r) => this.startVm(r.vm)));
    this.services.push(await bus.serve(subjects.haMaster(HaMasterOp.stop), haStopRequest, (r) => this.stopVm(r.vm)));
    this.services.push(await bus.serve(subjects.haMaster(HaMasterOp.status), haStatusRequest, () => this.status()));
    const resumed = [...this.restarts.values()].map((r) => r.snapshot.context.vm);
    void this.d.events.master(EventType.haMasterElected, { host: this.d.me, haEpoch: this.d.epoch }, `${this.d.me} is the HA master at epoch ${this.d.epoch}; it resumes ${resumed.length} restart${resumed.length === 1 ? '' : 's'}`);
    this.schedule(0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await Promise.all(this.services.map((s) => s.stop()));
    await this.queue.catch(() => undefined);
    this.d.state.stop();
  }

  /** Runs `fn` after everything queued before it: one step at a time. */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn);
    this.queue = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      void this.serial(() => this.lookTwice())
        .catch((err: unknown) => this.d.log.error({ err }, 'HA master look failed'))
        .finally(() => this.schedule(this.d.settings.lookIntervalMs));
    }, delayMs);
  }

  /** A look, and at once another when the first put VMs on the list (so they are placed without waiting). */
  private async lookTwice(): Promise<void> {
    if ((await this.lookOnce()) > 0) await this.lookOnce();
  }

  // ---- One look ----------------------------------------------------------------------------------

  /** Returns how many VMs it put on the restart list. */
  private async lookOnce(): Promise<number> {
    if (!this.d.leading()) return 0;
    const cfg = this.d.state.config();
    this.judgeHosts(cfg);
    const views = this.vmViews(cfg);
    const announced = this.takeAnnouncement();
    await this.checkAccess(views, cfg, announced);
    const hosts = capacities(cfg.hosts, this.hostStates, usageOf(views, this.d.state.hostRecords(), this.inFlight), this.freshHosts());
    const fingerprint = capacityFingerprint(hosts);
    const capacityChanged = fingerprint !== this.lastFingerprint;
    this.lastFingerprint = fingerprint;
    const configured = new Set(cfg.vms.map((v) => v.id));
    await this.forgetDeleted(configured);
    const orphans = [...this.restarts.keys()].filter((vm) => !configured.has(vm));
    const actions = look({ vms: views, orphans, hosts, hostStates: this.hostStates, wallNowMs: Date.now(), capacityChanged, accessAnnounced: announced, inFlightMax: this.d.settings.restartsInFlightMax });
    const byId = new Map(views.map((v) => [v.id, v]));
    let listed = 0;
    for (const a of actions) {
      if (!this.d.leading()) break;
      if (a.kind === 'list') listed++;
      await this.apply(a, byId.get(a.vm));
    }
    return listed;
  }

  /**
   * Deletes what the `ha` bucket holds of VMs no longer in the configuration (`strata
   * vm rm` refuses a VM that runs): their protection state, and their released power-on
   * leases. At most a few per look.
   */
  private async forgetDeleted(configured: ReadonlySet<bigint>): Promise<void> {
    const gone = (key: string): boolean => !configured.has(BigInt(key.slice(key.indexOf('.') + 1)));
    const protections = this.d.state.protections.values().filter((e) => gone(e.key));
    const leases = this.d.state.leaseCache.values().filter((e) => gone(e.key) && e.value.holder === '');
    for (const e of protections.slice(0, FORGET_PER_LOOK)) await this.d.buckets.protections.delete(e.key, e.revision).catch((err: unknown) => this.d.log.warn({ err, key: e.key }, 'could not delete the protection state of a deleted VM'));
    for (const e of leases.slice(0, FORGET_PER_LOOK)) await this.d.buckets.leases.delete(e.key, e.revision).catch((err: unknown) => this.d.log.warn({ err, key: e.key }, 'could not delete the power-on lease of a deleted VM'));
  }

  private takeAnnouncement(): boolean {
    const now = performance.now();
    const due = this.d.state.accessAnnounced || now - this.lastAccessCheckMs >= ACCESS_RECHECK_MS;
    if (due) {
      this.d.state.accessAnnounced = false;
      this.lastAccessCheckMs = now;
    }
    return due;
  }

  private judgeHosts(cfg: ConfigView): void {
    const now = performance.now();
    for (const h of cfg.hosts) {
      const heard = this.d.board.get(h.name);
      const seen = { ...(heard === undefined ? {} : { heartbeatAtMs: heard.atMs, heartbeatIsolated: heard.beat.isolated }), ...(this.d.state.recordSeen.has(h.name) ? { record: this.d.state.recordSeen.get(h.name)! } : {}) };
      const state = hostState(seen, now, this.d.settings.hostDeadTimeoutMs, this.d.state.watchingSinceMs);
      const before = this.hostStates.get(h.name);
      this.hostStates.set(h.name, state);
      if (state === HostState.dead && before !== undefined && before !== HostState.dead) {
        void this.d.events.master(EventType.haHostFailed, { host: h.name, haEpoch: this.d.epoch }, `host ${h.name} failed: no heartbeat and no host record renewal for ${this.d.settings.hostDeadTimeoutMs} ms (it was ${before})`);
      }
    }
  }

  /**
   * Hosts heard within three heartbeat intervals whose host records are renewed (they
   * reach the `ha` bucket, so they can take a power-on lease): the ones a VM is placed on.
   */
  private freshHosts(): Set<string> {
    const within = 3 * this.d.settings.haHeartbeatIntervalMs;
    const heard = this.d.board.reachable(within);
    const me = this.d.board.get(this.d.me);
    if (me !== undefined && performance.now() - me.atMs < within) heard.push(this.d.me);
    return new Set(heard.filter((h) => this.reachesStorage(h)));
  }

  private reachesStorage(host: string): boolean {
    return recordFresh(this.d.state.recordSeen.get(host), performance.now(), this.d.settings.recordIntervalMs);
  }

  /** The agents that may write the `ha` bucket for this master: heard lately, those that reach it first. */
  private helpers(): string[] {
    const heard = this.d.board.reachable(this.d.settings.hostDeadTimeoutMs);
    return [...heard.filter((h) => this.reachesStorage(h)), ...heard.filter((h) => !this.reachesStorage(h))];
  }

  private vmViews(cfg: ConfigView): VmView[] {
    const now = performance.now();
    return cfg.vms.map((vm) => ({
      id: vm.id,
      name: vm.name,
      cpuCount: vm.spec.cpuCount,
      memoryBytes: vm.spec.memoryBytes,
      haProtected: vm.spec.haProtected,
      restartPriority: vm.spec.restartPriority,
      protection: this.protection.get(vm.id)?.value,
      lease: this.lease(vm.id, now),
      restart: this.restarts.get(vm.id)?.snapshot,
      inFlight: this.inFlight.has(vm.id),
      access: undefined,
    }));
  }

  private lease(vm: bigint, now = performance.now()): LeaseState {
    return leaseState(this.d.state.leases.get(keys.powerOnLease(vm)), now);
  }

  private async checkAccess(views: VmView[], cfg: ConfigView, announced: boolean): Promise<void> {
    const alive = new Set(cfg.nodes.filter((n) => n.status.liveness === 'alive').map((n) => n.name));
    for (const v of views) {
      if (!needsAccessCheck(v, announced)) continue;
      const vm = cfg.vms.find((x) => x.id === v.id)!;
      const vdisks = vm.spec.vdisks.map((id) => ({ id, name: cfg.vdisks.get(id)?.name ?? String(id) }));
      try {
        v.access = await this.d.access.check(vdisks, alive);
      } catch (err) {
        this.d.log.warn({ err, vm: v.name }, 'could not read the metadata of its vDisks; checking again at the next look');
      }
    }
  }

  // ---- Acting on a look ---------------------------------------------------------------------------

  private async apply(a: Action, v: VmView | undefined): Promise<void> {
    switch (a.kind) {
      case 'forget':
        return this.store(a.vm, undefined);
      case 'list':
        return this.list(a, v!);
      case 'notRestarted':
        return this.notRestarted(v!, a.reason);
      case 'feed':
        return this.feed(v!, a.event, a.powerOn);
    }
  }

  private async list(a: Extract<Action, { kind: 'list' }>, v: VmView): Promise<void> {
    const snapshot = startRestart(this.machine, {
      vm: v.id,
      cause: a.cause,
      reason: 'to be placed on a host with capacity',
      priority: a.priority,
      listedAtMs: Date.now(),
      attempts: 0,
      excluded: [],
      haEpoch: this.d.epoch,
    });
    await this.store(v.id, snapshot);
    await this.d.events.master(EventType.haVmListed, { vm: v, haEpoch: this.d.epoch, host: v.protection?.host }, `vm ${v.name} is on the restart list (priority ${a.priority}): ${a.cause}`);
  }

  private async notRestarted(v: VmView, reason: string): Promise<void> {
    await this.setProtection(v.id, { power: VmPower.off, protected: false, host: v.protection?.host ?? '', reason });
    await this.d.events.master(EventType.haVmNotRestarted, { vm: v, haEpoch: this.d.epoch }, `vm ${v.name} is not restarted: ${reason}`);
  }

  private async feed(v: VmView, event: RestartEvent, powerOn: { host: string; leaseRevision: number } | undefined): Promise<void> {
    const current = this.restarts.get(v.id)?.snapshot;
    if (current === undefined) return;
    const next = nextRestart(this.machine, current, event);
    if (next === current) return;
    await this.store(v.id, next);
    if (powerOn !== undefined) this.dispatch(v, powerOn.host, powerOn.leaseRevision, `restart: ${next.context.cause}`);
    await this.tell(v, next);
  }

  /** The events of a transition that people need to hear of. */
  private async tell(v: VmView, next: RestartSnapshot): Promise<void> {
    const c = next.context;
    const fields = { vm: v, haEpoch: this.d.epoch, ...(c.host === undefined ? {} : { host: c.host }) };
    const step = stepOf(next);
    const outcome = outcomeOf(next);
    if (step === 'wait-access' || step === 'wait-capacity') {
      const message = `vm ${v.name} waits ${step === 'wait-access' ? 'on the wait list' : 'for capacity'}: ${c.reason}`;
      if (this.told.get(v.id) !== message) await this.d.events.master(EventType.haVmWaiting, fields, message);
      this.told.set(v.id, message);
    } else if (step === 'retry-delay') {
      await this.d.events.master(EventType.haVmRestartFailed, fields, `vm ${v.name}: restart attempt ${c.attempts} failed: ${c.reason}; next attempt at ${new Date(c.retryAtMs ?? 0).toISOString()}`);
    } else if (outcome === 'gaveUp') {
      await this.setProtection(v.id, { power: VmPower.off, protected: false, host: v.protection?.host ?? '', reason: `HA gave up after ${c.attempts} failed restarts: ${c.reason}` });
      await this.d.events.master(EventType.haVmGaveUp, fields, `vm ${v.name}: HA gave up after ${c.attempts} failed restarts: ${c.reason}`);
    } else if (outcome === 'restarted') {
      await this.restarted(v, c.host ?? '', c.cause);
    } else if (outcome === 'cancelled') {
      this.d.log.info({ vm: v.name, reason: c.reason }, 'restart ended');
    }
    if (step !== 'wait-access' && step !== 'wait-capacity') this.told.delete(v.id);
  }

  /** The VMs on the restart list and on the wait list now, and the restarts this master made (metrics). */
  lists(): { restart: number; wait: number; restarted: number } {
    let restart = 0;
    let wait = 0;
    for (const { snapshot } of this.restarts.values()) {
      if (outcomeOf(snapshot) !== undefined) continue;
      if (snapshot.value === RestartStep.waitCapacity || snapshot.value === RestartStep.waitAccess) wait++;
      else restart++;
    }
    return { restart, wait, restarted: this.restartedCount };
  }

  private async restarted(v: VmView, host: string, cause: string, powerOnEpoch?: number): Promise<void> {
    this.restartedCount++;
    const protection = this.protection.get(v.id)?.value;
    if (protection?.power === VmPower.on) await this.setProtection(v.id, { power: VmPower.on, protected: protection.protected, host, reason: `restarted on ${host}` });
    const epoch = powerOnEpoch ?? this.lease(v.id).epoch;
    await this.d.events.master(EventType.haVmRestarted, { vm: v, host, haEpoch: this.d.epoch, powerOnEpoch: epoch }, `vm ${v.name} restarted on ${host} (power-on lease epoch ${epoch}): ${cause}`);
  }

  /** Stores a snapshot (or deletes the record once the restart is over) by compare-and-set on this master's copy. */
  private async store(vm: bigint, snapshot: RestartSnapshot | undefined): Promise<void> {
    const mine = this.restarts.get(vm);
    const over = snapshot === undefined || stepOf(snapshot) === undefined;
    if (over) {
      if (mine !== undefined) await this.writeRestart(vm, undefined, mine.revision);
      this.restarts.delete(vm);
      return;
    }
    const record: RestartRecord = { ...recordOf(snapshot), haEpoch: this.d.epoch };
    this.restarts.set(vm, { snapshot, revision: await this.writeRestart(vm, record, mine?.revision ?? 0) });
  }

  /**
   * Writes `restart.<vm>` (without a record, deletes it) by compare-and-set on `revision`
   * (0: create); through another host's agent when this host cannot reach the bucket.
   */
  private async writeRestart(vm: bigint, record: RestartRecord | undefined, revision: number): Promise<number> {
    const key = keys.restartRecord(vm);
    const bucket = this.d.buckets.restarts;
    try {
      if (record === undefined) return await bucket.delete(key, revision).then(() => 0);
      return revision === 0 ? await bucket.create(key, record) : await bucket.update(key, record, revision);
    } catch (err) {
      if (!isStrataError(err, ErrorCode.UNAVAILABLE)) throw err;
      const request = { vm, ...(record === undefined ? {} : { record }), revision, haEpoch: this.d.epoch };
      const ask = async (host: string): Promise<number> => (await this.d.link.request(host, HaAgentOp.setRestart, request, haSetReply, { timeoutMs: 5_000 })).revision;
      return throughAgents({ helpers: this.helpers().slice(0, 3), what: `the restart record of vm ${vm}`, cause: err, ask, log: this.d.log });
    }
  }

  private async setProtection(vm: bigint, p: Pick<VmProtection, 'power' | 'protected' | 'host' | 'reason'>): Promise<void> {
    await this.protection.set(vm, { ...p, service: HaService.master, setBy: this.d.me, haEpoch: this.d.epoch, atMs: Date.now() });
  }

  // ---- Power-ons ------------------------------------------------------------------------------------

  /** Sends a power-on for a restart; its outcome is fed to the VM's machine when it arrives. */
  private dispatch(v: VmView, host: string, leaseRevision: number, reason: string): void {
    this.inFlight.set(v.id, host);
    void this.powerOn(v.id, host, leaseRevision, reason).then(
      (reply) => this.serial(() => this.settle(v, host, { reply })),
      (err: unknown) => this.serial(() => this.settle(v, host, { err })),
    );
  }

  private async powerOn(vm: bigint, host: string, leaseRevision: number, reason: string): Promise<HaPowerOnReply> {
    const reply = await this.d.link.request(host, HaAgentOp.powerOn, { vm, haEpoch: this.d.epoch, leaseRevision, reason }, haPowerOnReply, { timeoutMs: this.d.settings.powerOnTimeoutMs });
    // Later looks must see the lease the host took, not the free one the order named.
    await this.d.state.leaseCache.waitForRevision(reply.leaseRevision, 2_000);
    return reply;
  }

  private async settle(v: VmView, host: string, result: { reply?: HaPowerOnReply; err?: unknown }): Promise<void> {
    this.inFlight.delete(v.id);
    const current = this.restarts.get(v.id)?.snapshot;
    if (current === undefined || stepOf(current) !== 'powering-on' || current.context.host !== host) return;
    if (result.reply !== undefined) {
      await this.store(v.id, nextRestart(this.machine, current, { type: 'poweredOn' }));
      await this.restarted(v, host, current.context.cause, result.reply.powerOnEpoch);
      return;
    }
    const err = result.err;
    const event: RestartEvent = { type: 'powerOnFailed', cause: failureCause(err), reason: `${host}: ${err instanceof StrataError ? err.toString() : String(err)}`, atMs: Date.now() };
    const next = nextRestart(this.machine, current, event);
    await this.store(v.id, next);
    await this.tell(v, next);
  }

  // ---- Operator requests --------------------------------------------------------------------------

  private vmObject(id: bigint): ObjectOf<'vm'> {
    const vm = this.d.state.config().vms.find((v) => v.id === id);
    if (vm === undefined) throw new StrataError(ErrorCode.NOT_FOUND, `vm ${id} does not exist`);
    return vm;
  }

  private async startVm(id: bigint): Promise<HaPowerOnReply> {
    const vm = this.vmObject(id);
    const { host, leaseRevision } = await this.serial(() => this.claimStart(vm));
    try {
      const reply = await this.powerOn(id, host, leaseRevision, 'operator start');
      await this.d.events.master(EventType.haVmStarted, { vm, host, haEpoch: this.d.epoch, powerOnEpoch: reply.powerOnEpoch }, `vm ${vm.name} powered on at ${host} by the operator (power-on lease epoch ${reply.powerOnEpoch})`);
      return reply;
    } catch (err) {
      await this.serial(() => this.setProtection(id, { power: VmPower.off, protected: false, host: '', reason: `start failed: ${err instanceof StrataError ? err.toString() : String(err)}` })).catch(() => undefined);
      throw err;
    } finally {
      this.inFlight.delete(id);
    }
  }

  /** Chooses the host for an operator's start and SETs the VM's protection on, before the power-on goes out. */
  private async claimStart(vm: ObjectOf<'vm'>): Promise<{ host: string; leaseRevision: number }> {
    const lease = this.lease(vm.id);
    if (lease.kind === 'held') throw new StrataError(ErrorCode.CONFLICT, `vm ${vm.name} runs already: power-on lease epoch ${lease.epoch} held by ${lease.holder}`);
    if (this.inFlight.has(vm.id)) throw new StrataError(ErrorCode.CONFLICT, `vm ${vm.name} is being powered on at ${this.inFlight.get(vm.id)}`);
    const restart = this.restarts.get(vm.id)?.snapshot;
    if (restart !== undefined) throw new StrataError(ErrorCode.CONFLICT, `vm ${vm.name} is being restarted by HA (${stepOf(restart)}: ${restart.context.reason})`);
    const cfg = this.d.state.config();
    const views = this.vmViews(cfg);
    const hosts = capacities(cfg.hosts, this.hostStates, usageOf(views, this.d.state.hostRecords(), this.inFlight), this.freshHosts());
    const where = place(vm.spec, hosts, { excluded: [], preferred: cfg.hostNames.get(vm.spec.host) });
    if ('none' in where) throw new StrataError(ErrorCode.NO_SPACE, `vm ${vm.name} cannot start: ${where.none}`);
    await this.setProtection(vm.id, { power: VmPower.on, protected: vm.spec.haProtected, host: where.host, reason: 'operator start' });
    this.inFlight.set(vm.id, where.host);
    return { host: where.host, leaseRevision: lease.revision };
  }

  private async stopVm(id: bigint): Promise<{ wasRunning: boolean }> {
    const vm = this.vmObject(id);
    const lease = await this.serial(async () => {
      await this.setProtection(id, { power: VmPower.off, protected: false, host: this.protection.get(id)?.value.host ?? '', reason: 'operator stop' });
      const restart = this.restarts.get(id)?.snapshot;
      if (restart !== undefined) await this.store(id, nextRestart(this.machine, restart, { type: 'cancel', reason: 'powered off by the operator' }));
      return this.lease(id);
    });
    let wasRunning = false;
    if (lease.kind === 'held') {
      const reply = await this.d.link.request(lease.holder, HaAgentOp.powerOff, { vm: id, haEpoch: this.d.epoch, reason: 'operator stop' }, haPowerOffReply, { timeoutMs: 15_000 }).catch((err: unknown) => {
        throw new StrataError(ErrorCode.UNAVAILABLE, `vm ${vm.name} is marked off, but its host ${lease.holder} did not answer (${String(err)}); the host powers it off when it sees the mark or when its lease runs out`, { cause: err });
      });
      wasRunning = reply.wasRunning;
    }
    await this.d.events.master(EventType.haVmStopped, { vm, haEpoch: this.d.epoch, ...(lease.kind === 'held' ? { host: lease.holder } : {}) }, `vm ${vm.name} powered off by the operator${wasRunning && lease.kind === 'held' ? ` on ${lease.holder}` : ' (it was not running)'}`);
    return { wasRunning };
  }

  private status(): HaStatusReply {
    const cfg = this.d.state.config();
    const views = this.vmViews(cfg);
    const usage = usageOf(views, this.d.state.hostRecords(), this.inFlight);
    const caps = capacities(cfg.hosts, this.hostStates, usage);
    const names = new Map(views.map((v) => [v.id, v.name]));
    return {
      master: this.d.me,
      haEpoch: this.d.epoch,
      hosts: caps.map((h) => ({
        host: h.host,
        state: this.hostStates.get(h.host) ?? HostState.unknown,
        cpuCount: h.cpuCount,
        memoryBytes: h.memoryBytes,
        cpuUsed: h.cpuUsed,
        memoryUsedBytes: h.memoryUsedBytes,
        vms: [...(usage.get(h.host)?.keys() ?? [])].map((id) => names.get(id) ?? String(id)).sort(),
      })),
      vms: views.map((v) => ({ vm: v.id, name: v.name, protected: v.protection?.protected ?? false, ...vmStanding(v, this.hostStates) })),
      restarts: views.filter((v) => v.restart !== undefined).sort(restartOrder).map((v) => recordOf(v.restart!)),
    };
  }
}

/** How the master reads a failed power-on. */
export function failureCause(err: unknown): PowerOnFailure {
  if (isStrataError(err, ErrorCode.NO_SPACE)) return 'capacity';
  if (isStrataError(err, ErrorCode.UNAVAILABLE) && err.hint === INACCESSIBLE_HINT) return 'inaccessible';
  return 'other';
}
