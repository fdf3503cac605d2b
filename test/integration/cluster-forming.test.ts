// A NATS cluster that is still forming: two of its three servers are up, so the meta
// group has a leader but an R3 stream has nowhere to go ("no suitable peers for
// placement"). Creating a bucket or a stream then waits for the third server instead
// of failing, so an actor started in that window (a cold start, a server restarting
// under `strata up --nats 3`) comes up rather than exiting.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstreamManager, RetentionPolicy } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { z } from 'zod';
import { uint } from '@strata/codec';
import { ensureStream, openBucket } from '@strata/kv';
import { planNatsServers, waitForJetStream, type NatsServerProcess } from '@strata/natsd';
import { connectClient, sleep } from '../harness';
import { suiteServerOptions } from '../harness/suite-security';
import { track } from '../harness/util';

const counter = z.strictObject({ n: uint });

describe('creating R3 buckets and streams while the cluster forms', () => {
  let dir: string;
  let servers: NatsServerProcess[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'strata-forming-'));
    servers = await planNatsServers({ baseDir: dir, count: 3, ...suiteServerOptions() });
  });
  afterAll(async () => {
    await Promise.all(servers.map((s) => s.stop()));
    rmSync(dir, { recursive: true, force: true });
  });

  async function start(server: NatsServerProcess): Promise<void> {
    await server.start();
    track(server.process()!);
  }

  it('waits for the third server instead of failing with "no suitable peers for placement"', async () => {
    await start(servers[0]!);
    await start(servers[1]!);
    const twoUrl = servers.slice(0, 2).map((s) => s.url).join(',');
    await waitForJetStream(twoUrl);
    const nc = await connectClient(twoUrl);
    try {
      // The window is real: a plain create fails at once while the third is down.
      await expect(new Kvm(nc).create('plain', { replicas: 3 })).rejects.toMatchObject({ code: 10005 });

      const bucket = openBucket(nc, 'formed', counter, { replicas: 3 });
      const stream = ensureStream(nc, { name: 'FORMED', subjects: ['formed.>'], retention: RetentionPolicy.Limits, num_replicas: 3 });
      const settled = { bucket: false, stream: false };
      void bucket.then(() => (settled.bucket = true), () => (settled.bucket = true));
      void stream.then(() => (settled.stream = true), () => (settled.stream = true));
      await sleep(1_500);
      expect(settled).toEqual({ bucket: false, stream: false });

      await start(servers[2]!);
      expect((await (await bucket).kv.status()).streamInfo.config.num_replicas).toBe(3);
      await stream;
      expect((await (await jetstreamManager(nc)).streams.info('FORMED')).config.num_replicas).toBe(3);
    } finally {
      await nc.close();
    }
  }, 60_000);
});
