import { ErrorCode, isStrataError } from '@strata/errors';
import { isClusterForming, isElecting, whileClusterForms, whileElecting } from '@strata/kv';

/** An error shaped like the client's JetStreamApiError (its code is the API's err_code). */
function apiError(code: number, description: string): Error {
  return Object.assign(new Error(description), { name: 'JetStreamApiError', code });
}

describe('isClusterForming', () => {
  it('recognises the failures of a cluster that has not formed yet, and nothing else', () => {
    expect(isClusterForming(apiError(10005, 'no suitable peers for placement'))).toBe(true);
    expect(isClusterForming(apiError(10023, 'insufficient resources'))).toBe(true);
    expect(isClusterForming(Object.assign(new Error('timeout'), { name: 'TimeoutError' }))).toBe(true);
    expect(isClusterForming(apiError(10058, 'stream name already in use with a different configuration'))).toBe(false);
    expect(isClusterForming(apiError(10052, 'replicas > 1 not supported in non-clustered mode'))).toBe(false);
    expect(isClusterForming(new Error('permissions violation'))).toBe(false);
    expect(isClusterForming(undefined)).toBe(false);
  });
});

describe('whileClusterForms', () => {
  it('retries while the cluster forms and returns the first success', async () => {
    let calls = 0;
    const created = await whileClusterForms('creating bucket b', async () => {
      calls += 1;
      if (calls < 3) throw apiError(10005, 'no suitable peers for placement');
      return 'bound';
    }, { pauseMs: 1 });
    expect(created).toBe('bound');
    expect(calls).toBe(3);
  });

  it('passes any other failure through at once', async () => {
    let calls = 0;
    const other = apiError(10058, 'stream name already in use with a different configuration');
    await expect(whileClusterForms('creating stream S', async () => {
      calls += 1;
      throw other;
    }, { pauseMs: 1 })).rejects.toBe(other);
    expect(calls).toBe(1);
  });

  it('gives up after its deadline with UNAVAILABLE naming what it was creating', async () => {
    const err = await whileClusterForms('creating bucket own', () => Promise.reject(apiError(10005, 'no suitable peers for placement')), { deadlineMs: 30, pauseMs: 5 }).catch((e: unknown) => e);
    expect(isStrataError(err, ErrorCode.UNAVAILABLE)).toBe(true);
    expect((err as Error).message).toMatch(/^creating bucket own: the NATS cluster has not formed after 30 ms: no suitable peers for placement$/);
  });
});

describe('whileElecting', () => {
  const electing = Object.assign(new Error('JetStream system temporarily unavailable'), { code: 10008 });

  it('recognises a read that found no stream leader, and nothing else', () => {
    expect(isElecting(electing)).toBe(true);
    expect(isElecting(new Error("no responders: '$JS.API.STREAM.MSG.GET.KV_own'"))).toBe(true);
    expect(isElecting(new Error('wrong last sequence: 4'))).toBe(false);
    expect(isElecting(new Error('Permissions Violation for Publish to "$JS.API.STREAM.MSG.GET.KV_own"'))).toBe(false);
  });

  it('reads again while the stream elects a leader, and gives the answer once there is one', async () => {
    let calls = 0;
    const value = await whileElecting(async () => {
      calls++;
      if (calls < 3) throw electing;
      return 'v';
    }, 2_000, 10);
    expect({ value, calls }).toEqual({ value: 'v', calls: 3 });
  });

  it('gives up after its deadline with the last error, and never retries another failure', async () => {
    let calls = 0;
    await expect(whileElecting(async () => {
      calls++;
      throw electing;
    }, 100, 20)).rejects.toBe(electing);
    expect(calls).toBeGreaterThanOrEqual(3);
    expect(calls).toBeLessThanOrEqual(6);
    const other = new Error('timeout');
    let once = 0;
    await expect(whileElecting(async () => {
      once++;
      throw other;
    }, 1_000, 10)).rejects.toBe(other);
    expect(once).toBe(1);
  });
});
