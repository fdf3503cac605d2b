// Running out of space (issue 17): a write that cannot be stored is refused NO_SPACE
// before it is acknowledged (a drain or a direct write met NO_SPACE, or the container
// cannot place the backlog plus the write), reads of acknowledged data go on, drain
// retries with a bounded backoff, and once space is freed the oplog drains and writes
// succeed again, with no restart. The extent space and the oplog are small fakes; the
// vDisk is the real one.
import { ErrorCode, StrataError } from '@strata/errors';
import type { BlockLocation, EgPiece, OplogOp, VdiskRow } from '@strata/proto';
import type { ExtentChanges, ExtentSpace } from '../src/extent-groups';
import type { Appended, Oplog } from '@strata/oplog';
import { Vdisk, type DrainFailure, type VdiskPorts } from '../src/vdisk';
import { NoCuratorRequests } from './no-curator';

const BLOCK = 64;
const noSpace = () => new StrataError(ErrorCode.NO_SPACE, 'disk d1: growing the replica would pass its capacity');

/** Extent groups as byte arrays; while `full`, every write, put and new extent group fails NO_SPACE. */
class FullableSpace extends NoCuratorRequests implements ExtentSpace {
  full = false;
  writes = 0;
  private readonly bytes = new Map<bigint, Uint8Array>();
  private next = 0;

  owns(): Promise<boolean> {
    return Promise.resolve(true);
  }

  seal(): void {}

  writable(): Promise<boolean> {
    return Promise.resolve(true);
  }
  allocate(_block: number, length: number): Promise<BlockLocation> {
    if (this.full) return Promise.reject(noSpace());
    const egroup = BigInt(1 + this.next++);
    this.bytes.set(egroup, new Uint8Array(length));
    return Promise.resolve({ egroup, offset: 0, length });
  }
  put(egroup: bigint, pieces: EgPiece[]): Promise<void> {
    if (this.full) return Promise.reject(noSpace());
    for (const p of pieces) if ('data' in p) this.bytes.get(egroup)!.set(p.data, p.offset);
    return Promise.resolve();
  }
  write(egroup: bigint, pieces: EgPiece[], _changes: ExtentChanges): Promise<void> {
    this.writes++;
    if (this.full) return Promise.reject(noSpace());
    for (const p of pieces) {
      if ('data' in p) this.bytes.get(egroup)!.set(p.data, p.offset);
      else this.bytes.get(egroup)!.fill(0, p.offset, p.offset + p.zeros);
    }
    return Promise.resolve();
  }
  read(location: BlockLocation, offset: number, length: number): Promise<Uint8Array> {
    return Promise.resolve(this.bytes.get(location.egroup)!.slice(location.offset + offset, location.offset + offset + length));
  }
}

class MemoryOplog implements Oplog {
  lastSequence = 0;
  failed = undefined;
  readonly appended: OplogOp[] = [];
  append(...ops: OplogOp[]): Promise<Appended> {
    this.appended.push(...ops);
    const seq = ++this.lastSequence;
    return Promise.resolve({ seq, span: undefined });
  }
  appendMarker(): Promise<number> {
    return Promise.resolve(++this.lastSequence);
  }
}

const vdisks: Vdisk[] = [];
afterEach(async () => {
  await Promise.all(vdisks.splice(0).map((v) => v.close()));
});

function setup(options: { roomFor?: VdiskPorts['roomFor']; directWriteBytesMin?: number } = {}) {
  const rows = new Map<number, { value: VdiskRow; revision: number }>();
  const ports: VdiskPorts = {
    getRow: (row) => Promise.resolve(rows.get(row) ?? null),
    putRow: (row, value, revision) => {
      rows.set(row, { value, revision: revision + 1 });
      return Promise.resolve(revision + 1);
    },
    recordDrained: () => Promise.resolve(),
    purgeBelow: () => Promise.resolve(),
    ...(options.roomFor === undefined ? {} : { roomFor: options.roomFor }),
  };
  const space = new FullableSpace();
  const oplog = new MemoryOplog();
  const failures: Array<{ code: string; failure: DrainFailure }> = [];
  const recovered: number[] = [];
  const vdisk = new Vdisk(
    { id: 7n, sizeBytes: 16 * BLOCK, blockSizeBytes: BLOCK },
    oplog,
    space,
    ports,
    { undrainedBytesMax: 1 << 20, drainStartBytes: 1 << 20, drainIdleMs: 10, drainParallelism: 2, drainRoundBytesPaced: 1 << 20, rowBlocks: 4, directWriteBytesMin: options.directWriteBytesMin ?? 1 << 20, directLanes: 1, drainRetryMaxMs: 80 },
    0,
    (err, failure) => failures.push({ code: (err as StrataError).code, failure }),
    (n) => recovered.push(n),
  );
  vdisks.push(vdisk);
  return { vdisk, space, oplog, failures, recovered };
}

