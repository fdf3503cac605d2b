// The master's judgment of hosts, and an agent's judgment of its own isolation.
import { hostState, isIsolated, recordFresh } from '../src/host-view';

describe('hostState', () => {
  const dead = 3_000;
  test('alive while heartbeats arrive; isolated when its heartbeat says so', () => {
    expect(hostState({ heartbeatAtMs: 10_000 }, 12_000, dead, 0)).toBe('alive');
    expect(hostState({ heartbeatAtMs: 10_000, heartbeatIsolated: true }, 12_000, dead, 0)).toBe('isolated');
  });

  test('partitioned while only its host record changes; isolated when the record says so', () => {
    const record = { incarnation: 1, seq: 4, sinceMs: 11_000, isolated: false };
    expect(hostState({ heartbeatAtMs: 5_000, record }, 12_000, dead, 0)).toBe('partitioned');
    expect(hostState({ record: { ...record, isolated: true } }, 12_000, dead, 0)).toBe('isolated');
  });

  test('unknown until the master has watched a whole dead timeout, dead afterwards', () => {
    expect(hostState(undefined, 2_000, dead, 0)).toBe('unknown');
    expect(hostState(undefined, 3_000, dead, 0)).toBe('dead');
    expect(hostState({ heartbeatAtMs: 1_000, record: { incarnation: 1, seq: 4, sinceMs: 1_000, isolated: false } }, 4_000, dead, 0)).toBe('dead');
  });
});

describe('isIsolated', () => {
  const base = { startedAtMs: 0, timeoutMs: 2_000, otherHosts: 2 };
  test('isolated only when no other agent was heard and the ha bucket was not reached for the timeout', () => {
    expect(isIsolated({ ...base, lastHeardOtherMs: 1_000, lastStorageOkMs: 1_000, nowMs: 3_000 })).toBe(true);
    expect(isIsolated({ ...base, lastHeardOtherMs: 1_000, lastStorageOkMs: 1_000, nowMs: 2_999 })).toBe(false);
    expect(isIsolated({ ...base, lastHeardOtherMs: 2_500, lastStorageOkMs: 0, nowMs: 3_000 })).toBe(false);
    expect(isIsolated({ ...base, lastHeardOtherMs: 0, lastStorageOkMs: 2_500, nowMs: 3_000 })).toBe(false);
  });

  test('from start-up, silence counts from the start; a lone host is never isolated', () => {
    expect(isIsolated({ ...base, lastHeardOtherMs: undefined, lastStorageOkMs: undefined, nowMs: 2_000 })).toBe(true);
    expect(isIsolated({ ...base, lastHeardOtherMs: undefined, lastStorageOkMs: undefined, nowMs: 1_999 })).toBe(false);
    expect(isIsolated({ ...base, otherHosts: 0, lastHeardOtherMs: undefined, lastStorageOkMs: undefined, nowMs: 60_000 })).toBe(false);
  });
});

describe('recordFresh', () => {
  const record = { incarnation: 1, seq: 4, sinceMs: 10_000, isolated: false };
  test('a host reaches storage while its record changed within three record intervals', () => {
    expect(recordFresh(record, 12_999, 1_000)).toBe(true);
    expect(recordFresh(record, 13_000, 1_000)).toBe(false);
    expect(recordFresh(undefined, 0, 1_000)).toBe(false);
  });
});
