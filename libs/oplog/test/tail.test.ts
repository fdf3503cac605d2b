// The oplog tail replay (tail.ts) against fetches that misbehave the way a
// real one can: ending early (a connection cut as a slow consumer), delivering
// nothing, redelivering older messages. Whatever they do, the replay returns the
// whole tail in order or fails UNAVAILABLE; it never returns part of it.
import fc from 'fast-check';
import { ErrorCode, isStrataError } from '@strata/errors';
import type { JetStreamClient } from '@nats-io/jetstream';
import { oplogFetcher, readTail, type FetchFrom, type TailMessage } from '../src/tail';

/** A subject's messages at the given stream sequences (other subjects fill the gaps). */
function stored(seqs: number[]): TailMessage[] {
  return seqs.map((seq) => ({ seq, data: new Uint8Array([seq & 0xff]) }));
}

/**
 * A fetch that follows a script: each call delivers the stored messages from `from`
 * on, at most script[call] of them (0: nothing), after first redelivering `replays`
 * older ones; past the script's end, everything.
 */
function scripted(messages: TailMessage[], script: number[], replays = 0): FetchFrom & { calls: number } {
  const fetch = Object.assign(
    async function* (from: number): AsyncIterable<TailMessage> {
      const limit = script[fetch.calls++] ?? Infinity;
      const older = messages.filter((m) => m.seq < from).slice(-replays);
      for (const m of older) yield m;
      let n = 0;
      for (const m of messages) {
        if (m.seq < from) continue;
        if (n++ >= limit) return;
        yield m;
      }
    },
    { calls: 0 },
  );
  return fetch;
}

describe('oplog tail replay', () => {
  const tail = stored([11, 12, 14, 17, 18, 20]);

  it('reads (drained, lastSeq] in one fetch that delivers it all', async () => {
    const fetch = scripted(tail, []);
    const got = await readTail({ drained: 10, lastSeq: 20, timeoutMs: 1_000 }, fetch);
    expect(got.map((m) => m.seq)).toEqual([11, 12, 14, 17, 18, 20]);
    expect(fetch.calls).toBe(1);
  });

  it('asks again from the next sequence after a fetch that ended early, and after an empty one', async () => {
    const fetch = scripted(tail, [2, 0, 1, 0, 0]);
    const got = await readTail({ drained: 10, lastSeq: 20, timeoutMs: 1_000 }, fetch);
    expect(got.map((m) => m.seq)).toEqual([11, 12, 14, 17, 18, 20]);
    expect(fetch.calls).toBe(6);
  });

  it('fails UNAVAILABLE, naming how far it got, rather than return a partial tail', async () => {
    // The losing run's shape: the first fetch ends after a few messages and the rest come back empty.
    const fetch = scripted(tail, [2, ...Array<number>(50).fill(0)]);
    const err = await readTail({ drained: 10, lastSeq: 20, timeoutMs: 10_000, emptyFetchesMax: 5 }, fetch).catch((e: unknown) => e);
    expect(isStrataError(err, ErrorCode.UNAVAILABLE)).toBe(true);
    expect((err as Error).message).toMatch(/reached sequence 12 of 20 \(drained 10\)/);
  });

  it('fails at its deadline while fetches keep coming back empty', async () => {
    const slowEmpty: FetchFrom = async function* () {
      await new Promise((r) => setTimeout(r, 20));
    };
    const err = await readTail({ drained: 0, lastSeq: 5, timeoutMs: 100, emptyFetchesMax: 1_000 }, slowEmpty).catch((e: unknown) => e);
    expect(isStrataError(err, ErrorCode.UNAVAILABLE)).toBe(true);
  });

  it('reads nothing when everything is drained', async () => {
    const fetch = scripted(tail, []);
    expect(await readTail({ drained: 20, lastSeq: 20, timeoutMs: 1_000 }, fetch)).toEqual([]);
    expect(fetch.calls).toBe(0);
  });

  it('returns exactly the tail, in order, or throws, whatever the fetches do (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uniqueArray(fc.integer({ min: 1, max: 200 }), { minLength: 1, maxLength: 60 }),
        fc.array(fc.integer({ min: 0, max: 5 }), { maxLength: 40 }),
        fc.integer({ min: 0, max: 3 }),
        fc.integer({ min: 0, max: 200 }),
        async (seqs, script, replays, drained) => {
          const messages = stored([...seqs].sort((a, b) => a - b));
          const lastSeq = messages.at(-1)!.seq;
          const want = messages.filter((m) => m.seq > drained).map((m) => m.seq);
          let got: number[] | undefined;
          try {
            got = (await readTail({ drained, lastSeq, timeoutMs: 5_000, emptyFetchesMax: 3 }, scripted(messages, script, replays))).map((m) => m.seq);
          } catch (err) {
            expect(isStrataError(err, ErrorCode.UNAVAILABLE)).toBe(true);
            // Only a run of empty fetches may make it give up.
            expect(script.some((n, i) => n === 0 && script[i + 1] === 0 && script[i + 2] === 0)).toBe(true);
            return;
          }
          expect(got).toEqual(want);
        },
      ),
      { numRuns: 300 },
    );
  });
});

