// The QoS scheduler, in simulation: a simulated clock, a controller with a few slots and
// a service time per request, and flows that keep their queues full (saturating) or
// come and go. Each test runs some simulated seconds, counts what was dispatched per
// flow and checks one property (weighted share, cost by size, class shares, caps,
// reservations, live QoS changes, no burst after idling) with a tolerance a plain FIFO
// would miss. Random service times are seeded: replay a failure with SEED=<seed>.
import { QosScheduler, type FlowQos, type Schedulable, type SchedulerOptions } from '../src/scheduler';
import { seededRandom } from '../../../test/harness/random';

const KiB = 1024;
const MiB = 1024 * KiB;
const COST_UNIT_BYTES = 64 * KiB;
const seed = Number(process.env.SEED ?? 0x5eed);

/** The cost the scheduler is meant to charge, written out here so a wrong formula in it cannot pass unseen. */
function costOf(bytes: number): number {
  return 1 + bytes / COST_UNIT_BYTES;
}

interface Req extends Schedulable {
  readonly id: number;
}

function options(overrides: Partial<SchedulerOptions> = {}): SchedulerOptions {
  return {
    nodeDepthMax: 4096,
    flowDepthMax: 256,
    lowerClassShare: { normal: 0.1, low: 0.05 },
    costUnitBytes: COST_UNIT_BYTES,
    defaultQos: { priority: 'normal', weight: 1 },
    ...overrides,
  };
}

/** A flow in the simulation: saturating (keeps `depth` waiting) between fromMs and untilMs. */
interface SimFlow {
  flow: string;
  bytes: number;
  depth?: number;
  fromMs?: number;
  untilMs?: number;
}

interface Dispatch {
  flow: string;
  bytes: number;
  atMs: number;
}

interface Sim {
  /** The controller's slots: requests in flight at once. */
  slots: number;
  /** Service time of one request. */
  serviceMs: (req: Req) => number;
  durationMs: number;
  flows: SimFlow[];
  /** Things to do at a simulated time (a live QoS change). */
  at?: { atMs: number; run: () => void }[];
}

/**
 * Runs the scheduler against a simulated controller: whenever a slot is free, pop; when
 * nothing is eligible, sleep until the earliest of a completion, a flow starting or a
 * cap's refill (nextEligibleMs). Returns every dispatch in order.
 */
function simulate(s: QosScheduler<Req>, sim: Sim): Dispatch[] {
  const dispatches: Dispatch[] = [];
  const completionsMs: number[] = [];
  const pending = [...(sim.at ?? [])].sort((a, b) => a.atMs - b.atMs);
  let nextId = 0;
  let nowMs = 0;
  const refill = (): void => {
    for (const f of sim.flows) {
      if (nowMs < (f.fromMs ?? 0) || nowMs >= (f.untilMs ?? Infinity)) continue;
      while (s.sizeOf(f.flow) < (f.depth ?? 16)) check(s.push({ flow: f.flow, bytes: f.bytes, id: nextId++ }, nowMs) === 'queued', 'a saturating flow is refused');
    }
  };
  for (let steps = 0; nowMs < sim.durationMs; steps++) {
    check(steps < 10_000_000, 'the simulation ends');
    for (let i = completionsMs.length - 1; i >= 0; i--) if (completionsMs[i]! <= nowMs) completionsMs.splice(i, 1);
    while (pending.length > 0 && pending[0]!.atMs <= nowMs) pending.shift()!.run();
    refill();
    let idle = false;
    while (completionsMs.length < sim.slots) {
      const req = s.pop(nowMs);
      if (req === undefined) {
        idle = true;
        break;
      }
      dispatches.push({ flow: req.flow, bytes: req.bytes, atMs: nowMs });
      completionsMs.push(nowMs + sim.serviceMs(req));
      refill();
    }
    let nextMs = Math.min(sim.durationMs, ...completionsMs);
    if (pending.length > 0) nextMs = Math.min(nextMs, pending[0]!.atMs);
    for (const f of sim.flows) for (const edgeMs of [f.fromMs ?? 0, f.untilMs ?? Infinity]) if (edgeMs > nowMs) nextMs = Math.min(nextMs, edgeMs);
    if (idle && s.size > 0) {
      const eligibleMs = s.nextEligibleMs(nowMs)!;
      check(eligibleMs > nowMs, 'nextEligibleMs is later when pop yields nothing');
      nextMs = Math.min(nextMs, eligibleMs);
    }
    nowMs = nextMs;
  }
  return dispatches;
}

