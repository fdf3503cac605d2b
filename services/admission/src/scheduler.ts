// The admission queue's QoS discipline: which waiting request goes to the vdisk-controller
// when a slot frees. Reservations first; then strict priority between classes, with a
// guaranteed share of dispatched cost for the lower ones; weighted fair queueing by cost
// within a class; and per-flow caps by token bucket throughout. A pure data structure:
// time comes in as `nowMs`, and there are no timers, no I/O and no randomness, so the
// actor's shell decides when to ask and simulations can replay it exactly.
import { assert } from '@strata/errors';

export const QosClass = { high: 'high', normal: 'normal', low: 'low' } as const;
export type QosClass = (typeof QosClass)[keyof typeof QosClass];

/** A flow's QoS parameters (one vDisk's). All rates per second. */
export interface FlowQos {
  priority: QosClass;
  /** Fair-share weight within the class, 1..1000. */
  weight: number;
  /** Optional cap, operations per second. */
  iopsCap?: number;
  /** Optional cap, bytes per second. */
  bandwidthCapBytesPerSec?: number;
  /** Burst allowance: a capped flow's token bucket holds cap * burstSeconds (at least one request's worth). Default 1 s when a cap is set. */
  burstSeconds?: number;
  /** Optional minimum, operations per second, served before anything else while the flow has work waiting. */
  reservedIops?: number;
}

export interface SchedulerOptions {
  /** Requests waiting on the whole node at most; push refuses beyond it. */
  nodeDepthMax: number;
  /** Requests waiting per flow at most; push refuses beyond it. */
  flowDepthMax: number;
  /** Guaranteed minimum share of dispatched cost for the lower classes while they have work, e.g. { normal: 0.1, low: 0.05 }, so none starves under strict priority. */
  lowerClassShare: { normal: number; low: number };
  /** Cost of a request = 1 + bytes / costUnitBytes (e.g. 64 KiB → a 4 KiB I/O costs ~1.06, a 1 MiB I/O costs 17). Used by fair queueing and class shares (not by IOPS caps/reservations, which count operations, nor bandwidth caps, which count bytes). */
  costUnitBytes: number;
  /** QoS of a flow nobody set: normal, weight 1, no caps. */
  defaultQos: FlowQos;
}

/** What the scheduler needs of a request. */
export interface Schedulable {
  /** The flow it belongs to: one vDisk's requests, by key. */
  readonly flow: string;
  /** Its payload size (0 for a flush), for its cost and the bandwidth cap. */
  readonly bytes: number;
  /**
   * From this time on, the lower classes' limit no longer holds it back (caps still
   * do): the gate sets it part of the way to the requester's deadline (its
   * agedAtFraction), so a throttled request is served before its requester gives up
   * and sends it again.
   */
  readonly agedAtMs?: number;
}

export const QOS_WEIGHT_MIN = 1;
export const QOS_WEIGHT_MAX = 1000;

/** The burst a cap allows when the flow's QoS does not say. */
export const BURST_SECONDS_DEFAULT = 1;

/**
 * A reservation's bucket holds this long of its rate, and at least two operations: the
 * slack absorbs the jitter in when slots free (a pop that comes a little after a token
 * arrives loses nothing), and it is too small to matter as a burst.
 */
const RESERVATION_BURST_SECONDS = 0.05;
const RESERVATION_BURST_OPS_MIN = 2;

/**
 * The most cost a lower class may bank ahead of the classes above it (two 1 MiB requests
 * at 64 KiB cost units). It only builds while something else (a reservation) is served
 * in the class's turn; the cap keeps that from turning into a burst ahead of `high`.
 */
const CLASS_CREDIT_MAX = 34;

/**
 * Virtual time grows with the cost dispatched; past this it is rebased to zero, so the
 * small steps of a weight-1000 flow (1/1000 of a cost unit) stay exact in a double.
 */
const VIRTUAL_TIME_REBASE = 2 ** 32;

