// Admission control's shell: a bounded queue in front of the controller and a bound
// on the requests in flight to it. The queue discipline is an interface: the QoS
// scheduler (scheduler.ts: reservations, priority classes, fair share, caps) in the
// actor, a plain FIFO where order is all that matters. The gate does what the
// discipline cannot, being pure: it runs the dispatched requests, keeps their spans,
// and wakes itself when a cap holds every waiting request back.
import { ErrorCode, StrataError, assert } from '@strata/errors';
import type { Schedulable } from './scheduler';
import { SpanAttr, SpanStatusCode, context, trace, withSpan, type Attributes, type Context, type Span } from '@strata/tracing';

const tracer = trace.getTracer('@strata/admission');

/** The span of a request's time in the queue, from enqueue to dispatch. */
export const QUEUE_WAIT_SPAN = 'admission queue wait';

/** What the gate needs of a queue discipline (QosScheduler has this shape). */
export interface AdmissionQueue<T extends Schedulable> {
  /** Adds an item, or says why not: the node's queue or the flow's is full. */
  push(item: T, nowMs: number): 'queued' | 'node-full' | 'flow-full';
  /** The next item to dispatch now, if any may go; with `onlyHigh`, only one of the high class. */
  pop(nowMs: number, onlyHigh?: boolean): T | undefined;
  /** When pop gave nothing while items wait: the earliest time one (of the high class, with `onlyHigh`) may go. */
  nextEligibleMs(nowMs: number, onlyHigh?: boolean): number | undefined;
  readonly size: number;
  /** Items waiting in one flow. */
  sizeOf(flow: string): number;
}

/** First come, first served, up to `depthMax` waiting; flows and classes are not told apart (every item counts as high). */
export class FifoQueue<T extends Schedulable> implements AdmissionQueue<T> {
  private items: T[] = [];
  private head = 0;

  constructor(private readonly depthMax: number) {}

  push(item: T): 'queued' | 'node-full' {
    if (this.size >= this.depthMax) return 'node-full';
    this.items.push(item);
    return 'queued';
  }

  nextEligibleMs(): undefined {
    return undefined;
  }

  sizeOf(flow: string): number {
    let n = 0;
    for (let i = this.head; i < this.items.length; i++) if (this.items[i]!.flow === flow) n++;
    return n;
  }

  pop(): T | undefined {
    if (this.head >= this.items.length) return undefined;
    const item = this.items[this.head++];
    // Compact now and then instead of shifting on every pop.
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }

  get size(): number {
    return this.items.length - this.head;
  }
}

/**
 * How far from enqueue to its deadline a request is aged, by default: admission's
 * lowerClassAgedAtPercent defaults to it too. With the gateway's 3 s attempt, a held
 * request waits at most about 2.25 s here and is served before the attempt times out.
 */
export const AGED_AT_FRACTION_DEFAULT = 0.75;

/** What the gate is told of a request: its flow (vDisk), its size and, optionally, when its requester stops waiting. */
export interface GateRequest {
  readonly flow: string;
  readonly bytes: number;
  /** The requester's deadline (on the gate's clock): the request is not run after it. */
  readonly deadlineMs?: number;
  /**
   * Requests with the same group (a vDisk's small writes) share slots, up to
   * GateOptions.groupPerSlot to a slot: the controller stores a vDisk's concurrent
   * small writes as one oplog message (group commit), so they cost it about what
   * one write does, and a batch grows only with the writes it is given at once.
   */
  readonly group?: string;
}

/** A request's place in the queue: its flow (vDisk) and size, for the discipline. */
export interface Waiting<R> extends Schedulable {
  deadlineMs: number | undefined;
  group: string | undefined;
  run: () => Promise<R>;
  resolve: (value: R) => void;
  reject: (err: unknown) => void;
  enqueuedAtMs: number;
  /** The submitter's context: `run` runs in it, whoever's completion dispatches it. */
  parent: Context;
  /** Set once the request is in the queue. */
  wait: Span | undefined;
}

export interface GateOptions {
  /** Requests running (dispatched, not yet finished) at most. */
  inFlightMax: number;
  /** The clock, ms (performance.now in the actor; a fake in tests). */
  now: () => number;
  /** Called with how long each request waited in the queue. */
  onDispatch?: (waitedMs: number) => void;
  /** Called for each request refused with QUEUE_FULL, with why. */
  onRefused?: (why: 'node-full' | 'flow-full') => void;
  /**
   * The last free slots, kept for the high class: lower classes may take a slot
   * only while more than this many are free. Without it a noisy low-priority vDisk
   * whose writes wait long in the controller (backpressure) holds every slot, and
   * high-priority I/O waits behind it however the queue is ordered. Default 0.
   */
  highReservedSlots?: number;
  /**
   * How far from enqueue to its deadline a request is aged (the lower classes' limit
   * no longer holds it back), 0 to 1. Default AGED_AT_FRACTION_DEFAULT.
   */
  agedAtFraction?: number;
  /** Requests of one group (GateRequest.group) that share a slot. Default 1: every request takes its own. */
  groupPerSlot?: number;
}