const far = () => Number.MAX_SAFE_INTEGER;
const bytes = (fill: number, n = BLOCK) => new Uint8Array(n).fill(fill);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(what: string, check: () => boolean, timeoutMs = 5_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

describe('a vDisk out of space', () => {
  it('refuses writes NO_SPACE once drain meets NO_SPACE, keeps reading what it acknowledged, and drains and writes again once space is freed', async () => {
    const { vdisk, space, oplog, failures, recovered } = setup();
    space.full = true;
    // Acknowledged: stored in the oplog. Its drain then fails NO_SPACE.
    await vdisk.write(0, bytes(0xa1), far());
    await until('a drain to fail NO_SPACE', () => failures.length > 0);
    expect(failures[0]).toMatchObject({ code: 'NO_SPACE', failure: { failures: 1, changed: true } });
    // Not acknowledged: refused before its append.
    const appended = oplog.appended.length;
    await expect(vdisk.write(BLOCK, bytes(0xb2), far())).rejects.toMatchObject({ code: 'NO_SPACE', message: expect.stringMatching(/no space to store writes/) });
    expect(oplog.appended.length).toBe(appended);
    // What was acknowledged reads back, and zeroing (which needs no space) still works.
    expect(await vdisk.read(0, BLOCK)).toEqual(bytes(0xa1));
    await vdisk.zero(2 * BLOCK, BLOCK);
    // Space is freed (a vDisk swept, a disk added): drain gets through, with no restart.
    space.full = false;
    await until('drain to succeed again', () => recovered.length > 0);
    await vdisk.write(BLOCK, bytes(0xb2), far());
    expect(await vdisk.read(0, 2 * BLOCK)).toEqual(new Uint8Array([...bytes(0xa1), ...bytes(0xb2)]));
  });

  it('retries drain with a bounded backoff and reports a change of state once, not every retry', async () => {
    const { vdisk, space, failures } = setup();
    space.full = true;
    await vdisk.write(0, bytes(1), far());
    await until('five failed drains', () => failures.length >= 5);
    const waits = failures.map((f) => f.failure.retryInMs);
    // 10, 20, 40, 80, then capped at drainRetryMaxMs (80).
    expect(waits.slice(0, 5)).toEqual([10, 20, 40, 80, 80]);
    expect(failures.filter((f) => f.failure.changed)).toHaveLength(1);
    // About one attempt per 80 ms once capped: not a busy loop.
    const before = space.writes;
    await sleep(200);
    expect(space.writes - before).toBeLessThanOrEqual(4);
  });

  it('refuses a write the container cannot place (backlog plus the write), before appending it', async () => {
    const asked: Array<[number, number]> = [];
    const { vdisk, oplog } = setup({
      roomFor: (n, backlog) => {
        asked.push([n, backlog]);
        return backlog + n > 2 * BLOCK ? new StrataError(ErrorCode.NO_SPACE, 'container c can place 128 B more') : undefined;
      },
    });
    await vdisk.write(0, bytes(1), far());
    await vdisk.write(BLOCK, bytes(2), far());
    await expect(vdisk.write(2 * BLOCK, bytes(3), far())).rejects.toMatchObject({ code: 'NO_SPACE', message: 'container c can place 128 B more' });
    expect(asked).toEqual([
      [BLOCK, 0],
      [BLOCK, BLOCK],
      [BLOCK, 2 * BLOCK],
    ]);
    expect(oplog.appended).toHaveLength(2);
  });

  it('answers NO_SPACE to a direct write whose replicas have no room, instead of putting it in the oplog', async () => {
    const { vdisk, space, oplog } = setup({ directWriteBytesMin: BLOCK });
    await vdisk.write(0, bytes(1), far());
    space.full = true;
    await expect(vdisk.write(BLOCK, bytes(2), far())).rejects.toMatchObject({ code: 'NO_SPACE' });
    expect(oplog.appended.filter((op) => op.offset === BLOCK)).toEqual([]);
    // And the next write is refused at once, without trying the replicas again.
    await expect(vdisk.write(2 * BLOCK, bytes(3), far())).rejects.toMatchObject({ code: 'NO_SPACE' });
    expect(await vdisk.read(0, BLOCK)).toEqual(bytes(1));
  });
});