/** An assertion for the simulation's hot loop, where expect() would be slow. */
function check(condition: boolean, why: string): void {
  if (!condition) throw new Error(`simulation: ${why}`);
}

/** Sums of dispatched operations, bytes and cost per flow within [fromMs, untilMs). */
function tally(dispatches: Dispatch[], fromMs = 0, untilMs = Infinity): Map<string, { ops: number; bytes: number; cost: number }> {
  const out = new Map<string, { ops: number; bytes: number; cost: number }>();
  for (const d of dispatches) {
    if (d.atMs < fromMs || d.atMs >= untilMs) continue;
    const t = out.get(d.flow) ?? { ops: 0, bytes: 0, cost: 0 };
    t.ops++;
    t.bytes += d.bytes;
    t.cost += costOf(d.bytes);
    out.set(d.flow, t);
  }
  return out;
}

function expectWithin(actual: number, expected: number, relativeTolerance: number): void {
  expect(actual).toBeGreaterThanOrEqual(expected * (1 - relativeTolerance));
  expect(actual).toBeLessThanOrEqual(expected * (1 + relativeTolerance));
}

/** A controller of 8 slots and 4 ms per request: 2000 ops/s. */
const fixedController = { slots: 8, serviceMs: (): number => 4 };

/** A controller of 8 slots and a seeded random 1..7 ms per request (about 2000 ops/s). */
function randomController(): { slots: number; serviceMs: () => number } {
  const random = seededRandom(seed);
  return { slots: 8, serviceMs: () => 1 + 6 * random() };
}