/** The slots `running` requests of one group hold, `perSlot` to a slot. */
export function groupSlots(running: number, perSlot: number): number {
  return Math.ceil(running / perSlot);
}

export class Gate<R> {
  /** Slots taken: one per running request, or per groupPerSlot running requests of a group. */
  private inFlight = 0;
  /** Running requests of each group that has any. */
  private readonly grouped = new Map<string, number>();
  /** Slots freed by finished requests, given back at the end of this turn (release). */
  private releasing = 0;
  /** Armed while a cap holds every waiting request back: pumps again when one may go. */
  private wake: { timer: NodeJS.Timeout; atMs: number } | undefined;

  private readonly inFlightMax: number;
  private readonly now: () => number;
  private readonly onDispatch: (waitedMs: number) => void;
  private readonly onRefused: (why: 'node-full' | 'flow-full') => void;
  private readonly highReservedSlots: number;
  private readonly agedAtFraction: number;
  private readonly groupPerSlot: number;

  constructor(
    private readonly queue: AdmissionQueue<Waiting<R>>,
    options: GateOptions,
  ) {
    const { inFlightMax, highReservedSlots = 0, agedAtFraction = AGED_AT_FRACTION_DEFAULT, groupPerSlot = 1 } = options;
    assert(Number.isInteger(groupPerSlot) && groupPerSlot > 0, `groupPerSlot must be a positive integer, got ${groupPerSlot}`);
    this.groupPerSlot = groupPerSlot;
    assert(agedAtFraction >= 0 && agedAtFraction <= 1, `agedAtFraction must be from 0 to 1, got ${agedAtFraction}`);
    this.agedAtFraction = agedAtFraction;
    assert(Number.isInteger(inFlightMax) && inFlightMax > 0, `inFlightMax must be a positive integer, got ${inFlightMax}`);
    assert(Number.isInteger(highReservedSlots) && highReservedSlots >= 0 && highReservedSlots < inFlightMax, `highReservedSlots must be from 0 to inFlightMax - 1, got ${highReservedSlots}`);
    this.inFlightMax = inFlightMax;
    this.highReservedSlots = highReservedSlots;
    this.now = options.now;
    this.onDispatch = options.onDispatch ?? (() => undefined);
    this.onRefused = options.onRefused ?? (() => undefined);
  }

  /**
   * Runs `run` when a slot is free; QUEUE_FULL (retryable) at once when the queue is full.
   *
   * A request that gets into the queue has an `admission queue wait` span, a child of the
   * submitter's active span, from enqueue to dispatch; `attributes` (build them only when
   * tracing records) are added to it. `run` runs in the submitter's context with the
   * wait span active, so what it starts (the request to the controller) is the wait
   * span's child: the trace reads handle, wait, then the dispatched request, even
   * though the wait ended when the request left the queue.
   *
   * With a deadline, the request is aged `agedAtFraction` of the way to it (the lower classes' limit no
   * longer holds it back then, see QosScheduler), and one still queued at its deadline
   * is not run: it gets TIMEOUT, its requester having given up on it (and perhaps sent
   * it again), so running it would be work for nobody.
   */
  submit(request: GateRequest, run: () => Promise<R>, attributes?: Attributes): Promise<R> {
    return new Promise((resolve, reject) => {
      const nowMs = this.now();
      const { flow, bytes, deadlineMs, group } = request;
      const agedAtMs = deadlineMs === undefined ? undefined : nowMs + Math.max(0, deadlineMs - nowMs) * this.agedAtFraction;
      const item: Waiting<R> = { flow, bytes, agedAtMs, deadlineMs, group, run, resolve, reject, enqueuedAtMs: nowMs, parent: context.active(), wait: undefined };
      const pushed = this.queue.push(item, nowMs);
      if (pushed !== 'queued') {
        // Refused, never queued: the bus records the error on the handler's span.
        const where =
          pushed === 'flow-full'
            ? `vdisk ${request.flow} has ${this.queue.sizeOf(request.flow)} requests waiting, its most`
            : `${this.queue.size} requests waiting on this node, its most (${this.inFlight} in flight)`;
        this.onRefused(pushed);
        reject(new StrataError(ErrorCode.QUEUE_FULL, `admission queue is full: ${where}`));
        return;
      }
      const wait = tracer.startSpan(QUEUE_WAIT_SPAN, undefined, item.parent);
      if (wait.isRecording()) {
        wait.setAttributes({ [SpanAttr.queueDepth]: this.queue.size, [SpanAttr.inFlight]: this.inFlight });
        if (attributes !== undefined) wait.setAttributes(attributes);
      }
      item.wait = wait;
      this.pump();
    });
  }

