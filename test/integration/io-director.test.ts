// The io-director against real nats-servers (one, and a three-server cluster), when its watched copy of `own` is
// behind the record: a shared vDisk's I/O goes to the owner the copy names, that node
// answers NOT_OWNER, and the director learns the owner from the record itself, so
// the gateway's retry reaches the new owner. The stale copy is made for certain by
// stopping the watch (as happens for good when its consumer's nats-server dies).
// The two owners' admission services are plain responders on the real bus, standing
// in for nodes n2 and n3.
import { connectBus, type Bus, type RequestContext } from '@strata/bus';
import { ErrorCode, StrataError } from '@strata/errors';
import { openBucket, WatchCache } from '@strata/kv';
import { Director } from '@strata/io-director';
import { IoOp, buckets, cfgEntry, ioReadRequest, keys, subjects, vdiskOwnership, type CfgEntry, type VdiskOwnership } from '@strata/proto';
import { startTopology, topologies, type NatsTopology } from '../harness';

const VDISK = 4242n;

describe.each(topologies)('io-director with a stale watched copy of own, %s nats', (kind) => {
  let nats: NatsTopology;
  let bus: Bus;

  beforeAll(async () => {
    nats = await startTopology(kind);
    bus = await connectBus({ name: 'io-director-test', servers: nats.url });
  });
  afterAll(async () => {
    await bus?.close();
    await nats?.stop();
  });

  it('learns the owner from the record after a NOT_OWNER, and the retry reaches the new owner', async () => {
    const own = await openBucket(bus.nc, buckets.own, vdiskOwnership);
    const cfg = await openBucket(bus.nc, buckets.cfg, cfgEntry, { history: 8 });
    const vdisk: CfgEntry = {
      kind: 'vdisk',
      id: VDISK,
      name: 'stale',
      createdAtMs: 1,
      updatedAtMs: 1,
      epoch: 1,
      spec: { container: 1n, sizeBytes: 1 << 20, blockSizeBytes: 1 << 20, shared: true, qos: { priority: 'normal', weight: 1 } },
    };
    await cfg.put(keys.object('vdisk', VDISK), vdisk);
    const record: VdiskOwnership = { owner: 'n2', epoch: 1, volunteers: ['n2', 'n1'], drained: 0 };
    const revision = await own.create(keys.vdiskOwnership(VDISK), record);

    const ownership = await WatchCache.start(own, { key: keys.vdiskOwnershipAll });
    const config = await WatchCache.start(cfg, { key: 'vdisk.>' });
    await Promise.all([ownership.ready, config.ready]);
    const director = new Director({ node: 'n1', bus, own, ownership, config });

    // n2 lost the vDisk (a failover to n3 at epoch 2); n3 serves it.
    const asked: string[] = [];
    const services = await Promise.all([
      bus.serve(subjects.admission('n2', IoOp.read), ioReadRequest, () => {
        asked.push('n2');
        throw new StrataError(ErrorCode.NOT_OWNER, `node n2 does not own vdisk ${VDISK}; n3 does`, { hint: 'n3' });
      }),
      bus.serve(subjects.admission('n3', IoOp.read), ioReadRequest, (req) => {
        asked.push('n3');
        return { data: new Uint8Array(req.length).fill(7) };
      }),
    ]);
    try {
      expect(ownership.get(keys.vdiskOwnership(VDISK))?.value.owner).toBe('n2');
      ownership.stop();
      await own.update(keys.vdiskOwnership(VDISK), { ...record, owner: 'n3', epoch: 2, volunteers: ['n2', 'n1', 'n3'] }, revision);

      const ctx = { remainingMs: () => 5_000 } as unknown as RequestContext;
      const read = { vdisk: VDISK, offset: 0, length: 4096 };
      // The first attempt goes where the stale copy points and fails retryably...
      await expect(director.handle(IoOp.read, read, ctx)).rejects.toMatchObject({ code: ErrorCode.NOT_OWNER, retryable: true });
      // ...and the retry, as the gateway sends it, reaches the new owner.
      const reply = (await director.handle(IoOp.read, read, ctx)) as { data: Uint8Array };
      expect(reply.data).toEqual(new Uint8Array(4096).fill(7));
      expect(asked).toEqual(['n2', 'n3']);
      // The copy never caught up: the director serves by what it learnt.
      expect(ownership.get(keys.vdiskOwnership(VDISK))?.value.owner).toBe('n2');
    } finally {
      await Promise.all(services.map((s) => s.stop()));
      config.stop();
    }
  });
});
