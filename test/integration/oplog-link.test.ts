// The oplog link against a real three-server cluster: oplog appends go straight to
// the server leading the stream, follow the leader when it moves, and fall back to the
// actor's own connection where there is nothing to gain (one server, or the actor's
// server leads).
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstream, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { createLogger } from '@strata/log';
import { OplogLink } from '@strata/vdisk-controller';
import { startTopology, uniqueName, waitFor, type NatsTopology } from '../harness';
import { isConnectionError } from '../harness/verify';
import { envSecurityOptions } from '../harness/suite-security';

const log = createLogger({ service: 'test', level: 'silent' });

async function leaderOf(jsm: JetStreamManager, stream: string): Promise<string | undefined> {
  return (await jsm.streams.info(stream)).cluster?.leader;
}

describe('oplog link, three-server cluster', () => {
  let nats: NatsTopology;
  const conns: NatsConnection[] = [];
  let jsm: JetStreamManager;
  const stream = uniqueName('OPLOGLINK');

  beforeAll(async () => {
    nats = await startTopology('cluster');
    for (const url of nats.url.split(',')) conns.push(await connect({ servers: [url], noRandomize: true, ...envSecurityOptions() }));
    jsm = await jetstreamManager(conns[0]!);
    await jsm.streams.add({ name: stream, subjects: [`${stream}.>`], num_replicas: 3 });
    await waitFor('the stream to have a leader', 10_000, async () => (await leaderOf(jsm, stream)) !== undefined, { retryIf: isConnectionError });
  });
  afterAll(async () => {
    await Promise.all(conns.map((c) => c.close()));
    await nats?.stop();
  });

  it('links a connection on a follower to the leader, and the actor connection on the leader to nothing', async () => {
    const leader = (await leaderOf(jsm, stream))!;
    for (const nc of conns) {
      const link = OplogLink.start({ nc, stream, log, recheckMs: 60_000, retireAfterMs: 1_000 });
      try {
        await link.settled();
        if (nc.info?.server_name === leader) {
          expect(link.server).toBeUndefined();
        } else {
          expect(link.server).toBe(leader);
          const ack = await link.js.publish(`${stream}.x`, new Uint8Array([1]));
          expect(ack.stream).toBe(stream);
        }
      } finally {
        await link.stop();
      }
    }
  });

  it('follows the leader when it moves', async () => {
    const before = (await leaderOf(jsm, stream))!;
    const follower = conns.find((c) => c.info?.server_name !== before)!;
    const link = OplogLink.start({ nc: follower, stream, log, recheckMs: 60_000, retireAfterMs: 1_000 });
    try {
      await link.settled();
      expect(link.server).toBe(before);
      // Step down until the new leader is a third server, not the follower the link starts from.
      let after = before;
      for (let attempt = 0; attempt < 6 && (after === before || after === follower.info?.server_name); attempt++) {
        await follower.request(`$JS.API.STREAM.LEADER.STEPDOWN.${stream}`, undefined, { timeout: 5_000 });
        // While the stream elects, its info may not answer (503, a timeout): that is "not yet".
        await waitFor(
          'a new leader',
          10_000,
          async () => {
            const now = await leaderOf(jsm, stream);
            return now !== undefined && now !== after;
          },
          { retryIf: isConnectionError },
        );
        after = (await leaderOf(jsm, stream))!;
      }
      if (after === follower.info?.server_name) {
        // The follower itself leads now: appends go over its own connection.
        await waitFor('the link to drop', 10_000, () => link.server === undefined);
      } else {
        await waitFor(`the link to move to ${after}`, 10_000, () => link.server === after);
      }
      const ack = await jetstream(follower).publish(`${stream}.y`, new Uint8Array([2]));
      expect(ack.stream).toBe(stream);
      const viaLink = await link.js.publish(`${stream}.z`, new Uint8Array([3]));
      expect(viaLink.seq).toBe(ack.seq + 1);
    } finally {
      await link.stop();
    }
  });
});

describe('oplog link, one server', () => {
  it('keeps appends on the actor connection', async () => {
    const nats = await startTopology('single');
    const nc = await connect({ servers: nats.url, ...envSecurityOptions() });
    try {
      const stream = uniqueName('OPLOGONE');
      await (await jetstreamManager(nc)).streams.add({ name: stream, subjects: [`${stream}.>`], num_replicas: 1 });
      const link = OplogLink.start({ nc, stream, log, recheckMs: 60_000, retireAfterMs: 1_000 });
      await link.settled();
      expect(link.server).toBeUndefined();
      expect((await link.js.publish(`${stream}.x`, new Uint8Array([1]))).seq).toBe(1);
      await link.stop();
    } finally {
      await nc.close();
      await nats.stop();
    }
  });
});