/**
 * The lower classes' limit (setLowerClassLimit) lets this long of its rate through at
 * once, and at least two 1 MiB requests' cost, so a limit below one large request's
 * cost still lets it go.
 */
const LOWER_LIMIT_BURST_SECONDS = 0.02;
const LOWER_LIMIT_BURST_COST_MIN = 34;

/** Idle flows checked for forgetting per push or pop: enough to drain them over time, at constant cost per call. */
const FORGET_CHECKS_PER_CALL = 2;

/** The cost fair queueing and class shares charge for a request of `bytes`. */
export function requestCost(bytes: number, costUnitBytes: number): number {
  return 1 + bytes / costUnitBytes;
}

/** Asserts that `qos` makes sense (config validates user input; this is the backstop). */
export function assertFlowQos(qos: FlowQos, what = 'QoS'): void {
  assert(Object.values(QosClass).includes(qos.priority), `${what}: priority must be one of ${Object.values(QosClass).join(', ')}, got ${String(qos.priority)}`);
  assert(
    Number.isFinite(qos.weight) && qos.weight >= QOS_WEIGHT_MIN && qos.weight <= QOS_WEIGHT_MAX,
    `${what}: weight must be in [${QOS_WEIGHT_MIN}, ${QOS_WEIGHT_MAX}], got ${qos.weight}`,
  );
  for (const key of ['iopsCap', 'bandwidthCapBytesPerSec', 'burstSeconds', 'reservedIops'] as const) {
    const value = qos[key];
    assert(value === undefined || (Number.isFinite(value) && value > 0), `${what}: ${key} must be a positive number when set, got ${value}`);
  }
}

/** Rank of a class: lower is served first. */
type Rank = 0 | 1 | 2;
const RANK: Record<QosClass, Rank> = { high: 0, normal: 1, low: 2 };

/**
 * A token bucket as GCRA: the state is one time, `tatMs`, at which the bucket is full
 * again, and the bucket holds `capacity` units refilling one per `intervalMs`. Taking n
 * units moves tatMs to max(tatMs, now) + n * intervalMs (below zero is debt); a request
 * needing n may go once the bucket holds min(n, capacity), so a request bigger than the
 * bucket waits for a full bucket and leaves it in debt instead of blocking forever.
 * The moment a request may go is a closed formula of the state, so `nextEligibleMs` and
 * `pop` agree exactly.
 */
interface Bucket {
  readonly intervalMs: number;
  readonly capacity: number;
}

function bucket(perSecond: number, capacity: number): Bucket {
  return { intervalMs: 1000 / perSecond, capacity };
}

/** When a bucket full at `tatMs` holds min(need, capacity). */
function readyAtMs(b: Bucket, tatMs: number, need: number): number {
  return tatMs - (b.capacity - Math.min(need, b.capacity)) * b.intervalMs;
}

/** A FlowQos turned into what pop needs, computed once per setQos. */
interface Resolved {
  readonly priority: QosClass;
  readonly rank: Rank;
  readonly weight: number;
  readonly ops: Bucket | undefined;
  readonly bytes: Bucket | undefined;
  readonly reservation: Bucket | undefined;
}

function resolve(qos: FlowQos): Resolved {
  const burstSeconds = qos.burstSeconds ?? BURST_SECONDS_DEFAULT;
  const r = qos.reservedIops;
  return {
    priority: qos.priority,
    rank: RANK[qos.priority],
    weight: qos.weight,
    ops: qos.iopsCap === undefined ? undefined : bucket(qos.iopsCap, qos.iopsCap * burstSeconds),
    bytes: qos.bandwidthCapBytesPerSec === undefined ? undefined : bucket(qos.bandwidthCapBytesPerSec, qos.bandwidthCapBytesPerSec * burstSeconds),
    reservation: r === undefined ? undefined : bucket(r, Math.max(RESERVATION_BURST_OPS_MIN, r * RESERVATION_BURST_SECONDS)),
  };
}

