// A vDisk's read path and drain against a reference model: random writes (through
// the oplog, and direct writes, some of which fail half way through their replica
// writes or at their commit), zeros, reads and drains (some of which fail half way,
// some meeting extent groups with a replica on a hung node, whose blocks must move)
// over a small disk, with every read and the final drained state checked byte for
// byte. The extent groups, the
// vDisk map and the oplog are in-memory fakes of the ports; the logic is the real one.
import { performance } from 'node:perf_hooks';
import { ErrorCode, StrataError } from '@strata/errors';
import type { BlockLocation, EgPiece, OplogOp, VdiskRow } from '@strata/proto';
import type { ExtentChanges, ExtentSpace } from '../src/extent-groups';
import type { Appended, Oplog } from '@strata/oplog';
import { Vdisk, type VdiskPorts } from '../src/vdisk';
import { seededRandom } from '../../../test/harness/random';

const BLOCK = 64;
const EGROUP = 4 * BLOCK;

/** Extent groups as byte arrays, with a switch that makes the next writes fail after writing half their pieces. */
class FakeSpace implements ExtentSpace {
  readonly egroups = new Map<bigint, { bytes: Uint8Array; size: number; extents: Map<number, number> }>();
  /** The open extent group of each lane. */
  private readonly open = new Map<number, bigint>();
  private nextId = 100n;
  failWrites = 0;
  /** Direct writes to fail after writing half their pieces. */
  failPuts = 0;
  readonly puts: Array<{ egroup: bigint; offset: number; bytes: number }> = [];
  /** Extent groups opened for direct writes. */
  readonly laneEgroups = new Set<bigint>();
  /** Extent groups with a replica on a hung node: drain may read them but never write data to them. */
  readonly hung = new Set<bigint>();
  /** While set, writes wait for it. */
  gate: Promise<void> | undefined;
  /** While set, direct writes wait for it. */
  putGate: Promise<void> | undefined;
  /** Writes running now, and the most ever at once. */
  running = 0;
  mostRunning = 0;
  readonly log: Array<{ egroup: bigint; pieceBytes: number; changes: ExtentChanges }> = [];
  readonly reads: Array<{ offset: number; length: number }> = [];

  /** Extent groups another vDisk writes (a clone's blocks): readable, never written. */
  readonly foreign = new Set<bigint>();
  /** Times a snapshot sealed the open extent groups. */
  seals = 0;

  owns(egroup: bigint): Promise<boolean> {
    return Promise.resolve(!this.foreign.has(egroup));
  }

  recordCopy(): Promise<number> {
    return Promise.reject(new Error('not used by this test'));
  }

  /** Extent groups retired by a release: never allocated in or written by drain again. */
  readonly retired = new Set<bigint>();

  retire(egroups: readonly bigint[]): bigint[] {
    const opened = new Set(this.open.values());
    const out = egroups.filter((e) => !opened.has(e));
    for (const e of out) this.retired.add(e);
    return out;
  }

  unretire(egroups: readonly bigint[]): void {
    for (const e of egroups) if (!this.evacuating.has(e)) this.retired.delete(e);
  }

  readonly evacuating = new Set<bigint>();

  evacuate(egroups: readonly bigint[]): bigint[] {
    const out = this.retire(egroups);
    for (const e of out) this.evacuating.add(e);
    return out;
  }

  seal(): void {
    this.seals++;
    this.open.clear();
  }

  writable(egroup: bigint): Promise<boolean> {
    return Promise.resolve(!this.hung.has(egroup) && !this.foreign.has(egroup) && !this.retired.has(egroup));
  }

  allocate(_block: number, length: number, lane = -1): Promise<BlockLocation> {
    let id = this.open.get(lane);
    let eg = id === undefined ? undefined : this.egroups.get(id);
    if (id === undefined || eg === undefined || eg.size + length > EGROUP || this.hung.has(id)) {
      id = this.nextId++;
      this.open.set(lane, id);
      if (lane >= 0) this.laneEgroups.add(id);
      eg = { bytes: new Uint8Array(EGROUP), size: 0, extents: new Map() };
      this.egroups.set(id, eg);
    }
    const location = { egroup: id, offset: eg.size, length };
    eg.size += length;
    return Promise.resolve(location);
  }

  async put(egroup: bigint, pieces: EgPiece[]): Promise<void> {
    await this.putGate;
    if (this.hung.has(egroup)) return Promise.reject(new StrataError(ErrorCode.UNAVAILABLE, `egroup ${egroup} has a replica on a hung node`));
    if (this.retired.has(egroup)) throw new Error(`a direct write to egroup ${egroup}, which was released`);
    const eg = this.egroups.get(egroup)!;
    const apply = (p: EgPiece): void => {
      if ('data' in p) eg.bytes.set(p.data, p.offset);
      else throw new Error('a direct write carries bytes');
    };
    if (this.failPuts > 0) {
      this.failPuts--;
      pieces.slice(0, Math.ceil(pieces.length / 2)).forEach(apply);
      return Promise.reject(new StrataError(ErrorCode.UNAVAILABLE, 'replica unreachable during a direct write'));
    }
    pieces.forEach(apply);
    for (const p of pieces) this.puts.push({ egroup, offset: p.offset, bytes: 'data' in p ? p.data.length : 0 });
    return Promise.resolve();
  }

  async write(egroup: bigint, pieces: EgPiece[], changes: ExtentChanges): Promise<void> {
    this.mostRunning = Math.max(this.mostRunning, ++this.running);
    try {
      await this.gate;
      this.writeNow(egroup, pieces, changes);
    } finally {
      this.running--;
    }
  }