  private pump(): void {
    while (this.inFlight < this.inFlightMax) {
      const nowMs = this.now();
      const onlyHigh = this.inFlightMax - this.inFlight <= this.highReservedSlots;
      const next = this.queue.pop(nowMs, onlyHigh);
      if (next === undefined) {
        // A completion pumps again; a timer only for what a cap holds back.
        this.wakeAt(this.queue.nextEligibleMs(nowMs, onlyHigh), nowMs);
        return;
      }
      const wait = next.wait!;
      if (next.deadlineMs !== undefined && nowMs >= next.deadlineMs) {
        const err = new StrataError(ErrorCode.TIMEOUT, `waited ${Math.round(nowMs - next.enqueuedAtMs)} ms in the admission queue, past its deadline; not run`);
        wait.setStatus({ code: SpanStatusCode.ERROR, message: err.message });
        wait.end();
        next.reject(err);
        continue;
      }
      this.inFlight += this.started(next.group);
      this.onDispatch(nowMs - next.enqueuedAtMs);
      wait.end();
      // pump() runs in whichever request's completion freed the slot: the dispatched
      // request must run in its own submitter's context, not in that one.
      withSpan(wait, next.run, next.parent)
        .then(next.resolve, next.reject)
        .finally(() => this.release(this.finished(next.group)));
    }
  }

  /**
   * Frees a finished request's slot at the end of this event-loop turn, not at once.
   * The reply's own work (the gateway encoding and writing it, in a colocated node)
   * happens in this turn, so the slot covers it; and requests that arrive meanwhile
   * (the next socket reads) queue here, where the scheduler orders them by class and
   * weight. Freed at once, a slot was taken again by whatever request came next in
   * the same turn: with reads served from the page cache no queue ever formed, and
   * two vDisks of weights 3 and 1 got 1:1.
   */
  private release(slots: number): void {
    if (slots === 0) return;
    this.releasing += slots;
    if (this.releasing > slots) return;
    setImmediate(() => {
      this.inFlight -= this.releasing;
      this.releasing = 0;
      this.pump();
    });
  }

  /** Counts a dispatched request of `group`: the slots it takes (1 ungrouped; 0 when it rides a slot its group holds). */
  private started(group: string | undefined): number {
    if (group === undefined) return 1;
    const running = this.grouped.get(group) ?? 0;
    this.grouped.set(group, running + 1);
    return groupSlots(running + 1, this.groupPerSlot) - groupSlots(running, this.groupPerSlot);
  }

  /** Counts a finished request of `group`: the slots it gives back. */
  private finished(group: string | undefined): number {
    if (group === undefined) return 1;
    const running = this.grouped.get(group)!;
    if (running === 1) this.grouped.delete(group);
    else this.grouped.set(group, running - 1);
    return groupSlots(running, this.groupPerSlot) - groupSlots(running - 1, this.groupPerSlot);
  }

  /** Arms (or brings forward) the timer that pumps when a capped request may go. */
  private wakeAt(atMs: number | undefined, nowMs: number): void {
    if (atMs === undefined) return;
    if (this.wake !== undefined) {
      if (this.wake.atMs <= atMs) return;
      clearTimeout(this.wake.timer);
    }
    // Timers round down to whole milliseconds; waking a little late is harmless, early is a wasted pump.
    const timer = setTimeout(() => {
      this.wake = undefined;
      this.pump();
    }, Math.max(0, Math.ceil(atMs - nowMs)));
    this.wake = { timer, atMs };
  }

  /** Dispatches what may go now: after something outside the queue (a limit) changed. */
  poke(): void {
    this.pump();
  }

  /** Stops the wake-up timer; requests still waiting stay queued (the actor is stopping). */
  close(): void {
    if (this.wake !== undefined) clearTimeout(this.wake.timer);
    this.wake = undefined;
  }

  get depth(): number {
    return this.queue.size;
  }

  get active(): number {
    return this.inFlight;
  }
}
