// The admission gate: at most inFlightMax requests run at once, the rest wait in
// their discipline's order up to the queue's depth, beyond it QUEUE_FULL comes back
// at once, and when a cap holds every waiting request back the gate wakes itself
// when the first may go.
import { FifoQueue, Gate, type Waiting } from '../src/gate';
import { QosScheduler } from '../src/scheduler';

const req = { flow: '1', bytes: 4096 };

/** The actor's discipline, with room for 100 requests on the node and `flowDepthMax` per vDisk. */
function qosScheduler<R>(flowDepthMax: number): QosScheduler<Waiting<R>> {
  return new QosScheduler<Waiting<R>>({
    nodeDepthMax: 100,
    flowDepthMax,
    lowerClassShare: { normal: 0.1, low: 0.05 },
    costUnitBytes: 65536,
    defaultQos: { priority: 'normal', weight: 1 },
  });
}

function deferred<T>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

/** Waits past the end of the current event-loop turn, when finished requests' slots are freed. */
const nextTurn = (): Promise<void> => new Promise((r) => setImmediate(() => setImmediate(r)));

describe('admission gate', () => {
  it('bounds in-flight work, keeps FIFO order and refuses beyond the queue depth', async () => {
    let clock = 0;
    const waits: number[] = [];
    const gate = new Gate<number>(new FifoQueue(2), { inFlightMax: 2, now: () => clock, onDispatch: (w) => waits.push(w) });
    const started: number[] = [];
    const gates = [0, 1, 2, 3].map(() => deferred<number>());
    const results = gates.map((g, i) =>
      gate.submit(req, () => {
        started.push(i);
        return g.promise;
      }),
    );
    await expect(gate.submit(req, () => Promise.resolve(99))).rejects.toMatchObject({ code: 'QUEUE_FULL', retryable: true });
    expect(started).toEqual([0, 1]);
    expect(gate.active).toBe(2);
    expect(gate.depth).toBe(2);
    clock = 7;
    gates[1]!.resolve(1);
    await results[1];
    // The slot is freed at the end of the turn in which the result was delivered.
    await nextTurn();
    expect(started).toEqual([0, 1, 2]);
    gates[0]!.resolve(0);
    await results[0];
    await nextTurn();
    expect(started).toEqual([0, 1, 2, 3]);
    gates[2]!.resolve(2);
    gates[3]!.resolve(3);
    await expect(Promise.all(results)).resolves.toEqual([0, 1, 2, 3]);
    expect(waits).toEqual([0, 0, 7, 7]);
  });

  it('does not run a request still queued at its deadline: it gets TIMEOUT, and the next one runs', async () => {
    let clock = 0;
    const gate = new Gate<string>(new FifoQueue(10), { inFlightMax: 1, now: () => clock });
    const started: string[] = [];
    const first = deferred<string>();
    const run = (name: string) => () => {
      started.push(name);
      return name === 'first' ? first.promise : Promise.resolve(name);
    };
    const results = [
      gate.submit({ ...req, deadlineMs: 5_000 }, run('first')),
      gate.submit({ ...req, deadlineMs: 100 }, run('expired')),
      gate.submit({ ...req, deadlineMs: 1_000 }, run('in time')),
    ].map((p) => p.catch((err: Error) => err));
    clock = 150;
    first.resolve('first');
    for (let turn = 0; turn < 5 && started.length < 2; turn++) await nextTurn();
    const [, expired, inTime] = await Promise.all(results);
    expect(started).toEqual(['first', 'in time']);
    expect(expired).toMatchObject({ code: 'TIMEOUT', message: expect.stringContaining('past its deadline') as unknown });
    expect(inTime).toBe('in time');
    expect(gate.depth).toBe(0);
  });

  it("lets a request the lower classes' limit holds go halfway to its deadline", async () => {
    const scheduler = qosScheduler<string>(100);
    scheduler.setQos('lo', { priority: 'low', weight: 1 });
    // 10 cost units a second: two 1 MiB requests (17 each) take the burst, a third would wait 1.7 s.
    scheduler.setLowerClassLimit(10);
    const gate = new Gate<string>(scheduler, { inFlightMax: 4, now: () => performance.now(), agedAtFraction: 0.5 });
    const t0 = performance.now();
    const startedMs: number[] = [];
    const run = () => {
      startedMs.push(performance.now() - t0);
      return Promise.resolve('done');
    };
    const big = { flow: 'lo', bytes: 1024 * 1024 };
    await Promise.all([gate.submit(big, run), gate.submit(big, run), gate.submit({ ...big, deadlineMs: t0 + 400 }, run)]);
    expect(startedMs).toHaveLength(3);
    // Aged at 200 ms; timers may fire late on a busy machine, never early.
    expect(startedMs[2]).toBeGreaterThanOrEqual(195);
    expect(startedMs[2]).toBeLessThan(1_500);
    gate.close();
  });

  it('passes failures through and frees the slot', async () => {
    const gate = new Gate<number>(new FifoQueue(10), { inFlightMax: 1, now: () => 0 });
    await expect(gate.submit(req, () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    await expect(gate.submit(req, () => Promise.resolve(5))).resolves.toBe(5);
    await nextTurn();
    expect(gate.active).toBe(0);
  });

  it('frees a finished request\'s slot only at the end of its turn, so requests of that turn queue and go in the discipline\'s order', async () => {
    const scheduler = qosScheduler<number>(100);
    scheduler.setQos('heavy', { priority: 'normal', weight: 3 });
    scheduler.setQos('light', { priority: 'normal', weight: 1 });
    const gate = new Gate<number>(scheduler, { inFlightMax: 1, now: () => 0 });
    const started: string[] = [];
    const run = (name: string) => () => {
      started.push(name);
      return Promise.resolve(0);
    };
    // The first request takes the slot and finishes at once (a read from the page cache).
    const first = gate.submit({ flow: 'light', bytes: 4096 }, run('light-0'));
    await first;
    // Later in the same turn (as the next socket read would be), its slot is still held.
    for (let i = 0; i < 10; i++) await Promise.resolve();
    expect(gate.active).toBe(1);
    // Requests arriving in the same turn wait, though the work before them is done.
    const rest = [gate.submit({ flow: 'light', bytes: 4096 }, run('light-1')), gate.submit({ flow: 'light', bytes: 4096 }, run('light-2'))];
    for (let i = 0; i < 6; i++) rest.push(gate.submit({ flow: 'heavy', bytes: 4096 }, run(`heavy-${i}`)));
    expect(started).toEqual(['light-0']);
    expect(gate.depth).toBe(8);
    for (let turn = 0; turn < 8 && started.length < 9; turn++) await nextTurn();
    await Promise.all(rest);
    // Queued together, they left by weight: three heavy ones for each light one.
    expect(started.slice(1, 5).filter((n) => n.startsWith('heavy'))).toHaveLength(3);
  });

  it('compacts its storage without losing order', () => {
    const item = (i: number) => ({ flow: String(i % 3), bytes: i });
    const q = new FifoQueue<{ flow: string; bytes: number }>(100_000);
    for (let i = 0; i < 5000; i++) q.push(item(i));
    for (let i = 0; i < 4000; i++) expect(q.pop()?.bytes).toBe(i);
    for (let i = 5000; i < 6000; i++) q.push(item(i));
    // Waiting now: 4000..5999, of which every third from 4000 (4000 % 3 === 1) is in flow '1'.
    expect(q.sizeOf('1')).toBe(667);
    for (let i = 4000; i < 6000; i++) expect(q.pop()?.bytes).toBe(i);
    expect(q.pop()).toBeUndefined();
  });

  it('names the vDisk whose own queue is full, and wakes for a request a cap held back', async () => {
    const scheduler = qosScheduler<number>(2);
    // 20 operations a second with a burst of one: after the first, one every 50 ms.
    scheduler.setQos('7', { priority: 'normal', weight: 1, iopsCap: 20, burstSeconds: 0.05 });
    const refusals: string[] = [];
    const gate = new Gate<number>(scheduler, { inFlightMax: 4, now: () => performance.now(), onRefused: (why) => refusals.push(why) });
    const startedMs: number[] = [];
    const t0 = performance.now();
    const run = (i: number) => () => {
      startedMs.push(performance.now() - t0);
      return Promise.resolve(i);
    };
    const first = gate.submit({ flow: '7', bytes: 4096 }, run(0));
    const second = gate.submit({ flow: '7', bytes: 4096 }, run(1));
    const third = gate.submit({ flow: '7', bytes: 4096 }, run(2));
    await expect(gate.submit({ flow: '7', bytes: 4096 }, run(3))).rejects.toMatchObject({ code: 'QUEUE_FULL', message: expect.stringContaining('vdisk 7 has 2 requests waiting') });
    expect(refusals).toEqual(['flow-full']);
    // Another vDisk is not held back by the first one's cap.
    await expect(gate.submit({ flow: '8', bytes: 4096 }, run(9))).resolves.toBe(9);
    await expect(Promise.all([first, second, third])).resolves.toEqual([0, 1, 2]);
    expect(startedMs).toHaveLength(4);
    // The capped requests went one per 50 ms, and only because the gate woke itself: nothing else pumped it.
    const capped = [startedMs[0]!, startedMs[2]!, startedMs[3]!];
    expect(capped[1]! - capped[0]!).toBeGreaterThanOrEqual(45);
    expect(capped[2]! - capped[1]!).toBeGreaterThanOrEqual(45);
    expect(capped[2]! - capped[0]!).toBeLessThan(500);
    gate.close();
  });

  it('keeps the last free slots for the high class', async () => {
    const scheduler = qosScheduler<string>(100);
    scheduler.setQos('low', { priority: 'low', weight: 1 });
    scheduler.setQos('high', { priority: 'high', weight: 1 });
    const gate = new Gate<string>(scheduler, { inFlightMax: 4, now: () => performance.now(), highReservedSlots: 1 });
    const started: string[] = [];
    const holds = Array.from({ length: 5 }, () => deferred<string>());
    const lows = holds.map((h, i) =>
      gate.submit({ flow: 'low', bytes: 4096 }, () => {
        started.push(`low${i}`);
        return h.promise;
      }),
    );
    // Three of four slots go to the low class; the fourth is kept, so two low requests wait.
    expect(started).toEqual(['low0', 'low1', 'low2']);
    expect(gate.depth).toBe(2);
    const high = gate.submit({ flow: 'high', bytes: 4096 }, () => {
      started.push('high');
      return Promise.resolve('high');
    });
    // The high request takes the kept slot at once, ahead of the waiting low ones.
    expect(started).toEqual(['low0', 'low1', 'low2', 'high']);
    await expect(high).resolves.toBe('high');
    holds.forEach((h, i) => h.resolve(`low${i}`));
    await expect(Promise.all(lows)).resolves.toEqual(['low0', 'low1', 'low2', 'low3', 'low4']);
    expect(() => new Gate<string>(scheduler, { inFlightMax: 4, now: () => 0, highReservedSlots: 4 })).toThrow(/highReservedSlots/);
    gate.close();
  });

  it("lets a group's requests share slots, groupPerSlot to a slot, and gives a slot back when its last request ends", async () => {
    const gate = new Gate<string>(new FifoQueue(100), { inFlightMax: 2, groupPerSlot: 4, now: () => 0 });
    const started: string[] = [];
    const holds = new Map<string, { promise: Promise<string>; resolve: (v: string) => void }>();
    const submit = (name: string, group?: string): Promise<string> =>
      gate.submit({ flow: '1', bytes: 4096, group }, () => {
        started.push(name);
        const hold = deferred<string>();
        holds.set(name, hold);
        return hold.promise;
      });
    const writes = [0, 1, 2, 3, 4].map((i) => submit(`w${i}`, 'vdisk-1'));
    const other = submit('read');
    // Five grouped requests fill two slots (4 + 1); the ungrouped one waits for a slot.
    expect(started).toEqual(['w0', 'w1', 'w2', 'w3', 'w4']);
    expect(gate.active).toBe(2);
    expect(gate.depth).toBe(1);
    // One of five ending leaves four: one slot, so the other is given back at the end of the turn.
    holds.get('w4')!.resolve('w4');
    await writes[4];
    await nextTurn();
    expect(started).toEqual(['w0', 'w1', 'w2', 'w3', 'w4', 'read']);
    expect(gate.active).toBe(2);
    holds.get('read')!.resolve('read');
    for (const i of [0, 1, 2, 3]) holds.get(`w${i}`)!.resolve(`w${i}`);
    await expect(Promise.all([...writes, other])).resolves.toEqual(['w0', 'w1', 'w2', 'w3', 'w4', 'read']);
    await nextTurn();
    expect(gate.active).toBe(0);
    expect(() => new Gate<string>(new FifoQueue(1), { inFlightMax: 2, groupPerSlot: 0, now: () => 0 })).toThrow(/groupPerSlot/);
    gate.close();
  });

  it('without groupPerSlot, grouped requests take a slot each', () => {
    const gate = new Gate<string>(new FifoQueue(100), { inFlightMax: 2, now: () => 0 });
    const started: number[] = [];
    for (let i = 0; i < 4; i++)
      void gate.submit({ flow: '1', bytes: 4096, group: 'vdisk-1' }, () => {
        started.push(i);
        return new Promise<string>(() => undefined);
      });
    expect(started).toEqual([0, 1]);
    expect(gate.depth).toBe(2);
    gate.close();
  });
});