  private writeNow(egroup: bigint, pieces: EgPiece[], changes: ExtentChanges): void {
    if (this.foreign.has(egroup)) throw new Error(`drain wrote egroup ${egroup}, which another vDisk writes`);
    if (this.retired.has(egroup) && (pieces.length > 0 || changes.added.length > 0)) throw new Error(`drain wrote egroup ${egroup}, which was released`);
    if (pieces.length > 0 && this.hung.has(egroup)) throw new Error(`drain wrote data to egroup ${egroup}, which has a hung replica`);
    const eg = this.egroups.get(egroup)!;
    const apply = (p: EgPiece): void => {
      if ('data' in p) eg.bytes.set(p.data, p.offset);
      else eg.bytes.fill(0, p.offset, p.offset + p.zeros);
    };
    if (this.failWrites > 0) {
      this.failWrites--;
      // Half the pieces land on the "replica", then the write fails: like a crash mid-way.
      pieces.slice(0, Math.floor(pieces.length / 2)).forEach(apply);
      throw new StrataError(ErrorCode.UNAVAILABLE, 'replica unreachable');
    }
    pieces.forEach(apply);
    for (const { location } of changes.added) eg.extents.set(location.offset, 1);
    for (const location of changes.freed) eg.extents.set(location.offset, 0);
    this.log.push({ egroup, pieceBytes: pieces.reduce((n, p) => n + ('data' in p ? p.data.length : 0), 0), changes });
  }

  read(location: BlockLocation, offset: number, length: number): Promise<Uint8Array> {
    this.reads.push({ offset, length });
    const eg = this.egroups.get(location.egroup)!;
    return Promise.resolve(eg.bytes.slice(location.offset + offset, location.offset + offset + length));
  }
}

class FakeOplog implements Oplog {
  lastSequence = 0;
  failed = undefined;
  readonly appended: OplogOp[] = [];
  /** Appends to refuse (nothing stored). */
  failAppends = 0;
  /** Every stored entry, for a restart's replay. */
  readonly entries: Array<{ seq: number; ops: OplogOp[] }> = [];
  append(...ops: OplogOp[]): Promise<Appended> {
    if (this.failAppends > 0) {
      this.failAppends--;
      return Promise.reject(new StrataError(ErrorCode.UNAVAILABLE, 'oplog append refused'));
    }
    this.appended.push(...ops);
    const seq = ++this.lastSequence;
    this.entries.push({ seq, ops });
    return Promise.resolve({ seq, span: undefined });
  }
  appendMarker(): Promise<number> {
    return Promise.resolve(++this.lastSequence);
  }
}

const open: Vdisk[] = [];

function setup(sizeBytes: number, drainIdleMs = 3_600_000, undrainedBytesMax = 1 << 30, drainRoundBytesPaced = 1 << 30, directWriteBytesMin = 1 << 30, shape: { readOnly?: boolean } = {}) {
  const rows = new Map<number, { value: VdiskRow; revision: number }>();
  const drained: number[] = [];
  /** What snapshots wrote: `<snapshot>.<row>` -> row; and every generation recorded. */
  const snapshotRows = new Map<string, VdiskRow>();
  const generations: number[] = [];
  const ports: VdiskPorts = {
    recordGeneration: (generation) => {
      generations.push(generation);
      return Promise.resolve();
    },
    putSnapshotRow: (snapshot, row, value) => {
      snapshotRows.set(`${snapshot}.${row}`, structuredClone(value));
      return Promise.resolve();
    },
    getRow: (row) => Promise.resolve(rows.get(row) ?? null),
    putRow: (row, value, revision) => {
      const current = rows.get(row)?.revision ?? 0;
      if (current !== revision) return Promise.reject(new StrataError(ErrorCode.CONFLICT, `row ${row} is at ${current}`));
      rows.set(row, { value, revision: current + 1 });
      return Promise.resolve(current + 1);
    },
    recordDrained: (seq) => {
      drained.push(seq);
      return Promise.resolve();
    },
    purgeBelow: () => Promise.resolve(),
  };
  const space = new FakeSpace();
  const oplog = new FakeOplog();
  const errors: unknown[] = [];
  /** A controller serving the vDisk from `drainedSeq`: it replays the oplog after it, as a restart does. */
  const serve = (drainedSeq: number): Vdisk => {
    const vdisk = new Vdisk(
      { id: 7n, sizeBytes, blockSizeBytes: BLOCK, ...shape, generation: generations.at(-1) ?? 0 },
      oplog,
      space,
      ports,
      // Drain only when the test says so.
      { undrainedBytesMax, drainStartBytes: 1 << 30, drainIdleMs, drainParallelism: 2, drainRoundBytesPaced, rowBlocks: 4, directWriteBytesMin, directLanes: 2 },
      drainedSeq,
      (err) => errors.push(err),
    );
    for (const { seq, ops } of oplog.entries) if (seq > drainedSeq) vdisk.apply(seq, ops);
    open.push(vdisk);
    return vdisk;
  };
  return { vdisk: serve(0), serve, space, rows, drained, errors, ports, oplog, snapshotRows, generations };
}

const far = () => Number.MAX_SAFE_INTEGER;

/** The blocks the vDisk map places in one of `egroups`. */
function mappedTo(rows: ReadonlyMap<number, { value: VdiskRow }>, egroups: ReadonlySet<bigint>): number[] {
  const out: number[] = [];
  for (const { value } of rows.values()) for (const [block, location] of Object.entries(value.blocks)) if (egroups.has(location.egroup)) out.push(Number(block));
  return out;
}

