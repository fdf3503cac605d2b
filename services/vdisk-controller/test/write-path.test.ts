// The write path: a write's append returns its oplog sequence and the vDisk applies
// it to the index. The appender knows the new last sequence a little before the
// writers of that message have applied it (their continuations run one after
// another); a drain that started in between would go up to that sequence without
// their data and record it as drained: lost at the next replay, which starts after it.
import type { Appended, Oplog } from '@strata/oplog';
import type { BlockLocation, EgPiece, OplogOp } from '@strata/proto';
import type { ExtentSpace } from '../src/extent-groups';
import { Vdisk } from '../src/vdisk';
import { NoCuratorRequests } from './no-curator';

const BLOCK = 4096;

/** Group commit by hand: appends wait until `store()` stores them all as one message. */
class BatchingOplog implements Oplog {
  lastSequence = 0;
  failed = undefined;
  private waiting: Array<(appended: Appended) => void> = [];
  append(..._ops: OplogOp[]): Promise<Appended> {
    return new Promise((resolve) => this.waiting.push(resolve));
  }
  appendMarker(): Promise<number> {
    return Promise.resolve(++this.lastSequence);
  }
  /**
   * Stores every waiting append as one message, as OplogAppender does: the last
   * sequence moves first, `meanwhile` runs, then the appends resolve in order.
   */
  store(meanwhile?: () => void): void {
    const seq = ++this.lastSequence;
    meanwhile?.();
    for (const resolve of this.waiting.splice(0)) resolve({ seq, span: undefined });
  }
}

/** Extent groups in memory: one egroup, blocks laid out as allocated. */
class MemorySpace extends NoCuratorRequests implements ExtentSpace {
  readonly bytes = new Uint8Array(64 * BLOCK);
  private next = 0;
  allocate(_block: number, length: number): Promise<BlockLocation> {
    const location = { egroup: 1n, offset: this.next, length };
    this.next += length;
    return Promise.resolve(location);
  }
  put(): Promise<void> {
    return Promise.reject(new Error('no direct writes here'));
  }
  write(_egroup: bigint, pieces: EgPiece[]): Promise<void> {
    for (const p of pieces) if ('data' in p && p.data !== undefined) this.bytes.set(p.data, p.offset);
    return Promise.resolve();
  }
  read(location: BlockLocation, offset: number, length: number): Promise<Uint8Array> {
    return Promise.resolve(this.bytes.slice(location.offset + offset, location.offset + offset + length));
  }
  writable(): Promise<boolean> {
    return Promise.resolve(true);
  }
  owns(): Promise<boolean> {
    return Promise.resolve(true);
  }
  seal(): void {}

}

test('a drain kicked while a message is being stored starts only once its appends are applied', async () => {
  const oplog = new BatchingOplog();
  const space = new MemorySpace();
  const rows = new Map<number, { value: { blocks: Record<string, BlockLocation> }; revision: number }>();
  /** For each drained sequence recorded: whether the extents held every write stored up to it then. */
  const recorded: Array<{ seq: number; durable: boolean[] }> = [];
  const written: Array<{ seq: number; block: number; fill: number }> = [];
  const vdisk: Vdisk = new Vdisk(
    { id: 3n, sizeBytes: 64 * BLOCK, blockSizeBytes: BLOCK },
    oplog,
    space,
    {
      getRow: (row) => Promise.resolve(rows.get(row) ?? null),
      putRow: (row, value, revision) => {
        rows.set(row, { value: value as { blocks: Record<string, BlockLocation> }, revision: revision + 1 });
        return Promise.resolve(revision + 1);
      },
      recordDrained: (seq) => {
        const blocks = rows.get(0)?.value.blocks ?? {};
        const durable = written
          .filter((w) => w.seq <= seq)
          .map((w) => {
            const at = blocks[String(w.block)];
            return at !== undefined && space.bytes[at.offset] === w.fill;
          });
        recorded.push({ seq, durable });
        return Promise.resolve();
      },
      purgeBelow: () => Promise.resolve(),
    },
    // Drains only when kicked.
    { undrainedBytesMax: 1 << 30, drainStartBytes: 1 << 30, drainIdleMs: 3_600_000, drainParallelism: 1, drainRoundBytesPaced: 1 << 30, rowBlocks: 16, directWriteBytesMin: 1 << 30, directLanes: 1 },
    0,
    (err) => {
      throw err;
    },
  );
  try {
    const write = (block: number): Promise<void> => vdisk.write(block * BLOCK, new Uint8Array(BLOCK).fill(block + 1), Number.MAX_SAFE_INTEGER);
    // Block 0 at sequence 1: undrained data, so a kick has something to drain.
    const first = write(0);
    await Promise.resolve();
    oplog.store();
    written.push({ seq: 1, block: 0, fill: 1 });
    await first;
    // Blocks 1 and 2 go out as one message, stored at sequence 2; a drain is kicked
    // in the moment between (as the end of a previous drain may kick the next).
    const batch = [write(1), write(2)];
    await Promise.resolve();
    oplog.store(() => vdisk.kickDrain());
    written.push({ seq: 2, block: 1, fill: 2 }, { seq: 2, block: 2, fill: 3 });
    await Promise.all(batch);
    for (let i = 0; i < 200 && vdisk.drained < 2; i++) await new Promise((resolve) => setTimeout(resolve, 5));
    expect(vdisk.drained).toBe(2);
    expect(recorded).toEqual([{ seq: 2, durable: [true, true, true] }]);
    for (const block of [0, 1, 2]) expect((await vdisk.read(block * BLOCK, BLOCK))[0]).toBe(block + 1);
  } finally {
    await vdisk.close();
  }
});