/** One flow's queue and scheduling state. */
class Flow<T> {
  private items: T[] = [];
  private head = 0;
  /** Index in the scheduler's active list (something waits) or idle list (nothing waits); -1 when in neither. */
  activeIndex = -1;
  idleIndex = -1;
  /** Fair queueing: the virtual finish tag of the flow's last request dispatched by fair share, valid while tagEpoch is its class's epoch. */
  finishTag = 0;
  tagEpoch = -1;
  /** GCRA state of the cap and reservation buckets; -Infinity is a full bucket (a flow starts with its burst). */
  opsTatMs = -Infinity;
  bytesTatMs = -Infinity;
  reservationTatMs = -Infinity;

  constructor(
    readonly key: string,
    public qos: Resolved,
  ) {}

  get size(): number {
    return this.items.length - this.head;
  }

  peek(): T | undefined {
    return this.items[this.head];
  }

  push(item: T): void {
    this.items.push(item);
  }

  shift(): T {
    assert(this.head < this.items.length, 'shift from a flow with work waiting');
    const item = this.items[this.head++]!;
    if (this.head === this.items.length) {
      this.items.length = 0;
      this.head = 0;
    } else if (this.head > 64 && this.head * 2 > this.items.length) {
      // Compact now and then instead of shifting on every pop.
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }

  /** When the head may go as far as the caps are concerned (-Infinity when uncapped). */
  capReadyAtMs(headBytes: number): number {
    const { ops, bytes } = this.qos;
    const opsAtMs = ops === undefined ? -Infinity : readyAtMs(ops, this.opsTatMs, 1);
    const bytesAtMs = bytes === undefined ? -Infinity : readyAtMs(bytes, this.bytesTatMs, headBytes);
    return Math.max(opsAtMs, bytesAtMs);
  }
}

/** Why a request was chosen: its flow's reservation, its class's guaranteed share, or plain priority. */
type Path = 'reservation' | 'share' | 'priority';

/**
 * Picks the next request to dispatch among flows of waiting requests.
 *
 * 1. Reservations: a flow with `reservedIops` R has a bucket of rate R; while it holds a
 *    token and the flow's caps allow, the flow goes first (the one furthest behind its
 *    reservation first). Dispatches by fair share also take its tokens (never into
 *    debt), so R is a minimum, not an addition to the flow's share; reservation
 *    dispatches leave fair-queueing tags alone, so a flow is not punished afterwards for
 *    service its reservation gave it.
 * 2. Classes: the highest class with an eligible request goes, unless a lower class has
 *    credit. A lower class with eligible work earns share × cost of every dispatch, pays
 *    the cost of its own dispatches, and goes ahead of the classes above it while its
 *    credit is not negative; over time it gets its share of dispatched cost. It earns
 *    nothing while it has no eligible work, so it cannot bank credit while idle.
 * 3. Within the class, start-time fair queueing by cost: a flow's next request starts at
 *    max(its last finish tag, the class's virtual time) and finishes cost / weight later;
 *    the smallest start goes and sets the class's virtual time. The max() is why a flow
 *    that was idle gets no burst of saved share.
 * 4. Caps: a head whose ops or bytes bucket is short is skipped; `nextEligibleMs` says
 *    when the first such head could go.
 * 5. The lower classes' limit: while the caller sets one (setLowerClassLimit; the actor
 *    does while high-class I/O suffers, see HighClassGuard), normal and low dispatches
 *    other than reservations share a bucket of that many cost units a second, and wait
 *    like capped ones when it is short. Unlike the class shares, this holds lower
 *    classes back even when no high-class request is waiting: a QD1 high-priority
 *    vDisk has nothing queued between its requests, and what slows it is the lower
 *    classes' work running in the same processes. A request past its `agedAtMs` is
 *    not held by the limit (nor charged to it): a limited request waits, but not
 *    until its requester times out.
 *
 * Every pop looks at each flow with work waiting once: O(flows waiting), no allocation.
 */
export class QosScheduler<T extends Schedulable> {
  private readonly nodeDepthMax: number;
  private readonly flowDepthMax: number;
  private readonly costUnitBytes: number;
  private readonly share: readonly [number, number, number];
  private readonly defaultQos: Resolved;
  /** setQos values by flow, resolved; bounded by the caller (one per vDisk it owns). */
  private readonly qosByFlow = new Map<string, Resolved>();
  /** Every flow with state: those with work waiting (active) and idle ones not yet forgotten. */
  private readonly flows = new Map<string, Flow<T>>();
  private readonly active: Flow<T>[] = [];
  private readonly idle: Flow<T>[] = [];
  private idleCursor = 0;
  private waiting = 0;
  /** Per class (by rank): requests waiting, virtual time, tag epoch (bumped when the class empties, which starts its fair queueing afresh) and credit. */
  private readonly classWaiting: [number, number, number] = [0, 0, 0];
  private readonly virtualTime: [number, number, number] = [0, 0, 0];
  private readonly epoch: [number, number, number] = [0, 0, 0];
  private readonly credit: [number, number, number] = [0, 0, 0];
  /** Scratch for pop, kept to avoid allocating per call. */
  private readonly eligible: [boolean, boolean, boolean] = [false, false, false];
  private readonly best: [Flow<T> | undefined, Flow<T> | undefined, Flow<T> | undefined] = [undefined, undefined, undefined];
  private readonly bestStart: [number, number, number] = [0, 0, 0];
  /** The lower classes' limit and its GCRA state (-Infinity: full). */
  private lowerLimit: Bucket | undefined;
  private lowerTatMs = -Infinity;
  /** Cost dispatched to the lower classes by fair share or priority, ever (the actor's guard reads it). */
  private lowerCost = 0;

