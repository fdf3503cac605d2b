// The failover coordinator, run by the config leader: every vDisk owned by a node
// declared dead is moved to the next live volunteer from its ownership record (the
// nodes whose gateways opened it, in order), or else to the least loaded live node,
// through the takeover machine (takeover-machine.ts). Each takeover's progress is in
// `own` (`takeover.<vdisk>`), so a leader elected after this one died resumes it.
//
// Each run is a `takeover` span (a root: a sweep finds the dead owner, not a request),
// with a span per step, so the new owner's open and replay are in its trace, and so is
// the `owner.changed` event (its message carries the trace context): an operator can go
// from the event to the trace.
//
// Clock assumptions: none here. Deadness is the failure detector's verdict, recorded
// in the configuration; steps are bounded by request timeouts on this process's
// monotonic clock.
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Bus } from '@strata/bus';
import { ErrorCode, isStrataError } from '@strata/errors';
import type { TypedBucket, WatchCache } from '@strata/kv';
import type { Logger } from '@strata/log';
import { appendMarker, lastEntry } from '@strata/oplog';
import { takeOver } from '@strata/ownership';
import { ROOT_CONTEXT, SpanAttr, inSpan, trace } from '@strata/tracing';
import {
  EventType,
  TakeoverStep,
  VdcOp,
  keys,
  subjects,
  vdcOpenReply,
  type ClusterEvent,
  type TakeoverRecord,
  type VdiskOwnership,
  type takeoverRecord,
  type vdiskOwnership,
} from '@strata/proto';
import { attemptsExhausted, nextTakeover, recordOf, resumeTakeover, startTakeover, stepOf, type TakeoverEvent, type TakeoverSnapshot } from './takeover-machine';

const tracer = trace.getTracer('@strata/config');

