// The served vDisk's lifecycle: open (owned, replayed, marked), serve, relinquish,
// and every way it closes.
import { LifecycleState, nextLifecycle, startLifecycle, stateOf, type LifecycleEvent, type LifecycleSnapshot } from '../src/lifecycle-machine';

function run(...events: LifecycleEvent[]): LifecycleSnapshot {
  return events.reduce(nextLifecycle, startLifecycle(7n));
}

const opened: LifecycleEvent[] = [{ type: 'owned', epoch: 4 }, { type: 'replayed', replayed: 12 }, { type: 'marked' }];

describe('vdisk lifecycle', () => {
  it('opens through the owner check, the replay and the marker, then serves at the epoch it was owned at', () => {
    let s = startLifecycle(7n);
    expect(stateOf(s)).toBe(LifecycleState.opening);
    s = nextLifecycle(s, opened[0]!);
    expect(stateOf(s)).toBe(LifecycleState.replaying);
    s = nextLifecycle(s, opened[1]!);
    expect(stateOf(s)).toBe(LifecycleState.marking);
    s = nextLifecycle(s, opened[2]!);
    expect(stateOf(s)).toBe(LifecycleState.serving);
    expect(s.context).toEqual({ vdisk: 7n, epoch: 4, replayed: 12 });
  });

  it('is never served without its marker: a fenced marker closes it', () => {
    const s = run(opened[0]!, opened[1]!, { type: 'fenced', reason: 'another owner appended' });
    expect(stateOf(s)).toBe(LifecycleState.closed);
    expect(s.context.reason).toBe('another owner appended');
    expect(s.status).toBe('done');
  });

  it('ignores steps out of order: no marker before the replay, no relinquish before it serves', () => {
    expect(stateOf(run({ type: 'owned', epoch: 1 }, { type: 'marked' }))).toBe(LifecycleState.replaying);
    expect(stateOf(run({ type: 'relinquish', to: 'n2' }))).toBe(LifecycleState.opening);
    expect(stateOf(run({ type: 'replayed', replayed: 3 }))).toBe(LifecycleState.opening);
  });

  it('hands over from serving through leaving, and takes no I/O event after', () => {
    let s = run(...opened, { type: 'relinquish', to: 'n2' });
    expect(stateOf(s)).toBe(LifecycleState.leaving);
    expect(s.context.to).toBe('n2');
    // Leaving: a fence of the drain it stops no longer matters; the hand-over does.
    expect(stateOf(nextLifecycle(s, { type: 'fenced', reason: 'x' }))).toBe(LifecycleState.leaving);
    s = nextLifecycle(s, { type: 'handedOver' });
    expect(stateOf(s)).toBe(LifecycleState.closed);
    expect(s.context.reason).toBe('handed over to n2');
    expect(stateOf(nextLifecycle(s, { type: 'owned', epoch: 9 }))).toBe(LifecycleState.closed);
  });

  it('closes from any state on a drop, and from the steps that can fail on a failure', () => {
    const prefixes: LifecycleEvent[][] = [[], opened.slice(0, 1), opened.slice(0, 2), opened, [...opened, { type: 'relinquish', to: 'n2' }]];
    for (const prefix of prefixes) {
      const dropped = run(...prefix, { type: 'drop', reason: 'heartbeat lapsed' });
      expect(stateOf(dropped)).toBe(LifecycleState.closed);
      expect(dropped.context.reason).toBe('heartbeat lapsed');
      expect(stateOf(run(...prefix, { type: 'failed', reason: 'oplog unavailable' }))).toBe(LifecycleState.closed);
    }
  });

  it('closes a serving vDisk whose drain or append was fenced', () => {
    const s = run(...opened, { type: 'fenced', reason: 'drain fenced' });
    expect(stateOf(s)).toBe(LifecycleState.closed);
    expect(s.context).toMatchObject({ epoch: 4, reason: 'drain fenced' });
  });
});
