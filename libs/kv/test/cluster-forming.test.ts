import { ErrorCode, isStrataError } from '@strata/errors';
import { isClusterForming, whileClusterForms } from '@strata/kv';

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