  constructor(options: SchedulerOptions) {
    const { nodeDepthMax, flowDepthMax, lowerClassShare, costUnitBytes, defaultQos } = options;
    assert(Number.isSafeInteger(nodeDepthMax) && nodeDepthMax > 0, `nodeDepthMax must be a positive integer, got ${nodeDepthMax}`);
    assert(Number.isSafeInteger(flowDepthMax) && flowDepthMax > 0, `flowDepthMax must be a positive integer, got ${flowDepthMax}`);
    for (const key of ['normal', 'low'] as const) {
      const s = lowerClassShare[key];
      assert(Number.isFinite(s) && s >= 0 && s < 1, `lowerClassShare.${key} must be in [0, 1), got ${s}`);
    }
    assert(lowerClassShare.normal + lowerClassShare.low < 1, `lowerClassShare.normal + lowerClassShare.low must be below 1 (high needs some), got ${lowerClassShare.normal + lowerClassShare.low}`);
    assert(Number.isFinite(costUnitBytes) && costUnitBytes > 0, `costUnitBytes must be positive, got ${costUnitBytes}`);
    assertFlowQos(defaultQos, 'defaultQos');
    this.nodeDepthMax = nodeDepthMax;
    this.flowDepthMax = flowDepthMax;
    this.costUnitBytes = costUnitBytes;
    this.share = [0, lowerClassShare.normal, lowerClassShare.low];
    this.defaultQos = resolve(defaultQos);
  }

  /** Live change of one flow's QoS (takes effect for requests not yet dispatched); undefined restores the default. */
  setQos(flow: string, qos: FlowQos | undefined): void {
    let resolved = this.defaultQos;
    if (qos === undefined) {
      this.qosByFlow.delete(flow);
    } else {
      assertFlowQos(qos, `QoS of flow ${flow}`);
      resolved = resolve(qos);
      this.qosByFlow.set(flow, resolved);
    }
    const f = this.flows.get(flow);
    if (f === undefined) return;
    const from = f.qos.rank;
    f.qos = resolved;
    // Bucket states carry over: tatMs is when the bucket is full again, whatever its rate.
    if (resolved.rank !== from) {
      // Its finish tag means nothing in the new class: start level with the class's virtual time.
      f.tagEpoch = -1;
      this.classWaiting[resolved.rank] += f.size;
      this.leaveClass(from, f.size);
    }
  }