export interface FailoverDeps {
  bus: Bus;
  nc: NatsConnection;
  /** The `own` bucket, read as ownership records and as takeover records. */
  owners: TypedBucket<typeof vdiskOwnership>;
  takeovers: TypedBucket<typeof takeoverRecord>;
  /** A watched copy of `vdisk.>` in `own`. */
  ownership: WatchCache<VdiskOwnership>;
  /** A watched copy of `takeover.>` in `own`: the takeovers recorded, by this leader or an earlier one. */
  recorded: WatchCache<TakeoverRecord>;
  /** The nodes and their recorded liveness. */
  nodes: () => ReadonlyArray<{ name: string; liveness: 'unknown' | 'alive' | 'dead' }>;
  /** A vDisk's name, for events and logs. */
  vdiskName: (id: bigint) => string | undefined;
  /** Records an event (the leader's event log). */
  emit: (event: Omit<ClusterEvent, 'atMs' | 'epoch'>) => Promise<void>;
  /** False once this replica no longer leads: running takeovers stop where they are. */
  leading: () => boolean;
  log: Logger;
  /** Bound of one step's request (the new owner's replay included). */
  stepTimeoutMs: number;
  /** Told of every takeover that ended with the new owner serving, and how long it took from its start (metrics). */
  onTakeoverDone?: (ms: number) => void;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export class FailoverCoordinator {
  private readonly running = new Map<bigint, Promise<void>>();
  private js: JetStreamClient | undefined;
  private jsm: JetStreamManager | undefined;
  /** vDisks already reported as having no node to go to, so the log says it once. */
  private readonly stranded = new Set<bigint>();

  constructor(private readonly deps: FailoverDeps) {}

  /** Takeovers running now (for status and tests). */
  get inProgress(): number {
    return this.running.size;
  }

  /**
   * Starts (or resumes) a takeover for every vDisk whose owner is dead, and resumes
   * every recorded takeover that is not running (an earlier leader's, or one of
   * this leader's that stopped on an error). Reads only the watched copies, so it
   * is cheap enough to run every second.
   */
  sweep(): void {
    const dead = new Set(
      this.deps
        .nodes()
        .filter((n) => n.liveness === 'dead')
        .map((n) => n.name),
    );
    for (const entry of this.deps.recorded.values()) this.ensureRunning(entry.value.vdisk);
    for (const entry of this.deps.ownership.values()) {
      if (dead.has(entry.value.owner)) this.ensureRunning(BigInt(entry.key.slice('vdisk.'.length)));
    }
  }

  /** Waits for the takeovers running now (tests, shutdown). */
  async settled(): Promise<void> {
    await Promise.all([...this.running.values()]);
  }

  private ensureRunning(vdisk: bigint): void {
    if (this.running.has(vdisk) || !this.deps.leading()) return;
    const run = this.run(vdisk)
      .catch((err: unknown) => this.deps.log.warn({ err, vdisk: String(vdisk) }, 'takeover interrupted; the next sweep resumes it'))
      .finally(() => this.running.delete(vdisk));
    this.running.set(vdisk, run);
  }

  /** Runs one vDisk's takeover to its end, or until this replica stops leading. */
  private async run(vdisk: bigint): Promise<void> {
    const snapshot = await this.load(vdisk);
    if (snapshot === undefined) return;
    const { from, reason } = snapshot.context;
    const span = tracer.startSpan('takeover', { root: true, attributes: { [SpanAttr.vdisk]: String(vdisk), 'strata.takeover.from': from, 'strata.takeover.reason': reason } }, ROOT_CONTEXT);
    await inSpan(span, () => this.runSteps(vdisk, snapshot), ROOT_CONTEXT);
  }

  private async runSteps(vdisk: bigint, first: TakeoverSnapshot): Promise<void> {
    let snapshot = first;
    while (this.deps.leading()) {
      const step = stepOf(snapshot);
      if (step === undefined) return;
      const event = await this.perform(step, snapshot.context);
      let next = nextTakeover(snapshot, event);
      if (event.type === 'failed' && next === snapshot && attemptsExhausted(snapshot)) {
        // The step failed every time: the node taking over is not answering.
        const to = this.choose(snapshot.context.from, new Set([...snapshot.context.excluded, snapshot.context.to]));
        if (to === undefined) {
          await sleep(1_000);
          continue;
        }
        this.deps.log.warn({ vdisk: String(vdisk), from: snapshot.context.to, to, step }, 'takeover target not answering; choosing another node');
        next = nextTakeover(snapshot, { type: 'retarget', to });
      }
      if (!this.deps.leading()) return;
      await this.store(vdisk, next);
      if (event.type === 'failed') await sleep(200 * next.context.attempts);
      snapshot = next;
    }
  }

  /** The recorded takeover of `vdisk`, or a new one when its owner is dead; undefined when there is nothing to do. */
  private async load(vdisk: bigint): Promise<TakeoverSnapshot | undefined> {
    const stored = await this.deps.takeovers.get(keys.takeover(vdisk));
    if (stored !== null) return resumeTakeover(stored.value);
    const ownership = await this.deps.owners.get(keys.vdiskOwnership(vdisk));
    if (ownership === null) return undefined;
    const from = ownership.value.owner;
    const fromNode = this.deps.nodes().find((n) => n.name === from);
    if (fromNode?.liveness !== 'dead') return undefined;
    const to = this.choose(from, new Set(), ownership.value);
    const name = this.deps.vdiskName(vdisk) ?? String(vdisk);
    if (to === undefined) {
      if (!this.stranded.has(vdisk)) this.deps.log.error({ vdisk: name, from }, 'owner is dead and no live node can take the vdisk over; waiting for one');
      this.stranded.add(vdisk);
      return undefined;
    }
    this.stranded.delete(vdisk);
    const snapshot = startTakeover({
      vdisk,
      from,
      to,
      epoch: ownership.value.epoch + 1,
      reason: `node ${from} declared dead${this.passedOver(from, to, ownership.value)}`,
      startedAtMs: Date.now(),
      attempts: 0,
      excluded: [],
    });
    this.deps.log.info({ vdisk: name, from, to, epoch: snapshot.context.epoch }, 'taking over vdisk of a dead node');
    await this.store(vdisk, snapshot);
    return snapshot;
  }

  private async store(vdisk: bigint, snapshot: TakeoverSnapshot): Promise<void> {
    if (stepOf(snapshot) === undefined) await this.deps.takeovers.delete(keys.takeover(vdisk));
    else await this.deps.takeovers.put(keys.takeover(vdisk), recordOf(snapshot));
  }

  /**
   * The node a vDisk of `from` goes to: its first live volunteer, else the live node
   * owning the fewest vDisks (by name on a tie), never one of `excluded`.
   */
  choose(from: string, excluded: ReadonlySet<string>, ownership?: VdiskOwnership): string | undefined {
    const alive = this.deps
      .nodes()
      .filter((n) => n.liveness === 'alive' && n.name !== from && !excluded.has(n.name))
      .map((n) => n.name);
    const eligible = new Set(alive);
    for (const v of ownership?.volunteers ?? []) if (eligible.has(v)) return v;
    const load = new Map(alive.map((n) => [n, 0]));
    for (const e of this.deps.ownership.values()) if (load.has(e.value.owner)) load.set(e.value.owner, load.get(e.value.owner)! + 1);
    return [...load].sort((a, b) => a[1] - b[1] || (a[0] < b[0] ? -1 : 1))[0]?.[0];
  }

  /** Why volunteers listed before `to` were not chosen (empty when none was passed over), for the takeover's reason. */
  private passedOver(from: string, to: string, ownership: VdiskOwnership): string {
    const liveness = new Map(this.deps.nodes().map((n) => [n.name, n.liveness]));
    const skipped: string[] = [];
    for (const v of ownership.volunteers) {
      if (v === to) break;
      if (v !== from) skipped.push(`${v} ${liveness.get(v) ?? 'unknown'}`);
    }
    return skipped.length === 0 ? '' : `; volunteer ${skipped.join(', ')}`;
  }

  /** Runs one step's effect; every step may run twice without harm. */
  private async perform(step: TakeoverStep, t: Omit<TakeoverRecord, 'step'>): Promise<TakeoverEvent> {
    const span = tracer.startSpan(`takeover ${step}`, { attributes: { [SpanAttr.vdisk]: String(t.vdisk), [SpanAttr.owner]: t.to, [SpanAttr.epoch]: t.epoch, 'strata.takeover.attempt': t.attempts + 1 } });
    return inSpan(span, async () => {
      const event = await this.performStep(step, t);
      if (event.type !== 'done') span.setAttribute('strata.takeover.outcome', event.type);
      return event;
    });
  }

  private async performStep(step: TakeoverStep, t: Omit<TakeoverRecord, 'step'>): Promise<TakeoverEvent> {
    try {
      switch (step) {
        case TakeoverStep.claim:
          return await this.claim(t);
        case TakeoverStep.fence:
          return await this.fence(t);
        case TakeoverStep.replay:
          return await this.replay(t);
        case TakeoverStep.serve:
          return await this.serve(t);
      }
    } catch (err) {
      this.deps.log.warn({ err, vdisk: String(t.vdisk), step, to: t.to, attempt: t.attempts + 1 }, 'takeover step failed');
      return { type: 'failed' };
    }
  }

  /** own names `to` at the new epoch, by compare-and-set on the record the dead owner left. */
  private async claim(t: Omit<TakeoverRecord, 'step'>): Promise<TakeoverEvent> {
    const key = keys.vdiskOwnership(t.vdisk);
    const current = await this.deps.owners.get(key);
    const decision = takeOver(current?.value ?? null, t.to, t.epoch);
    if (decision.kind !== 'write') return { type: decision.kind };
    // A lost compare-and-set fails the step; the machine tries it again on the new record.
    await this.deps.owners.update(key, decision.next, current!.revision);
    return { type: 'done' };
  }

  /** The takeover marker is the oplog's last message: from now on the dead owner's appends fail. */
  private async fence(t: Omit<TakeoverRecord, 'step'>): Promise<TakeoverEvent> {
    // Made on first use: a leader with no failover to run never waits for JetStream here.
    this.js ??= jetstream(this.deps.nc);
    this.jsm ??= await jetstreamManager(this.deps.nc);
    const last = await lastEntry(this.jsm, t.vdisk);
    if (last?.entry.kind === 'marker' && last.entry.epoch >= t.epoch) return { type: 'done' };
    try {
      await appendMarker(this.js, { vdisk: t.vdisk, epoch: t.epoch, owner: t.to, expectLastSeq: last?.seq ?? 0, timeoutMs: this.deps.stepTimeoutMs });
    } catch (err) {
      // The old owner (paused, not dead) appended meanwhile: read the last message again.
      if (isStrataError(err, ErrorCode.FENCED)) return { type: 'failed' };
      throw err;
    }
    return { type: 'done' };
  }

  /** The new owner replays the oplog tail and serves. */
  private async replay(t: Omit<TakeoverRecord, 'step'>): Promise<TakeoverEvent> {
    try {
      const reply = await this.deps.bus.request(subjects.controller(t.to, VdcOp.open), { vdisk: t.vdisk, epoch: t.epoch }, vdcOpenReply, { timeoutMs: this.deps.stepTimeoutMs });
      this.deps.log.info({ vdisk: String(t.vdisk), to: t.to, epoch: t.epoch, replayed: reply.replayed }, 'new owner serves the vdisk');
      return { type: 'done' };
    } catch (err) {
      if (isStrataError(err, ErrorCode.NOT_OWNER)) {
        const current = await this.deps.owners.get(keys.vdiskOwnership(t.vdisk));
        if (current === null || current.value.epoch > t.epoch) return { type: 'superseded' };
      }
      throw err;
    }
  }

  /** The move is recorded for operators; the record goes with the last transition. */
  private async serve(t: Omit<TakeoverRecord, 'step'>): Promise<TakeoverEvent> {
    const name = this.deps.vdiskName(t.vdisk) ?? String(t.vdisk);
    const tookMs = Date.now() - t.startedAtMs;
    this.deps.onTakeoverDone?.(tookMs);
    await this.deps.emit({
      type: EventType.ownerChanged,
      kind: 'vdisk',
      id: t.vdisk,
      name,
      owner: t.to,
      previousOwner: t.from,
      ownerEpoch: t.epoch,
      cause: 'failover',
      message: `vdisk ${name}: ${t.from} -> ${t.to} at epoch ${t.epoch} (${t.reason}; took over in ${tookMs} ms${t.excluded.length > 0 ? `, after ${t.excluded.join(', ')} could not` : ''})`,
    });
    return { type: 'done' };
  }
}
