// The io-director against real nats-servers (one, and a three-server cluster), when its watched copy of `own` is
// behind the record: a shared vDisk's I/O goes to the owner the copy names, that node
// answers NOT_OWNER, and the director learns the owner from the record itself, so
// the gateway's retry reaches the new owner; the same when the owner the copy names
// cannot be reached at all (no service answers, as with its host cut off). The stale
// copy is made for certain by stopping the watch (as happens for good when its consumer's nats-server dies).
// The two owners' admission services are plain responders on the real bus, standing
// in for nodes n2 and n3.
// And an unshared vDisk's I/O arriving at a node the config leader does not hold
// alive (its vdisk-controller never started, say) is forwarded to the owner rather
// than pulled here by a relinquish: nothing here would serve it.
import { connectBus, type Bus, type RequestContext } from '@strata/bus';
import { ErrorCode, StrataError } from '@strata/errors';
import { openBucket, WatchCache } from '@strata/kv';
import { Director } from '@strata/io-director';
import {
  IoOp,
  Liveness,
  VdcOp,
  buckets,
  cfgEntry,
  ioReadRequest,
  keys,
  subjects,
  vdcRelinquishRequest,
  vdiskOwnership,
  type CfgEntry,
  type VdiskOwnership,
} from '@strata/proto';
import { startTopology, topologies, waitFor, type NatsTopology } from '../harness';

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
    const record: VdiskOwnership = { owner: 'n2', epoch: 1, volunteers: ['n2', 'n1'], drained: 0, generation: 0 };
    const revision = await own.create(keys.vdiskOwnership(VDISK), record);

    const ownership = await WatchCache.start(own, { key: keys.vdiskOwnershipAll });
    const config = await WatchCache.start(cfg, { key: 'vdisk.>' });
    await Promise.all([ownership.ready, config.ready]);
    const nodes = await WatchCache.start(cfg, { key: 'node.>' });
    await nodes.ready;
    const director = new Director({ node: 'n1', bus, own, ownership, config, nodes });

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
      nodes.stop();
    }
  });

  it('learns the owner from the record when the owner named by the copy cannot be reached, and the retry reaches the new owner', async () => {
    // As when the owner's host is cut off: its subjects have no responders here, the
    // config leader moved the vDisk, and the watch (its consumer on the cut server) stalled.
    const vdiskId = VDISK + 2n;
    const own = await openBucket(bus.nc, buckets.own, vdiskOwnership);
    const cfg = await openBucket(bus.nc, buckets.cfg, cfgEntry, { history: 8 });
    await cfg.put(keys.object('vdisk', vdiskId), {
      kind: 'vdisk',
      id: vdiskId,
      name: 'cut',
      createdAtMs: 1,
      updatedAtMs: 1,
      epoch: 1,
      spec: { container: 1n, sizeBytes: 1 << 20, blockSizeBytes: 1 << 20, shared: true, qos: { priority: 'normal', weight: 1 } },
    });
    const record: VdiskOwnership = { owner: 'n5', epoch: 1, volunteers: ['n5', 'n1'], drained: 0, generation: 0 };
    const revision = await own.create(keys.vdiskOwnership(vdiskId), record);
    const [ownership, config, nodes] = await Promise.all([
      WatchCache.start(own, { key: keys.vdiskOwnershipAll }),
      WatchCache.start(cfg, { key: 'vdisk.>' }),
      WatchCache.start(cfg, { key: 'node.>' }),
    ]);
    await Promise.all([ownership.ready, config.ready, nodes.ready]);
    const director = new Director({ node: 'n1', bus, own, ownership, config, nodes });
    // Nothing serves n5 (cut off); n6 took the vDisk over.
    const service = await bus.serve(subjects.admission('n6', IoOp.read), ioReadRequest, (req) => ({ data: new Uint8Array(req.length).fill(6) }));
    try {
      expect(ownership.get(keys.vdiskOwnership(vdiskId))?.value.owner).toBe('n5');
      ownership.stop();
      await own.update(keys.vdiskOwnership(vdiskId), { ...record, owner: 'n6', epoch: 2, volunteers: ['n5', 'n1', 'n6'] }, revision);

      const ctx = { remainingMs: () => 1_000 } as unknown as RequestContext;
      const read = { vdisk: vdiskId, offset: 0, length: 4096 };
      await expect(director.handle(IoOp.read, read, ctx)).rejects.toMatchObject({ code: expect.stringMatching(/^(UNAVAILABLE|TIMEOUT)$/) as unknown, retryable: true });
      const reply = (await director.handle(IoOp.read, read, ctx)) as { data: Uint8Array };
      expect(reply.data).toEqual(new Uint8Array(4096).fill(6));
      expect(ownership.get(keys.vdiskOwnership(vdiskId))?.value.owner).toBe('n5');
    } finally {
      await service.stop();
      config.stop();
      nodes.stop();
    }
  });

  it('takes an unshared vDisk over only while the config leader holds its own node alive; until then it forwards to the owner', async () => {
    const vdiskId = VDISK + 1n;
    const own = await openBucket(bus.nc, buckets.own, vdiskOwnership);
    const cfg = await openBucket(bus.nc, buckets.cfg, cfgEntry, { history: 8 });
    await cfg.put(keys.object('vdisk', vdiskId), {
      kind: 'vdisk',
      id: vdiskId,
      name: 'moved',
      createdAtMs: 1,
      updatedAtMs: 1,
      epoch: 1,
      spec: { container: 1n, sizeBytes: 1 << 20, blockSizeBytes: 1 << 20, shared: false, qos: { priority: 'normal', weight: 1 } },
    });
    const nodeId = 77n;
    const node = (liveness: Liveness): CfgEntry => ({
      kind: 'node',
      id: nodeId,
      name: 'n4',
      createdAtMs: 1,
      updatedAtMs: 1,
      epoch: 1,
      spec: {},
      status: { liveness, incarnation: 1, changedAtMs: 1 },
    });
    await cfg.put(keys.object('node', nodeId), node(Liveness.unknown));
    await own.create(keys.vdiskOwnership(vdiskId), { owner: 'n2', epoch: 1, volunteers: ['n2', 'n4'], drained: 0 });
    const [ownership, config, nodes] = await Promise.all([
      WatchCache.start(own, { key: keys.vdiskOwnershipAll }),
      WatchCache.start(cfg, { key: 'vdisk.>' }),
      WatchCache.start(cfg, { key: 'node.>' }),
    ]);
    await Promise.all([ownership.ready, config.ready, nodes.ready]);
    const director = new Director({ node: 'n4', bus, own, ownership, config, nodes });

    const asked: string[] = [];
    const services = await Promise.all([
      bus.serve(subjects.admission('n2', IoOp.read), ioReadRequest, (req) => {
        asked.push('n2 read');
        return { data: new Uint8Array(req.length).fill(2) };
      }),
      bus.serve(subjects.controller('n2', VdcOp.relinquish), vdcRelinquishRequest, (req) => {
        asked.push(`n2 relinquish to ${req.to}`);
        return { owner: req.to, epoch: 2 };
      }),
      bus.serve(subjects.admission('n4', IoOp.read), ioReadRequest, (req) => {
        asked.push('n4 read');
        return { data: new Uint8Array(req.length).fill(4) };
      }),
    ]);
    try {
      const ctx = { remainingMs: () => 5_000 } as unknown as RequestContext;
      const read = { vdisk: vdiskId, offset: 0, length: 4096 };
      const first = (await director.handle(IoOp.read, read, ctx)) as { data: Uint8Array };
      expect(first.data).toEqual(new Uint8Array(4096).fill(2));
      expect(asked).toEqual(['n2 read']);

      await cfg.put(keys.object('node', nodeId), node(Liveness.alive));
      const seenAlive = (): boolean => {
        const entry = nodes.get(keys.object('node', nodeId))?.value;
        return entry !== undefined && 'kind' in entry && entry.kind === 'node' && entry.status.liveness === Liveness.alive;
      };
      await waitFor('the director to see n4 alive', 5_000, seenAlive);
      const second = (await director.handle(IoOp.read, read, ctx)) as { data: Uint8Array };
      expect(second.data).toEqual(new Uint8Array(4096).fill(4));
      expect(asked).toEqual(['n2 read', 'n2 relinquish to n4', 'n4 read']);
    } finally {
      await Promise.all(services.map((s) => s.stop()));
      ownership.stop();
      config.stop();
      nodes.stop();
    }
  });
});