  /**
   * Limits the normal and low classes together to `costPerSec` cost units a second
   * (reservations exempt), or lifts the limit (undefined). The bucket's state carries
   * over a change of rate.
   */
  setLowerClassLimit(costPerSec: number | undefined): void {
    if (costPerSec === undefined) {
      this.lowerLimit = undefined;
      this.lowerTatMs = -Infinity;
      return;
    }
    assert(Number.isFinite(costPerSec) && costPerSec > 0, `the lower classes' limit must be a positive number, got ${costPerSec}`);
    this.lowerLimit = bucket(costPerSec, Math.max(LOWER_LIMIT_BURST_COST_MIN, costPerSec * LOWER_LIMIT_BURST_SECONDS));
  }

  /** The lower classes' limit in cost units a second, if one is set. */
  get lowerClassLimit(): number | undefined {
    return this.lowerLimit === undefined ? undefined : 1000 / this.lowerLimit.intervalMs;
  }

  /** Cost dispatched to the normal and low classes other than by reservation, since the start. */
  get lowerCostDispatched(): number {
    return this.lowerCost;
  }

  /** The class a flow's requests are scheduled in. */
  classOf(flow: string): QosClass {
    return (this.flows.get(flow)?.qos ?? this.qosByFlow.get(flow) ?? this.defaultQos).priority;
  }

  /** When the lower classes' limit lets a request of `bytes` go (-Infinity without a limit). */
  private lowerReadyAtMs(bytes: number): number {
    return this.lowerLimit === undefined ? -Infinity : readyAtMs(this.lowerLimit, this.lowerTatMs, requestCost(bytes, this.costUnitBytes));
  }

  /** Adds a request; returns 'node-full' or 'flow-full' when refused (nothing changes then), else 'queued'. */
  push(item: T, nowMs: number): 'queued' | 'node-full' | 'flow-full' {
    assert(Number.isFinite(nowMs), `nowMs must be finite, got ${nowMs}`);
    assert(Number.isFinite(item.bytes) && item.bytes >= 0, `a request's bytes must be a non-negative number, got ${item.bytes}`);
    if (this.waiting >= this.nodeDepthMax) return 'node-full';
    let f = this.flows.get(item.flow);
    if (f !== undefined && f.size >= this.flowDepthMax) return 'flow-full';
    if (f === undefined) {
      f = new Flow<T>(item.flow, this.qosByFlow.get(item.flow) ?? this.defaultQos);
      this.flows.set(item.flow, f);
    }
    if (f.size === 0) {
      if (f.idleIndex >= 0) removeAt(this.idle, f.idleIndex, setIdleIndex);
      f.activeIndex = this.active.length;
      this.active.push(f);
    }
    f.push(item);
    this.waiting++;
    this.classWaiting[f.qos.rank]++;
    this.forgetSome(nowMs);
    return 'queued';
  }

