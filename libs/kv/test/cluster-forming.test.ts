import { ErrorCode, isStrataError } from '@strata/errors';
import { NoRespondersError, RequestError } from '@nats-io/transport-node';
import { isClusterForming, isElecting, isUndelivered, whileClusterForms, whileElecting, whileUndelivered } from '@strata/kv';

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

describe('whileUndelivered', () => {
  /** What the JetStream client throws for a publish no server took: JetStreamNotEnabled over a RequestError over NoResponders. */
  function undelivered(): Error {
    const subject = '$KV.own.k0';
    const request = new RequestError(`no responders: '${subject}'`, { cause: new NoRespondersError(subject) });
    return Object.assign(new Error('jetstream is not enabled', { cause: request }), { name: 'JetStreamNotEnabled' });
  }

  it('recognises a write that reached no server, and nothing that may have been stored', () => {
    expect(isUndelivered(undelivered())).toBe(true);
    expect(isUndelivered(new NoRespondersError('$KV.own.k0'))).toBe(true);
    // A timeout may have been stored: sending it again could apply it twice.
    expect(isUndelivered(new RequestError('timeout', { cause: Object.assign(new Error('timeout'), { name: 'TimeoutError' }) }))).toBe(false);
    expect(isUndelivered(Object.assign(new Error('wrong last sequence: 4'), { code: 10071 }))).toBe(false);
    expect(isUndelivered(undefined)).toBe(false);
  });

  it('sends the write again until a server takes it', async () => {
    let calls = 0;
    const seq = await whileUndelivered(async () => {
      calls++;
      if (calls < 4) throw undelivered();
      return 17;
    }, 2_000, 5);
    expect({ seq, calls }).toEqual({ seq: 17, calls: 4 });
  });

  it('gives up after its deadline with the last error, and never sends again after another failure', async () => {
    const last = undelivered();
    let calls = 0;
    await expect(whileUndelivered(async () => {
      calls++;
      throw last;
    }, 100, 20)).rejects.toBe(last);
    expect(calls).toBeGreaterThanOrEqual(3);
    expect(calls).toBeLessThanOrEqual(6);
    const conflict = Object.assign(new Error('wrong last sequence: 4'), { code: 10071 });
    let once = 0;
    await expect(whileUndelivered(async () => {
      once++;
      throw conflict;
    }, 1_000, 10)).rejects.toBe(conflict);
    expect(once).toBe(1);
  });
});
