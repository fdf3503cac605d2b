// The oplog tail replay against real nats-servers, in the conditions that once lost
// 54 MiB of acknowledged writes: a tail of large entries (here 150 of 768 KiB, more
// than a connection's 64 MiB pending limit) read by a controller whose event loop is
// busy when the first message arrives. An unbounded fetch then overran the
// connection, the server cut it as a slow consumer, and the replay kept the few
// entries it had. The replay must return every entry, in order, with its bytes.
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { oplogFetcher, readTail, type FetchFrom } from '@strata/oplog';
import { startTopology, topologies, uniqueName, waitFor, type NatsTopology } from '../harness';
import { isConnectionError } from '../harness/verify';
import { envSecurityOptions } from '../harness/suite-security';

const ENTRIES = 150;
const ENTRY_BYTES = 768 * 1024;
/** Small entries: a fetch bounded in bytes still ends at nats.js's default count, with a 409 status. */
const SMALL_ENTRIES = 350;

/** `fetch`, with the event loop blocked for `ms` when the first message of the replay arrives. */
function busyAtFirstMessage(fetch: FetchFrom, ms: number): FetchFrom {
  let blocked = false;
  return async function* (from) {
    for await (const m of fetch(from)) {
      if (!blocked) {
        blocked = true;
        const until = Date.now() + ms;
        while (Date.now() < until) {
          // Busy: nothing is read from the socket meanwhile.
        }
      }
      yield m;
    }
  };
}

describe.each(topologies)('oplog tail replay, %s', (kind) => {
  let nats: NatsTopology;
  let nc: NatsConnection;
  const stream = uniqueName('REPLAY');

  beforeAll(async () => {
    nats = await startTopology(kind);
    nc = await connect({ servers: nats.url.split(','), maxReconnectAttempts: -1, reconnectTimeWait: 100, ...envSecurityOptions() });
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: stream, subjects: [`${stream}.>`], num_replicas: kind === 'cluster' ? 3 : 1, max_msg_size: 8 * 2 ** 20 });
    await waitFor('the stream to have a leader', 10_000, async () => kind === 'single' || (await jsm.streams.info(stream)).cluster?.leader !== undefined, { retryIf: isConnectionError });
    const js = jetstream(nc);
    // Another subject's messages in between, as other vDisks' are in the real oplog.
    for (let i = 1; i <= ENTRIES; i++) {
      const body = new Uint8Array(ENTRY_BYTES).fill(i & 0xff);
      await js.publish(`${stream}.v1`, body);
      if (i % 10 === 0) await js.publish(`${stream}.v2`, new Uint8Array([i]));
    }
  }, 120_000);
  afterAll(async () => {
    await nc?.close();
    await nats?.stop();
  });

  it('returns every entry after the drained one, with its bytes, while the reader is busy', async () => {
    const js = jetstream(nc);
    const jsm = await jetstreamManager(nc);
    const last = await jsm.streams.getMessage(stream, { last_by_subj: `${stream}.v1` });
    const drained = 5;
    const tail = await readTail({ drained, lastSeq: last!.seq, timeoutMs: 60_000 }, busyAtFirstMessage(oplogFetcher(js, stream, `${stream}.v1`), 1_500));
    // v1's messages after stream sequence 5: its 6th entry (sequence 6) on.
    expect(tail.length).toBe(ENTRIES - 5);
    let previous = drained;
    tail.forEach((m, i) => {
      expect(m.seq).toBeGreaterThan(previous);
      previous = m.seq;
      expect(m.data.length).toBe(ENTRY_BYTES);
      expect(m.data[0]).toBe((i + 6) & 0xff);
      expect(m.data[ENTRY_BYTES - 1]).toBe((i + 6) & 0xff);
    });
    expect(previous).toBe(last!.seq);
  }, 90_000);

  it('reads a tail of many small entries, more than one fetch holds by count (its pulls end with "batch completed")', async () => {
    const js = jetstream(nc);
    const jsm = await jetstreamManager(nc);
    const subject = `${stream}.small`;
    for (let i = 1; i <= SMALL_ENTRIES; i++) await js.publish(subject, new Uint8Array(16 * 1024).fill(i & 0xff));
    const last = await jsm.streams.getMessage(stream, { last_by_subj: subject });
    const tail = await readTail({ drained: 0, lastSeq: last!.seq, timeoutMs: 60_000 }, oplogFetcher(js, stream, subject));
    expect(tail.length).toBe(SMALL_ENTRIES);
    tail.forEach((m, i) => expect(m.data[0]).toBe((i + 1) & 0xff));
  }, 90_000);
});