  /**
   * The request to dispatch now, or undefined when nothing waiting is eligible at nowMs
   * (empty, or every head is held by a cap). With `onlyHigh`, only the high class may
   * go: the caller keeps its last slots for it, so high-priority I/O never waits for
   * a slot that lower classes hold.
   */
  pop(nowMs: number, onlyHigh = false): T | undefined {
    assert(Number.isFinite(nowMs), `nowMs must be finite, got ${nowMs}`);
    const { eligible, best, bestStart, virtualTime, epoch } = this;
    eligible[0] = eligible[1] = eligible[2] = false;
    best[0] = best[1] = best[2] = undefined;
    let reserved: Flow<T> | undefined;
    let reservedAtMs = Infinity;
    for (const f of this.active) {
      if (onlyHigh && f.qos.rank !== RANK.high) continue;
      const head = f.peek()!;
      if (f.capReadyAtMs(head.bytes) > nowMs) continue;
      const { rank, reservation } = f.qos;
      if (reservation !== undefined) {
        const atMs = readyAtMs(reservation, f.reservationTatMs, 1);
        if (atMs <= nowMs && atMs < reservedAtMs) {
          reserved = f;
          reservedAtMs = atMs;
        }
      }
      // Held by the lower classes' limit: only its reservation, or its age, may take it.
      if (rank !== RANK.high && this.lowerReadyAtMs(head.bytes) > nowMs && !((head.agedAtMs ?? Infinity) <= nowMs)) continue;
      eligible[rank] = true;
      const start = f.tagEpoch === epoch[rank] ? Math.max(f.finishTag, virtualTime[rank]) : virtualTime[rank];
      if (best[rank] === undefined || start < bestStart[rank]) {
        best[rank] = f;
        bestStart[rank] = start;
      }
    }
    let chosen: Flow<T> | undefined;
    let path: Path;
    if (reserved !== undefined) {
      chosen = reserved;
      path = 'reservation';
    } else {
      const top = eligible[0] ? 0 : eligible[1] ? 1 : eligible[2] ? 2 : undefined;
      if (top === undefined) return undefined;
      path = 'priority';
      chosen = best[top];
      for (let rank = top + 1; rank <= 2; rank++) {
        if (eligible[rank] && this.credit[rank]! >= 0) {
          chosen = best[rank];
          path = 'share';
          break;
        }
      }
    }
    const item = this.dispatch(chosen!, path, nowMs);
    this.forgetSome(nowMs);
    return item;
  }

  /**
   * When pop returned undefined while requests wait: the earliest time at which one
   * becomes eligible (a cap's bucket refills); undefined when nothing (of the high
   * class, with `onlyHigh`) waits.
   */
  nextEligibleMs(nowMs: number, onlyHigh = false): number | undefined {
    let atMs = Infinity;
    for (const f of this.active) {
      if (onlyHigh && f.qos.rank !== RANK.high) continue;
      const headBytes = f.peek()!.bytes;
      const capAtMs = f.capReadyAtMs(headBytes);
      if (f.qos.rank === RANK.high) {
        atMs = Math.min(atMs, capAtMs);
        continue;
      }
      // A lower-class head goes when its caps and the lower classes' limit (or its age) allow, or its reservation does.
      const { reservation } = f.qos;
      const byReservation = reservation === undefined ? Infinity : Math.max(capAtMs, readyAtMs(reservation, f.reservationTatMs, 1));
      const limitAtMs = Math.min(this.lowerReadyAtMs(headBytes), f.peek()!.agedAtMs ?? Infinity);
      atMs = Math.min(atMs, Math.max(capAtMs, limitAtMs), byReservation);
    }
    return atMs === Infinity ? undefined : Math.max(nowMs, atMs);
  }

  /** Requests waiting on the node. */
  get size(): number {
    return this.waiting;
  }

  /** Requests waiting in one flow. */
  sizeOf(flow: string): number {
    return this.flows.get(flow)?.size ?? 0;
  }

  /** Flows the scheduler holds state for (those with work waiting and idle ones not yet forgotten): for metrics and tests of its bound. */
  get flowsTracked(): number {
    return this.flows.size;
  }

