// The takeover machine's transitions, and how a stored record resumes it.
import { takeoverRecord } from '@strata/proto';
import { STEP_ATTEMPTS_MAX, attemptsExhausted, nextTakeover, recordOf, resumeTakeover, startTakeover, stepOf, type TakeoverContext } from '../src/takeover-machine';

const context: TakeoverContext = { vdisk: 12349n, from: 'n2', to: 'n1', epoch: 4, reason: 'node n2 declared dead', startedAtMs: 1, attempts: 0, excluded: [] };

describe('takeover machine', () => {
  test('claim, fence, replay, serve, in that order, then it is over', () => {
    let s = startTakeover(context);
    const steps = [stepOf(s)];
    for (let i = 0; i < 4; i++) {
      s = nextTakeover(s, { type: 'done' });
      steps.push(stepOf(s));
    }
    expect(steps).toEqual(['claim', 'fence', 'replay', 'serve', undefined]);
    expect(s.value).toBe('finished');
    expect(() => recordOf(s)).toThrow('is over');
  });

  test('a failed step is tried again up to the limit, then the snapshot stays put for the coordinator to retarget', () => {
    let s = nextTakeover(nextTakeover(startTakeover(context), { type: 'done' }), { type: 'done' });
    expect(stepOf(s)).toBe('replay');
    for (let i = 1; i < STEP_ATTEMPTS_MAX; i++) {
      s = nextTakeover(s, { type: 'failed' });
      expect(s.context.attempts).toBe(i);
    }
    expect(attemptsExhausted(s)).toBe(true);
    expect(nextTakeover(s, { type: 'failed' })).toBe(s);
  });

  test('retarget starts again at claim with the next epoch, the failed node excluded', () => {
    let s = nextTakeover(nextTakeover(startTakeover(context), { type: 'done' }), { type: 'done' });
    s = nextTakeover(s, { type: 'failed' });
    s = nextTakeover(s, { type: 'retarget', to: 'n3' });
    expect(recordOf(s)).toEqual({ ...context, step: 'claim', to: 'n3', epoch: 5, attempts: 0, excluded: ['n1'] });
  });

  test('superseded ends it from any step', () => {
    for (let steps = 0; steps < 4; steps++) {
      let s = startTakeover(context);
      for (let i = 0; i < steps; i++) s = nextTakeover(s, { type: 'done' });
      s = nextTakeover(s, { type: 'superseded' });
      expect(s.value).toBe('abandoned');
      expect(stepOf(s)).toBeUndefined();
    }
  });

  test('a stored record (valid on the wire) resumes at its step with its context', () => {
    const fencing = nextTakeover(startTakeover(context), { type: 'done' });
    const stored = takeoverRecord.parse(recordOf(fencing));
    expect(stored.step).toBe('fence');
    const resumed = resumeTakeover(stored);
    expect(stepOf(resumed)).toBe('fence');
    expect(resumed.context).toEqual(context);
    expect(stepOf(nextTakeover(resumed, { type: 'done' }))).toBe('replay');
  });
});