describe('vdisk drain and read path', () => {
  // Closing stops each vDisk's idle-drain timer.
  afterEach(async () => {
    await Promise.all(open.splice(0).map((v) => v.close()));
  });

  it.each([
    ['whole drains', false, false],
    ['paced drains of at most 2 blocks of oplog, and restarts that replay the oplog after the drained sequence', true, false],
    ['direct writes, some failing, and whole drains', false, true],
    ['direct writes, some failing, paced drains of at most 16 bytes of oplog weight, and restarts', true, true],
  ])('matches a byte-array model through random writes, zeros, reads and failing drains: %s', async (_, bounded, direct) => {
    /** Blocks that drains moved out of an extent group with a hung replica, over all seeds. */
    let moved = 0;
    /** Over all seeds: direct writes that failed, and blocks whose extent ended up a staging extent. */
    let failedWrites = 0;
    let adopted = 0;
    /** Direct writes whose replica writes failed, written through the oplog instead. */
    let fellBack = 0;
    for (const seed of [1, 2, 3, 4, 5, 6, 7, 8]) {
      const random = seededRandom(seed);
      const size = 37 * BLOCK + 5; // a short last block
      // Writes of 48 bytes or more are direct (about three in four of them). A reference
      // weighs a sixteenth of its bytes against the oplog's limits, so paced rounds
      // with direct writes are smaller, to stop short as often.
      const { vdisk: first, serve, space, ports, oplog, rows } = setup(size, 3_600_000, 1 << 30, direct ? BLOCK / 4 : 2 * BLOCK, direct ? 48 : 1 << 30);
      let vdisk = first;
      if (bounded) ports.drainPaced = () => true;
      let boundedRounds = 0;
      let lastStep = -1;
      const model = new Uint8Array(size);
      const range = (): [number, number] => {
        const offset = Math.floor(random() * size);
        const length = 1 + Math.floor(random() * Math.min(size - offset, 3 * BLOCK));
        return [offset, length];
      };
      try {
        for (let step = 0; step < 400; step++) {
          lastStep = step;
          const r = random();
          const [offset, length] = range();
          if (r < 0.45) {
            const data = Uint8Array.from({ length }, () => 1 + Math.floor(random() * 255));
            // A direct write fails half way through its replica writes (and goes through
            // the oplog instead), or at its commit (and is not acknowledged).
            const fault = direct ? random() : 1;
            if (fault < 0.05) space.failPuts = 1;
            else if (fault < 0.1) oplog.failAppends = 1;
            const outcome = await vdisk.write(offset, data, far()).then(
              () => 'written',
              (err: Error) => err.message,
            );
            if (fault < 0.05 && length >= 48) {
              // The replicas failed it: it went through the oplog instead.
              expect(outcome).toBe('written');
              expect(oplog.appended.at(-1)).toMatchObject({ op: 'write', offset });
              fellBack++;
            }
            if (outcome === 'written') model.set(data, offset);
            else {
              // Not acknowledged: the old bytes, never a mix.
              failedWrites++;
              expect(Buffer.from(await vdisk.read(offset, length))).toEqual(Buffer.from(model.subarray(offset, offset + length)));
            }
            space.failPuts = 0;
            oplog.failAppends = 0;
          } else if (r < 0.55) {
            await vdisk.zero(offset, length);
            model.fill(0, offset, offset + length);
          } else if (r < 0.85) {
            expect(Buffer.from(await vdisk.read(offset, length))).toEqual(Buffer.from(model.subarray(offset, offset + length)));
          } else if (bounded && r < 0.88) {
            // A new controller: what was drained is in the extents, the rest is replayed.
            await vdisk.close();
            vdisk = serve(vdisk.drained);
          } else {
            // Now and then a node hangs (an extent group's replica there stops
            // answering), or a hung one comes back.
            if (random() < 0.25 && space.egroups.size > 0) {
              const ids = [...space.egroups.keys()];
              const egroup = ids[Math.floor(random() * ids.length)]!;
              if (!space.hung.delete(egroup)) space.hung.add(egroup);
            }
            const before = mappedTo(rows, space.hung);
            const armed = random() < 0.3;
            space.failWrites = armed ? 1 : 0;
            const outcome = await vdisk.drain().then(
              () => 'drained',
              (err: Error) => err.message,
            );
            if (outcome === 'drained') moved += before.filter((b) => !mappedTo(rows, space.hung).includes(b)).length;
            // A drain fails exactly when it met the failing write (one with nothing to write meets none).
            const metFailure = armed && space.failWrites === 0;
            expect(outcome).toBe(metFailure ? 'replica unreachable' : 'drained');
            space.failWrites = 0;
            if (vdisk.drained < oplog.lastSequence && outcome === 'drained') boundedRounds++;
          }
        }
        space.failWrites = 0;
        space.hung.clear();
        // A paced drain takes a round at a time.
        for (let round = 0; round < 1_000 && vdisk.index.blockCount > 0; round++) await vdisk.drain();
        expect(vdisk.index.blockCount).toBe(0);
        // Whole drains never stop short; paced ones did, many times.
        if (bounded) expect(boundedRounds).toBeGreaterThan(5);
        else expect(boundedRounds).toBe(0);
        expect(vdisk.drained).toBe(vdisk.appender.lastSequence);
        expect(Buffer.from(await vdisk.read(0, size))).toEqual(Buffer.from(model));
        adopted += mappedTo(rows, space.laneEgroups).length;
      } catch (err) {
        throw new Error(`seed ${seed}, step ${lastStep}: ${(err as Error).message}`, { cause: err });
      }
    }
    expect(moved).toBeGreaterThan(10);
    if (direct) {
      expect(failedWrites).toBeGreaterThan(20);
      expect(adopted).toBeGreaterThan(20);
      expect(fellBack).toBeGreaterThan(20);
    } else expect(failedWrites + adopted + fellBack).toBe(0);
  });

  it('drains a small overwrite of a block in place: only its bytes, no new extent, no map write', async () => {
    const { vdisk, space, rows } = setup(8 * BLOCK);
    await vdisk.write(0, new Uint8Array(BLOCK).fill(1), far());
    await vdisk.drain();
    const rowRevision = rows.get(0)!.revision;
    space.log.length = 0;

    await vdisk.write(10, new Uint8Array(4).fill(2), far());
    await vdisk.drain();
    expect(space.log).toEqual([{ egroup: 100n, pieceBytes: 4, changes: { added: [], freed: [] } }]);
    expect(rows.get(0)!.revision).toBe(rowRevision);
    expect(Array.from(await vdisk.read(8, 8))).toEqual([1, 1, 2, 2, 2, 2, 1, 1]);
  });

  it('reads only the requested bytes of a drained extent', async () => {
    const { vdisk, space } = setup(8 * BLOCK);
    await vdisk.write(0, new Uint8Array(2 * BLOCK).fill(3), far());
    await vdisk.drain();
    space.reads.length = 0;
    await vdisk.read(BLOCK - 4, 8);
    expect(space.reads).toEqual([
      { offset: BLOCK - 4, length: 4 },
      { offset: 0, length: 4 },
    ]);
  });

  it('answers a read within one drained block with the replica\'s bytes, not a copy; zeros where no extent', async () => {
    const { vdisk, space } = setup(8 * BLOCK);
    await vdisk.write(0, new Uint8Array(2 * BLOCK).fill(3), far());
    await vdisk.drain();
    const answers: Uint8Array[] = [];
    const read = space.read.bind(space);
    space.read = async (location, offset, length) => {
      const data = await read(location, offset, length);
      answers.push(data);
      return data;
    };
    const data = await vdisk.read(BLOCK + 8, 16);
    expect(answers).toHaveLength(1);
    expect(data).toBe(answers[0]);
    expect(Array.from(data)).toEqual(Array(16).fill(3));
    expect(Array.from(await vdisk.read(5 * BLOCK, 8))).toEqual(Array(8).fill(0));
    expect(answers).toHaveLength(1);
  });

  it('gives up the extent of a block zeroed whole, and never allocates for zeros alone', async () => {
    const { vdisk, space, rows } = setup(8 * BLOCK);
    await vdisk.write(BLOCK, new Uint8Array(BLOCK).fill(5), far());
    await vdisk.drain();
    const location = rows.get(0)!.value.blocks['1']!;
    expect(location).toBeDefined();

    await vdisk.zero(0, 3 * BLOCK);
    await vdisk.drain();
    expect(rows.get(0)!.value.blocks['1']).toBeUndefined();
    expect(space.egroups.get(location.egroup)!.extents.get(location.offset)).toBe(0);
    // Blocks 0 and 2 had no extent: zeros on nothing allocate nothing.
    expect(space.egroups.get(location.egroup)!.size).toBe(BLOCK);
    expect(Array.from(await vdisk.read(0, 3 * BLOCK)).every((b) => b === 0)).toBe(true);
  });

  it('reuses the extent it allocated when a drain failed before the map was written', async () => {
    const { vdisk, space, rows } = setup(8 * BLOCK);
    await vdisk.write(0, new Uint8Array(BLOCK).fill(9), far());
    space.failWrites = 1;
    await expect(vdisk.drain()).rejects.toThrow('replica unreachable');
    expect(rows.get(0)).toBeUndefined();
    await vdisk.drain();
    expect(rows.get(0)!.value.blocks['0']).toEqual({ egroup: 100n, offset: 0, length: BLOCK });
    expect(space.egroups.get(100n)!.size).toBe(BLOCK);
  });

  it('drains writes that arrived while a drain was running, with no further writes to prompt it', async () => {
    const { vdisk, space, errors } = setup(8 * BLOCK, 20);
    let release!: () => void;
    space.gate = new Promise((resolve) => (release = resolve));
    await vdisk.write(0, new Uint8Array(8).fill(1), far());
    vdisk.kickDrain();
    await vdisk.write(3 * BLOCK, new Uint8Array(8).fill(2), far());
    // The idle timer of the second write fires while the first drain is held.
    await new Promise((resolve) => setTimeout(resolve, 60));
    release();
    space.gate = undefined;
    const deadline = Date.now() + 5_000;
    while (vdisk.index.blockCount > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
    expect(vdisk.index.blockCount).toBe(0);
    expect(errors).toEqual([]);
    expect(Array.from(await vdisk.read(3 * BLOCK, 8))).toEqual([2, 2, 2, 2, 2, 2, 2, 2]);
  });

  it('stops draining for good once a drain is FENCED, and a write waiting for drain room gets FENCED', async () => {
    // A 2-block oplog limit and a 20 ms idle delay: without the fence, the failed drain would be retried.
    const { vdisk, errors, ports, drained } = setup(8 * BLOCK, 20, 2 * BLOCK);
    const fenced = new StrataError(ErrorCode.FENCED, 'vdisk 7: metadata write fenced at ownership epoch 1, but the vdisk\'s current epoch is 2');
    let rowWrites = 0;
    ports.putRow = () => {
      rowWrites++;
      return Promise.reject(fenced);
    };
    await vdisk.write(0, new Uint8Array(2 * BLOCK).fill(1), far());
    vdisk.kickDrain();
    const deadline = Date.now() + 5_000;
    while (errors.length === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
    expect(errors).toEqual([fenced]);
    expect(vdisk.fenced).toBe(fenced);
    // Several idle delays later: no retry, nothing recorded as drained.
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(rowWrites).toBe(1);
    expect(errors).toHaveLength(1);
    expect(drained).toEqual([]);
    await expect(vdisk.drain()).rejects.toBe(fenced);
    // The oplog is full and will never drain here: the writer learns why at once.
    await expect(vdisk.write(0, new Uint8Array(8), performance.now() + 2_000)).rejects.toBe(fenced);
    // The undrained data is still read from the index.
    expect(Array.from(await vdisk.read(0, 4))).toEqual([1, 1, 1, 1]);
  });

  it('gives drain room to writers in the order they began to wait, so small writes cannot starve a large one', async () => {
    const { vdisk, oplog, space } = setup(16 * BLOCK, 3_600_000, 4 * BLOCK);
    await vdisk.write(0, new Uint8Array(3 * BLOCK).fill(1), far());
    // The drain the waiting writers kick holds until the test lets it go.
    let letDrainGo = (): void => undefined;
    space.gate = new Promise<void>((resolve) => (letDrainGo = resolve));
    // Room for one block: the large write waits; the small one, which would fit, waits behind it.
    const large = vdisk.write(4 * BLOCK, new Uint8Array(2 * BLOCK).fill(2), far());
    let smallDone = false;
    const small = vdisk.write(8 * BLOCK, new Uint8Array(BLOCK).fill(3), far()).then(() => (smallDone = true));
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(smallDone).toBe(false);
    expect(oplog.appended).toHaveLength(1);
    letDrainGo();
    await Promise.all([large, small]);
    expect(oplog.appended.map((op) => (op.op === 'write' ? op.data[0] : undefined))).toEqual([1, 2, 3]);
  });

  it('drains a paced vDisk a round of at most drainRoundBytesPaced at a time, so a writer waiting for room gets it after the first', async () => {
    for (const paced of [false, true]) {
      // Room for four blocks of oplog; rounds of one block while paced.
      const { vdisk, ports, drained } = setup(16 * BLOCK, 3_600_000, 4 * BLOCK, BLOCK);
      ports.drainPaced = () => paced;
      for (let b = 0; b < 4; b++) await vdisk.write(b * BLOCK, new Uint8Array(BLOCK).fill(b + 1), far());
      // The oplog is full: this write waits for the drain it kicks.
      await vdisk.write(8 * BLOCK, new Uint8Array(BLOCK).fill(9), far());
      expect(drained).toEqual(paced ? [1] : [4]);
      for (let round = 0; round < 10 && vdisk.index.blockCount > 0; round++) await vdisk.drain();
      expect(drained).toEqual(paced ? [1, 2, 3, 4, 5] : [4, 5]);
      expect(Array.from(await vdisk.read(3 * BLOCK, 2))).toEqual([4, 4]);
    }
  });

  it('writes one extent group at a time while drain is paced, and several when not', async () => {
    for (const paced of [false, true]) {
      const { vdisk, space, ports } = setup(16 * BLOCK);
      ports.drainPaced = () => paced;
      // Eight blocks: two extent groups of four.
      await vdisk.write(0, new Uint8Array(8 * BLOCK).fill(5), far());
      await vdisk.drain();
      expect(space.egroups.size).toBe(2);
      expect(space.mostRunning).toBe(paced ? 1 : 2);
      expect(Array.from(await vdisk.read(7 * BLOCK, 2))).toEqual([5, 5]);
    }
  });

  it('makes the staging extent that sequential direct writes filled the block\'s extent, without copying a byte', async () => {
    const { vdisk, space, rows } = setup(8 * BLOCK, 3_600_000, 1 << 30, 1 << 30, BLOCK / 4);
    // Block 1 in four quarters, one after another, as a stream of requests smaller than a block.
    for (let q = 0; q < 4; q++) await vdisk.write(BLOCK + (q * BLOCK) / 4, new Uint8Array(BLOCK / 4).fill(q + 1), far());
    expect(new Set(space.puts.map((p) => `${p.egroup}`)).size).toBe(1);
    await vdisk.drain();
    // Only the map changed: no drain write carried data.
    expect(space.log.map((l) => l.pieceBytes)).toEqual([0]);
    const location = rows.get(0)!.value.blocks['1']!;
    expect(location).toEqual({ egroup: space.puts[0]!.egroup, offset: space.puts[0]!.offset, length: BLOCK });
    expect(Array.from(await vdisk.read(BLOCK + BLOCK / 4 - 1, 2))).toEqual([1, 2]);
  });

  it('copies a direct write into the block\'s extent when a write to its staging extent is in flight, and adopts it later', async () => {
    const { vdisk, space, rows } = setup(8 * BLOCK, 3_600_000, 1 << 30, 1 << 30, BLOCK / 4);
    await vdisk.write(0, new Uint8Array(BLOCK).fill(7), far());
    await vdisk.drain();
    const old = rows.get(0)!.value.blocks['0']!;
    await vdisk.write(0, new Uint8Array(BLOCK / 2).fill(8), far());
    // The second half of the block goes to the same staging extent, and is held there.
    let release!: () => void;
    space.putGate = new Promise((resolve) => (release = resolve));
    const inFlight = vdisk.write(BLOCK / 2, new Uint8Array(BLOCK / 2).fill(9), far());
    space.log.length = 0;
    await vdisk.drain();
    // Not adopted: the first half was copied into the block's extent.
    expect(rows.get(0)!.value.blocks['0']).toEqual(old);
    expect(space.log.map((l) => l.pieceBytes)).toEqual([BLOCK / 2]);
    release();
    space.putGate = undefined;
    await inFlight;
    await vdisk.drain();
    const bytes = await vdisk.read(0, BLOCK);
    expect([bytes[0], bytes[BLOCK / 2 - 1], bytes[BLOCK / 2], bytes[BLOCK - 1]]).toEqual([8, 8, 9, 9]);
  });
});

describe('snapshots: redirect-on-write and the cut', () => {
  afterEach(async () => {
    await Promise.all(open.splice(0).map((v) => v.close()));
  });

  /** The bytes a snapshot's row names for `block`, read from the fake extent groups. */
  const snapshotBytes = async (t: ReturnType<typeof setup>, block: number): Promise<number[]> => {
    const location = t.snapshotRows.get(`99.${Math.floor(block / 4)}`)!.blocks[String(block)]!;
    return Array.from(await t.space.read(location, 0, BLOCK));
  };

  it("after a snapshot, a write to a shared block goes to a new extent (read-merge-write), never into the snapshot's", async () => {
    const t = setup(8 * BLOCK);
    const { vdisk, space, rows } = t;
    await vdisk.write(0, new Uint8Array(4 * BLOCK).fill(0xa), far());
    const cut = await vdisk.snapshot(99n, far());
    expect(cut).toMatchObject({ generation: 1, cutSeq: 1, rows: 1, blocks: 4 });
    expect(t.generations).toEqual([1]);
    expect(space.seals).toBe(1);
    const before = structuredClone(rows.get(0)!.value.blocks);
    expect(t.snapshotRows.get('99.0')!.blocks).toEqual(before);
    // Pattern B: the second half of block 1 and all of block 2.
    await vdisk.write(BLOCK + BLOCK / 2, new Uint8Array(BLOCK / 2 + BLOCK).fill(0xb), far());
    space.log.length = 0;
    await vdisk.drain();
    const after = rows.get(0)!.value.blocks;
    // Blocks 0 and 3 are untouched and still shared; 1 and 2 have new homes at generation 1.
    expect([after['0'], after['3']]).toEqual([before['0'], before['3']]);
    for (const b of ['1', '2']) {
      expect(after[b]!.gen).toBe(1);
      expect(after[b]!.egroup === before[b]!.egroup && after[b]!.offset === before[b]!.offset).toBe(false);
    }
    expect(space.log.flatMap((l) => l.changes.added.map((a) => a.block)).sort()).toEqual([1, 2]);
    // The snapshot still reads A everywhere; the vDisk reads B where it was written, A around it.
    for (let b = 0; b < 4; b++) expect(new Set(await snapshotBytes(t, b))).toEqual(new Set([0xa]));
    const now = Array.from(await vdisk.read(0, 4 * BLOCK));
    expect([now[0], now[BLOCK + BLOCK / 2 - 1], now[BLOCK + BLOCK / 2], now[3 * BLOCK - 1], now[3 * BLOCK]]).toEqual([0xa, 0xa, 0xb, 0xb, 0xa]);
    // A second write to block 1 is at the current generation: in place now.
    await vdisk.write(BLOCK, new Uint8Array(4).fill(0xc), far());
    await vdisk.drain();
    expect(rows.get(0)!.value.blocks['1']).toEqual(after['1']);
  });

  it('moves a block zeroed in part, and gives up a block zeroed whole, without writing the shared extent', async () => {
    const t = setup(8 * BLOCK);
    await t.vdisk.write(0, new Uint8Array(2 * BLOCK).fill(0xa), far());
    await t.vdisk.snapshot(99n, far());
    await t.vdisk.zero(4, 4);
    await t.vdisk.zero(BLOCK, BLOCK);
    await t.vdisk.drain();
    expect(t.rows.get(0)!.value.blocks['1']).toBeUndefined();
    expect(t.rows.get(0)!.value.blocks['0']!.gen).toBe(1);
    expect(new Set(await snapshotBytes(t, 0))).toEqual(new Set([0xa]));
    expect(new Set(await snapshotBytes(t, 1))).toEqual(new Set([0xa]));
    expect(Array.from(await t.vdisk.read(0, 12))).toEqual([0xa, 0xa, 0xa, 0xa, 0, 0, 0, 0, 0xa, 0xa, 0xa, 0xa]);
  });

  it('holds writes that arrive during the cut until the rows are copied: the snapshot has every earlier write and none of them', async () => {
    const t = setup(8 * BLOCK);
    await t.vdisk.write(0, new Uint8Array(BLOCK).fill(1), far());
    // The cut's drain waits on the gate; meanwhile a write arrives.
    let release!: () => void;
    t.space.gate = new Promise((resolve) => (release = resolve));
    const cut = t.vdisk.snapshot(99n, far());
    let stored = false;
    const late = t.vdisk.write(BLOCK, new Uint8Array(BLOCK).fill(2), far()).then(() => (stored = true));
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(stored).toBe(false);
    expect(t.oplog.lastSequence).toBe(1);
    release();
    t.space.gate = undefined;
    const result = await cut;
    await late;
    expect(result.cutSeq).toBe(1);
    expect(result.pauseMs).toBeGreaterThanOrEqual(15);
    expect(Object.keys(t.snapshotRows.get('99.0')!.blocks)).toEqual(['0']);
    await t.vdisk.drain();
    expect(Array.from(await t.vdisk.read(BLOCK, 2))).toEqual([2, 2]);
  });

  it('waits for a write already past the hold: it is stored before the cut, and in the snapshot', async () => {
    const t = setup(8 * BLOCK, 3_600_000, 1 << 30, 1 << 30, BLOCK / 4);
    // A direct write held at its replica write: in flight when the snapshot starts.
    let release!: () => void;
    t.space.putGate = new Promise((resolve) => (release = resolve));
    const early = t.vdisk.write(0, new Uint8Array(BLOCK).fill(3), far());
    const cut = t.vdisk.snapshot(99n, far());
    await new Promise((resolve) => setTimeout(resolve, 10));
    release();
    t.space.putGate = undefined;
    await early;
    const result = await cut;
    expect(result.cutSeq).toBe(1);
    expect(new Set(await snapshotBytes(t, 0))).toEqual(new Set([3]));
  });

  it('fails within its deadline while writes in flight do not finish, records nothing, and lets writes go on', async () => {
    const t = setup(8 * BLOCK, 3_600_000, 1 << 30, 1 << 30, BLOCK / 4);
    let release!: () => void;
    t.space.putGate = new Promise((resolve) => (release = resolve));
    const stuck = t.vdisk.write(0, new Uint8Array(BLOCK).fill(3), far());
    await expect(t.vdisk.snapshot(99n, performance.now() + 30)).rejects.toMatchObject({ code: 'TIMEOUT' });
    expect(t.generations).toEqual([]);
    release();
    t.space.putGate = undefined;
    await stuck;
    await t.vdisk.write(BLOCK, new Uint8Array(4).fill(4), far());
  });

  it('a clone never writes the extent groups it shares with its snapshot: its first write to a block moves it', async () => {
    const t = setup(8 * BLOCK);
    // The clone's rows as copied from a snapshot: block 0 in extent group 50, written by another vDisk.
    t.space.egroups.set(50n, { bytes: new Uint8Array(4 * BLOCK).fill(0xa), size: 4 * BLOCK, extents: new Map() });
    t.space.foreign.add(50n);
    t.rows.set(0, { value: { blocks: { '0': { egroup: 50n, offset: 0, length: BLOCK } } }, revision: 1 });
    await t.vdisk.write(8, new Uint8Array(8).fill(0xc), far());
    await t.vdisk.drain();
    const home = t.rows.get(0)!.value.blocks['0']!;
    expect(home.egroup).not.toBe(50n);
    // The source's bytes are what they were; the clone reads its write over them.
    expect(new Set(t.space.egroups.get(50n)!.bytes)).toEqual(new Set([0xa]));
    expect(Array.from(await t.vdisk.read(4, 8))).toEqual([0xa, 0xa, 0xa, 0xa, 0xc, 0xc, 0xc, 0xc]);
    // No freed extent was recorded in the other vDisk's extent group.
    expect(t.space.log.some((l) => l.egroup === 50n)).toBe(false);
  });

  it('a snapshot is read-only: writes and zeroing are refused INVALID, and it cannot be snapshotted', async () => {
    const t = setup(8 * BLOCK, 3_600_000, 1 << 30, 1 << 30, 1 << 30, { readOnly: true });
    await expect(t.vdisk.write(0, new Uint8Array(4), far())).rejects.toMatchObject({ code: 'INVALID', message: expect.stringMatching(/read-only/) });
    await expect(t.vdisk.zero(0, 4)).rejects.toMatchObject({ code: 'INVALID' });
    await expect(t.vdisk.snapshot(99n, far())).rejects.toMatchObject({ code: 'INVALID' });
    expect(t.oplog.appended).toEqual([]);
  });

  it('a restart serves the vDisk at the recorded generation: blocks drained before the snapshot stay shared', async () => {
    const t = setup(8 * BLOCK);
    await t.vdisk.write(0, new Uint8Array(BLOCK).fill(1), far());
    await t.vdisk.snapshot(99n, far());
    const old = t.rows.get(0)!.value.blocks['0']!;
    await t.vdisk.close();
    const again = t.serve(t.drained.at(-1) ?? 0);
    expect(again.generation).toBe(1);
    await again.write(0, new Uint8Array(2).fill(2), far());
    await again.drain();
    const now = t.rows.get(0)!.value.blocks['0']!;
    expect(now.egroup === old.egroup && now.offset === old.offset).toBe(false);
    expect(new Set(await snapshotBytes(t, 0))).toEqual(new Set([1]));
  });
});

describe("the curator's release of extent groups no row names", () => {
  afterEach(async () => {
    await Promise.all(open.splice(0).map((v) => v.close()));
  });

  /** Direct writes of whole blocks; lane 0 takes the even blocks, 4 to an extent group. */
  const direct = (): ReturnType<typeof setup> => setup(16 * BLOCK, 3_600_000, 1 << 30, 1 << 30, BLOCK / 4);
  const fill = (n: number): Uint8Array => new Uint8Array(BLOCK).fill(n);

  it("keeps a lane's open extent group", async () => {
    const t = direct();
    await t.vdisk.write(0, fill(1), far());
    const lane = t.space.puts[0]!.egroup;
    expect(await t.vdisk.release([lane])).toEqual([]);
  });

  it('keeps an extent group an undrained reference names, and releases it once newer writes cover every reference', async () => {
    const t = direct();
    // Blocks 0, 2, 4, 6 fill extent group X; block 8 opens the next one.
    for (const b of [0, 2, 4, 6, 8]) await t.vdisk.write(b * BLOCK, fill(b + 1), far());
    const x = t.space.puts[0]!.egroup;
    expect(t.space.puts.at(-1)!.egroup).not.toBe(x);
    // Overwritten whole, except the second half of block 0: its reference still names X.
    for (const b of [2, 4, 6]) await t.vdisk.write(b * BLOCK, fill(b + 11), far());
    await t.vdisk.write(0, new Uint8Array(BLOCK / 2).fill(11), far());
    expect(await t.vdisk.release([x])).toEqual([]);
    expect(t.space.retired.has(x)).toBe(false);
    // Covered too: nothing in memory names X any more.
    await t.vdisk.write(BLOCK / 2, new Uint8Array(BLOCK / 2).fill(11), far());
    expect(await t.vdisk.release([x])).toEqual([x]);
    const putsBefore = t.space.puts.length;
    // Every later write and drain goes elsewhere (the fake throws on a write to a released one), and reads are right.
    for (const b of [0, 2, 4, 6, 8, 10]) await t.vdisk.write(b * BLOCK, fill(b + 21), far());
    expect(t.space.puts.slice(putsBefore).some((p) => p.egroup === x)).toBe(false);
    await t.vdisk.drain();
    expect(mappedTo(t.rows, new Set([x]))).toEqual([]);
    for (const b of [0, 2, 4, 6, 8, 10]) expect(new Set(await t.vdisk.read(b * BLOCK, BLOCK))).toEqual(new Set([b + 21]));
  });

  it('keeps an extent group with a direct write in flight to a staging extent there', async () => {
    const t = direct();
    let release!: () => void;
    t.space.putGate = new Promise((resolve) => (release = resolve));
    // Staged and held at the replicas: X is full and no longer open, nothing is committed yet.
    const writes = [0, 2, 4, 6, 8].map((b) => t.vdisk.write(b * BLOCK, fill(b + 1), far()));
    await new Promise((resolve) => setImmediate(resolve));
    const x = [...t.space.laneEgroups][0]!;
    expect(await t.vdisk.release([x])).toEqual([]);
    release();
    t.space.putGate = undefined;
    await Promise.all(writes);
    await t.vdisk.drain();
    expect(new Set(await t.vdisk.read(0, BLOCK))).toEqual(new Set([1]));
  });

  it('keeps an extent group holding an extent a failed drain allocated and has not recorded', async () => {
    const t = setup(16 * BLOCK);
    // Five blocks through the oplog: drain puts four in extent group D and opens the next for the fifth.
    for (let b = 0; b < 5; b++) await t.vdisk.write(b * BLOCK, fill(b + 1), far());
    t.space.failWrites = 1;
    await expect(t.vdisk.drain()).rejects.toThrow('replica unreachable');
    const d = [...t.space.egroups.keys()][0]!;
    expect(mappedTo(t.rows, new Set([d]))).toEqual([]);
    expect(await t.vdisk.release([d])).toEqual([]);
    await t.vdisk.drain();
    expect(mappedTo(t.rows, new Set([d])).length).toBe(4);
  });
});

describe("the curator's compaction of extent groups that are mostly dead", () => {
  afterEach(async () => {
    await Promise.all(open.splice(0).map((v) => v.close()));
  });

  const fill = (n: number): Uint8Array => new Uint8Array(BLOCK).fill(n);

  it('moves every block of an evacuating extent group in the next drain, with its undrained writes, and never writes it again', async () => {
    const t = setup(16 * BLOCK);
    // Blocks 0-3 fill extent group D; block 4 opens the next one.
    for (let b = 0; b < 5; b++) await t.vdisk.write(b * BLOCK, fill(b + 1), far());
    await t.vdisk.drain();
    const d = t.rows.get(0)!.value.blocks['0']!.egroup;
    expect(mappedTo(t.rows, new Set([d])).sort()).toEqual([0, 1, 2, 3]);
    // An undrained write into block 1: the move carries it (read-merge-write).
    await t.vdisk.write(BLOCK + 3, new Uint8Array(2).fill(77), far());
    const open = t.rows.get(1)!.value.blocks['4']!.egroup;
    expect(await t.vdisk.compact([d, open])).toEqual({ evacuating: [d], blocks: 4 });
    // The compaction kicked a drain; wait for it (bounded).
    for (let i = 0; i < 200 && mappedTo(t.rows, new Set([d])).length > 0; i++) await new Promise((resolve) => setTimeout(resolve, 5));
    expect(mappedTo(t.rows, new Set([d]))).toEqual([]);
    expect(t.errors).toEqual([]);
    // No drain wrote D's data (the fake throws on that); its extents were given up.
    expect(t.space.log.filter((l) => l.egroup === d && l.pieceBytes > 0).length).toBe(1);
    expect(t.space.log.filter((l) => l.egroup === d).at(-1)!.changes.freed.length).toBe(4);
    const bytes = await t.vdisk.read(0, 5 * BLOCK);
    for (let b = 0; b < 5; b++) expect(bytes[b * BLOCK]).toBe(b + 1);
    expect(Array.from(bytes.subarray(BLOCK + 2, BLOCK + 6))).toEqual([2, 77, 77, 2]);
    // Nothing holds it now: the release gives it up, and a release that kept it would leave it evacuating.
    expect(await t.vdisk.release([d])).toEqual([d]);
    expect(t.space.retired.has(d)).toBe(true);
  });

  it('queues nothing for an extent group no row names, and a drain with nothing to move does nothing', async () => {
    const t = setup(16 * BLOCK);
    expect(await t.vdisk.compact([999n])).toEqual({ evacuating: [999n], blocks: 0 });
    await t.vdisk.drain();
    expect(t.space.log).toEqual([]);
  });
});
