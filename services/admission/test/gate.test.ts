// The admission gate: at most inFlightMax requests run at once, the rest wait in
// FIFO order up to the queue's depth, and beyond it QUEUE_FULL comes back at once.
import { FifoQueue, Gate } from '../src/gate';

function deferred<T>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

describe('admission gate', () => {
  it('bounds in-flight work, keeps FIFO order and refuses beyond the queue depth', async () => {
    let clock = 0;
    const waits: number[] = [];
    const gate = new Gate<number>(new FifoQueue(2), 2, () => clock, (w) => waits.push(w));
    const started: number[] = [];
    const gates = [0, 1, 2, 3].map(() => deferred<number>());
    const results = gates.map((g, i) =>
      gate.submit(() => {
        started.push(i);
        return g.promise;
      }),
    );
    await expect(gate.submit(() => Promise.resolve(99))).rejects.toMatchObject({ code: 'QUEUE_FULL', retryable: true });
    expect(started).toEqual([0, 1]);
    expect(gate.active).toBe(2);
    expect(gate.depth).toBe(2);
    clock = 7;
    gates[1]!.resolve(1);
    await results[1];
    // The slot is freed after the result is delivered: let that callback run.
    await new Promise((r) => setImmediate(r));
    expect(started).toEqual([0, 1, 2]);
    gates[0]!.resolve(0);
    await results[0];
    await new Promise((r) => setImmediate(r));
    expect(started).toEqual([0, 1, 2, 3]);
    gates[2]!.resolve(2);
    gates[3]!.resolve(3);
    await expect(Promise.all(results)).resolves.toEqual([0, 1, 2, 3]);
    expect(waits).toEqual([0, 0, 7, 7]);
  });

  it('passes failures through and frees the slot', async () => {
    const gate = new Gate<number>(new FifoQueue(10), 1, () => 0);
    await expect(gate.submit(() => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    await expect(gate.submit(() => Promise.resolve(5))).resolves.toBe(5);
    expect(gate.active).toBe(0);
  });

  it('compacts its storage without losing order', () => {
    const q = new FifoQueue<number>(100_000);
    for (let i = 0; i < 5000; i++) q.push(i);
    for (let i = 0; i < 4000; i++) expect(q.pop()).toBe(i);
    for (let i = 5000; i < 6000; i++) q.push(i);
    for (let i = 4000; i < 6000; i++) expect(q.pop()).toBe(i);
    expect(q.pop()).toBeUndefined();
  });
});