  private dispatch(f: Flow<T>, path: Path, nowMs: number): T {
    const item = f.shift();
    const { rank, weight, ops, bytes, reservation } = f.qos;
    const cost = requestCost(item.bytes, this.costUnitBytes);
    if (ops !== undefined) f.opsTatMs = Math.max(f.opsTatMs, nowMs) + ops.intervalMs;
    if (bytes !== undefined) f.bytesTatMs = Math.max(f.bytesTatMs, nowMs) + item.bytes * bytes.intervalMs;
    if (reservation !== undefined) {
      const tatMs = Math.max(f.reservationTatMs, nowMs) + reservation.intervalMs;
      // A dispatch by fair share counts toward the reservation too, but only takes what the bucket holds.
      f.reservationTatMs = path === 'reservation' ? tatMs : Math.min(tatMs, nowMs + reservation.capacity * reservation.intervalMs);
    } else {
      f.reservationTatMs = -Infinity;
    }
    if (path !== 'reservation' && rank !== RANK.high) {
      this.lowerCost += cost;
      // One that went by its age, the limit being short, is not charged to it.
      const byAge = this.lowerReadyAtMs(item.bytes) > nowMs;
      if (this.lowerLimit !== undefined && !byAge) this.lowerTatMs = Math.max(this.lowerTatMs, nowMs) + cost * this.lowerLimit.intervalMs;
    }
    if (path !== 'reservation') {
      const start = this.bestStart[rank];
      this.virtualTime[rank] = start;
      f.finishTag = start + cost / weight;
      f.tagEpoch = this.epoch[rank];
      if (start > VIRTUAL_TIME_REBASE) this.rebase(rank);
    }
    // Class credit: lower classes with eligible work earn their share of this dispatch;
    // idle ones keep no credit. The class served pays: in full when its credit put it
    // ahead, else only out of positive credit, so time spent on top never becomes debt.
    for (let r = 1; r <= 2; r++) {
      if (r === rank) {
        const c = this.credit[r]!;
        this.credit[r] = path === 'share' ? c - cost : Math.max(c - cost, Math.min(c, 0));
      }
      this.credit[r] = this.eligible[r] ? Math.min(this.credit[r]! + this.share[r]! * cost, CLASS_CREDIT_MAX) : Math.min(this.credit[r]!, 0);
    }
    this.waiting--;
    this.leaveClass(rank, 1);
    if (f.size === 0) {
      removeAt(this.active, f.activeIndex, setActiveIndex);
      f.idleIndex = this.idle.length;
      this.idle.push(f);
    }
    return item;
  }

  /** `n` requests left class `rank`; when it empties its fair queueing starts afresh (as start-time fair queueing does after an idle period). */
  private leaveClass(rank: Rank, n: number): void {
    this.classWaiting[rank] -= n;
    assert(this.classWaiting[rank] >= 0, 'class waiting counts stay non-negative');
    if (this.classWaiting[rank] === 0 && n > 0) {
      this.epoch[rank]++;
      this.virtualTime[rank] = 0;
    }
  }

  /** Moves a class's virtual time back to zero, keeping every tag's distance from it. */
  private rebase(rank: Rank): void {
    const v = this.virtualTime[rank];
    for (const f of this.flows.values()) {
      if (f.qos.rank === rank && f.tagEpoch === this.epoch[rank]) f.finishTag = Math.max(0, f.finishTag - v);
    }
    this.virtualTime[rank] = 0;
  }

  /**
   * Forgets idle flows whose state says nothing a new flow's would not: full buckets and a
   * finish tag the class's virtual time has passed. Looks at a few per call, round robin.
   */
  private forgetSome(nowMs: number): void {
    for (let i = 0; i < FORGET_CHECKS_PER_CALL && this.idle.length > 0; i++) {
      if (this.idleCursor >= this.idle.length) this.idleCursor = 0;
      const f = this.idle[this.idleCursor]!;
      const { rank } = f.qos;
      const tagSpent = f.tagEpoch !== this.epoch[rank] || f.finishTag <= this.virtualTime[rank];
      if (tagSpent && f.opsTatMs <= nowMs && f.bytesTatMs <= nowMs && f.reservationTatMs <= nowMs) {
        removeAt(this.idle, this.idleCursor, setIdleIndex);
        this.flows.delete(f.key);
      } else {
        this.idleCursor++;
      }
    }
  }
}

function setActiveIndex<T>(f: Flow<T>, index: number): void {
  f.activeIndex = index;
}

function setIdleIndex<T>(f: Flow<T>, index: number): void {
  f.idleIndex = index;
}

/** Removes list[index] in O(1) by moving the last element into its place. */
function removeAt<T>(list: Flow<T>[], index: number, setIndex: (f: Flow<T>, index: number) => void): void {
  const f = list[index];
  assert(f !== undefined, 'a listed flow is where its index says');
  const last = list.pop()!;
  if (last !== f) {
    list[index] = last;
    setIndex(last, index);
  }
  setIndex(f, -1);
}
