// The restart machine's transitions (the restart and wait lists of the VMware design),
// the retry policy, and how a stored record resumes it.
import { restartRecord } from '@strata/proto';
import { nextRestart, onWaitList, outcomeOf, recordOf, restartMachine, resumeRestart, retryDelay, startRestart, stepOf, type RestartContext, type RestartEvent } from '../src/restart-machine';

const policy = { retryDelayMs: 1_000, retryDelayMaxMs: 30_000, attemptsMax: 3 };
const machine = restartMachine(policy);
const context: RestartContext = { vm: 12360n, cause: 'host n1 failed', reason: 'to be placed', priority: 'high', listedAtMs: 1_000, attempts: 0, excluded: [], haEpoch: 5 };

function run(...events: RestartEvent[]) {
  let s = startRestart(machine, context);
  for (const e of events) s = nextRestart(machine, s, e);
  return s;
}

describe('restart machine', () => {
  test('pending, placed, powered on: the restart is over', () => {
    const s = run({ type: 'placed', host: 'n2' });
    expect(stepOf(s)).toBe('powering-on');
    expect(s.context.host).toBe('n2');
    const done = nextRestart(machine, s, { type: 'poweredOn' });
    expect(stepOf(done)).toBeUndefined();
    expect(outcomeOf(done)).toBe('restarted');
    expect(() => recordOf(done)).toThrow('is over');
  });

  test('no capacity waits for a capacity change, then tries again', () => {
    const s = run({ type: 'noCapacity', reason: 'no alive host has 2 CPUs' });
    expect(stepOf(s)).toBe('wait-capacity');
    expect(s.context.reason).toBe('no alive host has 2 CPUs');
    expect(nextRestart(machine, s, { type: 'retryDue' })).toBe(s);
    expect(stepOf(nextRestart(machine, s, { type: 'capacityChanged' }))).toBe('pending');
  });

  test('inaccessible vDisks put it on the wait list with the reason until an accessibility change', () => {
    const s = run({ type: 'inaccessible', reason: 'vdisk db: extent group 7 has no replica on a live node' });
    expect(stepOf(s)).toBe('wait-access');
    expect(onWaitList(stepOf(s)!)).toBe(true);
    expect(nextRestart(machine, s, { type: 'capacityChanged' })).toBe(s);
    const back = nextRestart(machine, s, { type: 'accessible' });
    expect(stepOf(back)).toBe('pending');
    expect(onWaitList(stepOf(back)!)).toBe(false);
  });

  test('a failed power-on is classified: capacity waits, inaccessible goes to the wait list, anything else retries after a delay that doubles', () => {
    const placed = run({ type: 'placed', host: 'n2' });
    expect(stepOf(nextRestart(machine, placed, { type: 'powerOnFailed', cause: 'capacity', reason: 'NO_SPACE', atMs: 5_000 }))).toBe('wait-capacity');
    expect(stepOf(nextRestart(machine, placed, { type: 'powerOnFailed', cause: 'inaccessible', reason: 'x', atMs: 5_000 }))).toBe('wait-access');
    const retry = nextRestart(machine, placed, { type: 'powerOnFailed', cause: 'other', reason: 'n2: INTERNAL: the VM exited', atMs: 5_000 });
    expect(recordOf(retry)).toEqual({ ...context, step: 'retry-delay', reason: 'n2: INTERNAL: the VM exited', attempts: 1, excluded: ['n2'], retryAtMs: 6_000 });
    const again = nextRestart(machine, nextRestart(machine, nextRestart(machine, retry, { type: 'retryDue' }), { type: 'placed', host: 'n3' }), { type: 'powerOnFailed', cause: 'other', reason: 'y', atMs: 10_000 });
    expect(again.context).toMatchObject({ attempts: 2, excluded: ['n2', 'n3'], retryAtMs: 12_000 });
  });

  test('the delay doubles up to its maximum', () => {
    expect([1, 2, 3, 4, 5, 6].map((a) => retryDelay(policy, a))).toEqual([1_000, 2_000, 4_000, 8_000, 16_000, 30_000]);
  });

  test('the last failed attempt gives up, whatever its cause', () => {
    let s = run();
    for (let attempt = 1; attempt <= policy.attemptsMax; attempt++) {
      s = nextRestart(machine, s, { type: 'placed', host: `n${attempt}` });
      s = nextRestart(machine, s, { type: 'powerOnFailed', cause: attempt === policy.attemptsMax ? 'capacity' : 'other', reason: `fail ${attempt}`, atMs: 0 });
      if (attempt < policy.attemptsMax) s = nextRestart(machine, s, { type: 'retryDue' });
    }
    expect(outcomeOf(s)).toBe('gaveUp');
    expect(s.context.attempts).toBe(policy.attemptsMax);
  });

  test('a power-on an earlier master sent that never happened is sent again', () => {
    const s = nextRestart(machine, run({ type: 'placed', host: 'n2' }), { type: 'redispatch', reason: 'lease still free' });
    expect(stepOf(s)).toBe('pending');
  });

  test('cancel ends it from every step', () => {
    const reach: RestartEvent[][] = [[], [{ type: 'placed', host: 'n2' }], [{ type: 'noCapacity', reason: 'x' }], [{ type: 'inaccessible', reason: 'x' }], [{ type: 'placed', host: 'n2' }, { type: 'powerOnFailed', cause: 'other', reason: 'x', atMs: 0 }]];
    for (const events of reach) {
      const s = nextRestart(machine, run(...events), { type: 'cancel', reason: 'powered off by the operator' });
      expect(outcomeOf(s)).toBe('cancelled');
      expect(s.context.reason).toBe('powered off by the operator');
    }
  });

  test('a stored record, valid on the wire, resumes at its step with its context', () => {
    const s = run({ type: 'placed', host: 'n2' }, { type: 'powerOnFailed', cause: 'other', reason: 'x', atMs: 0 });
    const stored = restartRecord.parse(recordOf(s));
    const resumed = resumeRestart(machine, stored);
    expect(stepOf(resumed)).toBe('retry-delay');
    expect(recordOf(resumed)).toEqual(stored);
    expect(stepOf(nextRestart(machine, resumed, { type: 'retryDue' }))).toBe('pending');
  });

  test('the record leaves out what the step does not use', () => {
    const r = recordOf(run());
    expect('host' in r).toBe(false);
    expect('retryAtMs' in r).toBe(false);
  });
});