/** A JetStream pull status error as the client throws it (503: no responders, 400: bad request). */
function pullStatus(code: number, description: string): Error {
  return Object.assign(new Error(description), { name: 'JetStreamStatusError', code });
}

/**
 * A JetStream client whose consumers' fetches deliver `messages` from the consumer's
 * start sequence, except that the pulls of the first `failing` consumers end with `error`.
 */
function fakeJetStream(messages: TailMessage[], failing: number, error: Error): { js: JetStreamClient; made: number; deleted: number } {
  const state = { made: 0, deleted: 0 };
  const consumers = {
    get: async (_stream: string, opts: { opt_start_seq: number }) => {
      const fails = state.made++ < failing;
      return {
        delete: async () => {
          state.deleted++;
          return true;
        },
        fetch: async () => ({
          stop: () => undefined,
          async *[Symbol.asyncIterator]() {
            if (fails) throw error;
            for (const m of messages) if (m.seq >= opts.opt_start_seq) yield m;
          },
        }),
      };
    },
  };
  return Object.assign(state, { js: { consumers } as unknown as JetStreamClient });
}

describe('oplog fetcher', () => {
  it('ends a fetch no server answered (503), pauses, and lets the replay make a new consumer', async () => {
    const messages = stored([3, 4, 6]);
    const fake = fakeJetStream(messages, 2, pullStatus(503, 'no responders'));
    const started = Date.now();
    const tail = await readTail({ drained: 2, lastSeq: 6, timeoutMs: 5_000 }, oplogFetcher(fake.js, 'OPLOG', 'oplog.1'));
    expect(tail.map((m) => m.seq)).toEqual([3, 4, 6]);
    expect({ made: fake.made, deleted: fake.deleted }).toEqual({ made: 3, deleted: 3 });
    // Two pauses between the consumers, not a spin.
    expect(Date.now() - started).toBeGreaterThanOrEqual(300);
  });

  it('fails UNAVAILABLE when no server answers for the replay\'s empty fetches, not a partial tail', async () => {
    const fake = fakeJetStream(stored([3]), Infinity, pullStatus(503, 'no responders'));
    const err = await readTail({ drained: 2, lastSeq: 3, timeoutMs: 10_000, emptyFetchesMax: 3 }, oplogFetcher(fake.js, 'OPLOG', 'oplog.1')).catch((e: unknown) => e);
    expect(isStrataError(err, ErrorCode.UNAVAILABLE)).toBe(true);
    expect(fake.made).toBe(3);
  });

  it('passes any other pull error through', async () => {
    const bad = pullStatus(400, 'bad request');
    const fake = fakeJetStream(stored([3]), 1, bad);
    await expect(readTail({ drained: 2, lastSeq: 3, timeoutMs: 5_000 }, oplogFetcher(fake.js, 'OPLOG', 'oplog.1'))).rejects.toBe(bad);
    expect(fake.deleted).toBe(1);
  });
});