describe(`QoS scheduler (replay with SEED=${seed})`, () => {
  describe('fair share within a class', () => {
    it('gives two saturating flows of weights 3 and 1 dispatched cost in 3:1', () => {
      const s = new QosScheduler<Req>(options());
      s.setQos('a', { priority: 'normal', weight: 3 });
      s.setQos('b', { priority: 'normal', weight: 1 });
      const t = tally(simulate(s, { ...randomController(), durationMs: 10_000, flows: [{ flow: 'a', bytes: 4 * KiB }, { flow: 'b', bytes: 4 * KiB }] }));
      expectWithin(t.get('a')!.cost / t.get('b')!.cost, 3, 0.1);
    });

    it('shares by cost, so a 4 KiB flow gets about 16x the operations of a 1 MiB flow', () => {
      const s = new QosScheduler<Req>(options());
      const random = seededRandom(seed);
      // Service time grows with size: 1 ms plus 256 KiB per ms, jittered.
      const serviceMs = (req: Req): number => (1 + req.bytes / (256 * KiB)) * (0.5 + random());
      const t = tally(simulate(s, { slots: 8, serviceMs, durationMs: 10_000, flows: [{ flow: 'small', bytes: 4 * KiB }, { flow: 'large', bytes: MiB }] }));
      const small = t.get('small')!;
      const large = t.get('large')!;
      expectWithin(small.cost / large.cost, 1, 0.1);
      // 17 / 1.0625 = 16 small operations per large one.
      expectWithin(small.ops / large.ops, costOf(MiB) / costOf(4 * KiB), 0.1);
    });

    it('applies a live weight change to later dispatches', () => {
      const s = new QosScheduler<Req>(options());
      const at = [{ atMs: 5000, run: () => s.setQos('a', { priority: 'normal', weight: 3 }) }];
      const dispatches = simulate(s, { ...randomController(), durationMs: 10_000, at, flows: [{ flow: 'a', bytes: 4 * KiB }, { flow: 'b', bytes: 4 * KiB }] });
      const before = tally(dispatches, 0, 5000);
      const after = tally(dispatches, 5500, 10_000);
      expectWithin(before.get('a')!.cost / before.get('b')!.cost, 1, 0.1);
      expectWithin(after.get('a')!.cost / after.get('b')!.cost, 3, 0.1);
    });

    // Start-time fair queueing starts a returning flow at the class's virtual time, not
    // where it left off: a flow that was away, idle or held back by a cap, gets no burst.
    it.each([
      ['idle for 3 s', []],
      ['held by a 10/s cap that is lifted', [{ flow: 'b', qos: { priority: 'normal', weight: 1, iopsCap: 10 } as FlowQos }]],
    ])('gives a flow back from being %s its share and no more', (_name, capped) => {
      const s = new QosScheduler<Req>(options());
      for (const c of capped) s.setQos(c.flow, c.qos);
      const at = [{ atMs: 5000, run: () => s.setQos('b', undefined) }];
      const flows: SimFlow[] = [{ flow: 'a', bytes: 4 * KiB }];
      flows.push(...(capped.length > 0 ? [{ flow: 'b', bytes: 4 * KiB }] : [{ flow: 'b', bytes: 4 * KiB, untilMs: 2000 }, { flow: 'b', bytes: 4 * KiB, fromMs: 5000 }]));
      const after = simulate(s, { ...fixedController, durationMs: 8000, at, flows }).filter((d) => d.atMs >= 5000);
      // In every run of 100 dispatches after b is back, b gets about half, never most.
      let most = 0;
      for (let i = 0; i + 100 <= after.length; i++) most = Math.max(most, after.slice(i, i + 100).filter((d) => d.flow === 'b').length);
      expect(most).toBeLessThanOrEqual(55);
    });
  });

  describe('classes', () => {
    it('serves high first but gives a saturating low class its share, with bounded gaps', () => {
      const s = new QosScheduler<Req>(options());
      s.setQos('hi', { priority: 'high', weight: 1 });
      s.setQos('lo', { priority: 'low', weight: 1 });
      const dispatches = simulate(s, { ...randomController(), durationMs: 10_000, flows: [{ flow: 'hi', bytes: 4 * KiB }, { flow: 'lo', bytes: 4 * KiB }] });
      const t = tally(dispatches);
      const low = t.get('lo')!.cost / (t.get('lo')!.cost + t.get('hi')!.cost);
      expect(low).toBeGreaterThanOrEqual(0.05 * 0.99);
      expect(low).toBeLessThanOrEqual(0.05 * 1.1);
      // Equal costs: low goes at least once every 1 / 0.05 = 20 dispatches.
      let gap = 0;
      let gapMax = 0;
      for (const d of dispatches) gapMax = Math.max(gapMax, (gap = d.flow === 'lo' ? 0 : gap + 1));
      expect(gapMax).toBeLessThanOrEqual(20);
    });

    it('gives normal and low their shares together under a saturating high class', () => {
      const s = new QosScheduler<Req>(options());
      s.setQos('hi', { priority: 'high', weight: 1 });
      s.setQos('lo', { priority: 'low', weight: 1 });
      const flows = [{ flow: 'hi', bytes: 4 * KiB }, { flow: 'mid', bytes: 64 * KiB }, { flow: 'lo', bytes: 256 * KiB }];
      const t = tally(simulate(s, { ...randomController(), durationMs: 10_000, flows }));
      const total = t.get('hi')!.cost + t.get('mid')!.cost + t.get('lo')!.cost;
      expectWithin(t.get('mid')!.cost / total, 0.1, 0.05);
      expectWithin(t.get('lo')!.cost / total, 0.05, 0.05);
    });
  });

  describe('caps', () => {
    const capped = (qos: Partial<FlowQos>): QosScheduler<Req> => {
      const s = new QosScheduler<Req>(options());
      s.setQos('capped', { priority: 'normal', weight: 1, ...qos });
      return s;
    };

    it('holds a saturating flow to its iopsCap after the initial burst', () => {
      const s = capped({ iopsCap: 500 });
      const dispatches = simulate(s, { ...randomController(), durationMs: 10_000, flows: [{ flow: 'capped', bytes: 4 * KiB }, { flow: 'other', bytes: 4 * KiB }] });
      // The bucket starts full (500 operations, 1 s of burst) and refills at 500/s.
      expectWithin(tally(dispatches, 2000, 10_000).get('capped')!.ops / 8, 500, 0.05);
      expectWithin(tally(dispatches).get('capped')!.ops, 500 + 500 * 10, 0.01);
    });

    it('gives the slots a capped flow leaves to the others', () => {
      const s = capped({ iopsCap: 500 });
      const dispatches = simulate(s, { ...fixedController, durationMs: 10_000, flows: [{ flow: 'capped', bytes: 4 * KiB }, { flow: 'other', bytes: 4 * KiB }] });
      // 8 slots of 4 ms: 2000 ops/s for 10 s, all used.
      expectWithin(dispatches.length, 20_000, 0.01);
      expectWithin(tally(dispatches, 2000, 10_000).get('other')!.ops / 8, 1500, 0.05);
    });

    it('holds a saturating flow to its bandwidth cap after the initial burst', () => {
      const s = capped({ bandwidthCapBytesPerSec: 8 * MiB });
      const dispatches = simulate(s, { ...randomController(), durationMs: 10_000, flows: [{ flow: 'capped', bytes: 256 * KiB }, { flow: 'other', bytes: 4 * KiB }] });
      expectWithin(tally(dispatches, 2000, 10_000).get('capped')!.bytes / 8, 8 * MiB, 0.05);
    });

    it('says when a held flow may go next: popping then yields it, popping earlier yields nothing', () => {
      // 3 ops/s and a bucket of one operation: one every 333.33... ms, a time no double holds exactly.
      const s = capped({ iopsCap: 3, burstSeconds: 1 / 3 });
      for (let id = 0; id < 3; id++) s.push({ flow: 'capped', bytes: 4 * KiB, id }, 0);
      expect(s.pop(0)?.id).toBe(0);
      let nowMs = 0;
      for (const id of [1, 2]) {
        expect(s.pop(nowMs)).toBeUndefined();
        const nextMs = s.nextEligibleMs(nowMs)!;
        expect(nextMs).toBeCloseTo(nowMs + 1000 / 3, 9);
        expect(s.pop(nextMs - 1e-9)).toBeUndefined();
        expect(s.pop(nextMs)?.id).toBe(id);
        nowMs = nextMs;
      }
      expect(s.nextEligibleMs(nowMs)).toBeUndefined();
    });

    it('passes a request bigger than the bucket once it is full, and makes the flow pay it back', () => {
      // 256 KiB/s with 1 s of burst: a 1 MiB request never fits; it goes with a full bucket and leaves 3 s of debt.
      const s = capped({ bandwidthCapBytesPerSec: 256 * KiB });
      for (let id = 0; id < 2; id++) s.push({ flow: 'capped', bytes: MiB, id }, 0);
      s.push({ flow: 'other', bytes: 4 * KiB, id: 9 }, 0);
      expect(s.pop(0)?.id).toBe(0);
      expect(s.pop(0)?.id).toBe(9);
      expect(s.pop(0)).toBeUndefined();
      expect(s.nextEligibleMs(0)).toBe(4000);
      expect(s.pop(3999)).toBeUndefined();
      expect(s.pop(4000)?.id).toBe(1);
    });

    it('needs both buckets when a flow has both caps', () => {
      // 0.1 s of burst: one operation per 100 ms, and 10 KiB of bytes refilling at 100 KiB/s (40 ms per 4 KiB).
      const s = capped({ iopsCap: 10, bandwidthCapBytesPerSec: 100 * KiB, burstSeconds: 0.1 });
      for (const [id, bytes] of [4 * KiB, 4 * KiB, 40 * KiB, 4 * KiB].entries()) s.push({ flow: 'capped', bytes, id }, 0);
      const atMs: number[] = [];
      for (let nowMs = 0; s.size > 0; nowMs = s.nextEligibleMs(nowMs)!) {
        if (s.pop(nowMs) !== undefined) atMs.push(Math.round(nowMs * 1e6) / 1e6);
      }
      // Ops hold the second and third; the 40 KiB one leaves 400 ms of bytes to pay back (less 60 ms the last needs not).
      expect(atMs).toEqual([0, 100, 200, 540]);
    });
  });

  describe('reservations', () => {
    const contended = (reserved: FlowQos): QosScheduler<Req> => {
      const s = new QosScheduler<Req>(options());
      s.setQos('reserved', reserved);
      for (const f of ['heavy-1', 'heavy-2', 'heavy-3']) s.setQos(f, { priority: 'normal', weight: 100 });
      s.setQos('hi', { priority: 'high', weight: 1 });
      return s;
    };
    const flows = ['reserved', 'heavy-1', 'heavy-2', 'heavy-3', 'hi'].map((flow) => ({ flow, bytes: 4 * KiB }));

    it('serves a weight-1 flow its reservedIops among heavy flows and a high class', () => {
      // Without the reservation it would get 1/301 of normal's 10%: under 1 op/s.
      const s = contended({ priority: 'normal', weight: 1, reservedIops: 200 });
      const dispatches = simulate(s, { ...randomController(), durationMs: 10_000, flows });
      expect(tally(dispatches, 1000, 10_000).get('reserved')!.ops / 9).toBeGreaterThanOrEqual(200);
    });

    it('never lets a reservation exceed the flow cap', () => {
      const s = contended({ priority: 'normal', weight: 1, reservedIops: 200, iopsCap: 100 });
      const ops = tally(simulate(s, { ...randomController(), durationMs: 10_000, flows })).get('reserved')!.ops;
      // 100 of burst, then 100/s; the reservation still gets it all of that.
      expect(ops).toBeLessThanOrEqual(100 + 100 * 10 + 1);
      expect(ops).toBeGreaterThanOrEqual(100 + 100 * 10 - 10);
    });
  });

  describe('limits and order', () => {
    it('refuses beyond the flow and node depths and changes nothing when it does', () => {
      const s = new QosScheduler<Req>(options({ nodeDepthMax: 3, flowDepthMax: 2 }));
      const control = new QosScheduler<Req>(options({ nodeDepthMax: 3, flowDepthMax: 2 }));
      const accepted = [
        { flow: 'a', bytes: 4 * KiB, id: 1 },
        { flow: 'a', bytes: 4 * KiB, id: 2 },
      ];
      for (const r of accepted) expect([s.push(r, 0), control.push(r, 0)]).toEqual(['queued', 'queued']);
      expect(s.push({ flow: 'a', bytes: 4 * KiB, id: 3 }, 0)).toBe('flow-full');
      expect([s.push({ flow: 'b', bytes: MiB, id: 4 }, 0), control.push({ flow: 'b', bytes: MiB, id: 4 }, 0)]).toEqual(['queued', 'queued']);
      expect(s.push({ flow: 'c', bytes: 4 * KiB, id: 5 }, 0)).toBe('node-full');
      expect(s.push({ flow: 'a', bytes: 4 * KiB, id: 6 }, 0)).toBe('node-full');
      expect([s.size, s.sizeOf('a'), s.sizeOf('b'), s.sizeOf('c')]).toEqual([3, 2, 1, 0]);
      const drain = (q: QosScheduler<Req>): number[] => [q.pop(0), q.pop(0), q.pop(0), q.pop(0)].map((r) => r?.id ?? -1);
      expect(drain(s)).toEqual(drain(control));
    });

    it('keeps FIFO order within a flow whatever the sizes', () => {
      const random = seededRandom(seed);
      const s = new QosScheduler<Req>(options());
      const popped: number[] = [];
      let id = 0;
      for (let round = 0; round < 200; round++) {
        for (let n = Math.floor(random() * 4); n > 0; n--) s.push({ flow: 'a', bytes: Math.floor(random() * 2 * MiB), id: id++ }, round);
        if (random() < 0.6) popped.push(s.pop(round)?.id ?? -1);
      }
      for (let r = s.pop(200); r !== undefined; r = s.pop(200)) popped.push(r.id);
      expect(popped.filter((i) => i >= 0)).toEqual([...Array(id).keys()]);
    });

    it('forgets flows with nothing waiting, so its state stays bounded', () => {
      const s = new QosScheduler<Req>(options());
      s.setQos('f-7', { priority: 'low', weight: 5, iopsCap: 1000 });
      const popped: number[] = [];
      for (let i = 0; i < 10_000; i++) {
        s.push({ flow: `f-${i}`, bytes: 4 * KiB, id: i }, i);
        popped.push(s.pop(i)?.id ?? -1);
      }
      expect(popped).toEqual([...Array(10_000).keys()]);
      expect(s.flowsTracked).toBeLessThanOrEqual(2);
      expect(s.size).toBe(0);
    });
  });

  describe('validation', () => {
    const good: FlowQos = { priority: 'normal', weight: 1 };
    it.each([
      ['nodeDepthMax 0', { nodeDepthMax: 0 }, /nodeDepthMax/],
      ['flowDepthMax 1.5', { flowDepthMax: 1.5 }, /flowDepthMax/],
      ['a negative share', { lowerClassShare: { normal: -0.1, low: 0.05 } }, /lowerClassShare.normal/],
      ['shares summing to 1', { lowerClassShare: { normal: 0.5, low: 0.5 } }, /below 1/],
      ['costUnitBytes 0', { costUnitBytes: 0 }, /costUnitBytes/],
      ['a default weight of 0', { defaultQos: { ...good, weight: 0 } }, /defaultQos: weight/],
    ])('refuses options with %s', (_name, overrides, message) => {
      expect(() => new QosScheduler<Req>(options(overrides as Partial<SchedulerOptions>))).toThrow(message);
    });

    it.each([
      ['weight 0', { ...good, weight: 0 }, /weight/],
      ['weight 1001', { ...good, weight: 1001 }, /weight/],
      ['an unknown priority', { ...good, priority: 'urgent' }, /priority/],
      ['a negative iopsCap', { ...good, iopsCap: -1 }, /iopsCap/],
      ['a zero bandwidth cap', { ...good, bandwidthCapBytesPerSec: 0 }, /bandwidthCapBytesPerSec/],
      ['an infinite burst', { ...good, iopsCap: 10, burstSeconds: Infinity }, /burstSeconds/],
      ['a NaN reservation', { ...good, reservedIops: NaN }, /reservedIops/],
    ])('refuses a QoS with %s and keeps the old one', (_name, qos, message) => {
      const s = new QosScheduler<Req>(options());
      s.setQos('a', { priority: 'normal', weight: 1, iopsCap: 1, burstSeconds: 1 });
      expect(() => s.setQos('a', qos as FlowQos)).toThrow(message);
      // Still the old cap: one operation, then nothing for a second.
      for (let id = 0; id < 2; id++) s.push({ flow: 'a', bytes: 0, id }, 0);
      expect([s.pop(0)?.id, s.pop(0)?.id, s.nextEligibleMs(0)]).toEqual([0, undefined, 1000]);
    });
  });

  describe("the lower classes' limit (set by the guard while high-class I/O suffers)", () => {
    it('holds normal and low together to the limit while high runs free, and nothing is held once it is lifted', () => {
      const s = new QosScheduler<Req>(options());
      // The high flow wants a quarter of the controller (500 of its 2000 ops/s), as a QD1 reader would.
      s.setQos('hi', { priority: 'high', weight: 1, iopsCap: 500 });
      s.setQos('lo', { priority: 'low', weight: 1 });
      s.setQos('mid', { priority: 'normal', weight: 1 });
      s.setLowerClassLimit(200);
      expect(s.lowerClassLimit).toBe(200);
      const at = [{ atMs: 10_000, run: () => s.setLowerClassLimit(undefined) }];
      // A work-conserving scheduler would give the lower classes the three quarters the high flow leaves.
      const flows: SimFlow[] = [
        { flow: 'hi', bytes: 4 * KiB, depth: 1 },
        { flow: 'lo', bytes: 256 * KiB },
        { flow: 'mid', bytes: 4 * KiB },
      ];
      const dispatches = simulate(s, { ...fixedController, durationMs: 15_000, at, flows });
      const limited = tally(dispatches, 1000, 10_000);
      // Within the limit, normal goes before low as ever (low earns its class share only while eligible, and the limit keeps it from being so most of the time).
      const lowerCost = (limited.get('lo')?.cost ?? 0) + limited.get('mid')!.cost;
      // 200 cost units a second over 9 s, give or take one burst (34).
      expect(lowerCost).toBeGreaterThanOrEqual(200 * 9 - 40);
      expect(lowerCost).toBeLessThanOrEqual(200 * 9 + 40);
      expectWithin(limited.get('hi')!.ops, 500 * 9, 0.02);
      // Lifted: the lower classes take what the high flow leaves (1500 ops/s of 4 KiB and 256 KiB requests), many times the limit.
      const free = tally(dispatches, 10_000, 15_000);
      expect(((free.get('lo')?.cost ?? 0) + free.get('mid')!.cost) / 5).toBeGreaterThan(5 * 200);
    });

    it('counts the cost it lets through and leaves reservations out of the limit', () => {
      const s = new QosScheduler<Req>(options());
      s.setQos('f', { priority: 'low', weight: 1, reservedIops: 500 });
      s.setQos('lo', { priority: 'low', weight: 1 });
      s.setLowerClassLimit(50);
      const t = tally(simulate(s, { ...fixedController, durationMs: 10_000, flows: [{ flow: 'f', bytes: 4 * KiB }, { flow: 'lo', bytes: 4 * KiB }] }), 1000);
      // The reservation holds (500/s over 9 s) although the limit is 50 cost units a second.
      expect(t.get('f')!.ops).toBeGreaterThanOrEqual(500 * 9 * 0.98);
      expect(t.get('lo')!.cost).toBeLessThanOrEqual(50 * 9 + 40);
      expect(s.lowerCostDispatched).toBeGreaterThan(0);
      expect(s.lowerCostDispatched).toBeLessThanOrEqual(50 * 10 + 40);
    });

    it('says when a held request may go, and names the class of a flow', () => {
      const s = new QosScheduler<Req>(options());
      s.setQos('lo', { priority: 'low', weight: 1 });
      s.setLowerClassLimit(100);
      // A 1 MiB request costs 17: two fit the burst of 34, the third waits 17 units at 100 a second.
      for (let id = 0; id < 3; id++) s.push({ flow: 'lo', bytes: MiB, id }, 0);
      expect([s.pop(0)?.id, s.pop(0)?.id, s.pop(0)]).toEqual([0, 1, undefined]);
      expect(s.nextEligibleMs(0)).toBeCloseTo(170, 6);
      expect(s.pop(169)).toBeUndefined();
      expect(s.pop(170)?.id).toBe(2);
      expect([s.classOf('lo'), s.classOf('unknown')]).toEqual(['low', 'normal']);
      expect(() => s.setLowerClassLimit(0)).toThrow('positive');
    });

    it('lets a held request go once it is aged, without charging the limit for it', () => {
      const s = new QosScheduler<Req>(options());
      s.setQos('lo', { priority: 'low', weight: 1 });
      s.setLowerClassLimit(100);
      // Two 1 MiB requests take the burst; the third is aged at 50 ms, long before the limit's 170 ms.
      s.push({ flow: 'lo', bytes: MiB, id: 0 }, 0);
      s.push({ flow: 'lo', bytes: MiB, id: 1 }, 0);
      s.push({ flow: 'lo', bytes: MiB, id: 2, agedAtMs: 50 }, 0);
      s.push({ flow: 'lo', bytes: MiB, id: 3 }, 0);
      expect([s.pop(0)?.id, s.pop(0)?.id, s.pop(0)]).toEqual([0, 1, undefined]);
      expect(s.nextEligibleMs(0)).toBe(50);
      expect(s.pop(49)).toBeUndefined();
      expect(s.pop(50)?.id).toBe(2);
      // The aged one was not charged: the fourth goes when the limit had let the third go.
      expect(s.nextEligibleMs(50)).toBeCloseTo(170, 6);
      expect(s.pop(169)).toBeUndefined();
      expect(s.pop(170)?.id).toBe(3);
      expect(s.lowerCostDispatched).toBeCloseTo(4 * costOf(MiB), 6);
    });
  });

  it('lets only the high class go when asked (the gate keeps its last slots for it)', () => {
    const s = new QosScheduler<Req>(options());
    s.setQos('hi', { priority: 'high', weight: 1, iopsCap: 1, burstSeconds: 1 });
    s.setQos('lo', { priority: 'low', weight: 1 });
    s.push({ flow: 'lo', bytes: 4 * KiB, id: 1 }, 0);
    expect(s.pop(0, true)).toBeUndefined();
    // Nothing of the high class waits: no time to wake up at.
    expect(s.nextEligibleMs(0, true)).toBeUndefined();
    s.push({ flow: 'hi', bytes: 4 * KiB, id: 2 }, 0);
    s.push({ flow: 'hi', bytes: 4 * KiB, id: 3 }, 0);
    expect(s.pop(0, true)?.id).toBe(2);
    // The cap holds the next high request until 1000 ms; the low one is not offered meanwhile.
    expect(s.pop(10, true)).toBeUndefined();
    expect(s.nextEligibleMs(10, true)).toBe(1000);
    expect(s.pop(10)?.id).toBe(1);
    expect(s.pop(1000, true)?.id).toBe(3);
  });
});

