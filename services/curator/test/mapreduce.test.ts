// A scan as MapReduce, the pure part: the partitions split into tasks, the tasks handed
// to curators (slaves first, a failed task to another curator, the master after too
// many attempts, the scan failing when reassignment is off), and the reduce (a partial
// scan's changes onto the last scan's rows). Random failure sequences (fast-check)
// check that every task is mapped exactly once and attempts stay bounded.
import fc from 'fast-check';
import { MD_PARTITIONS, type EgroupEntry, type MapRow } from '@strata/proto';
import { TaskBoard, reduceRows, scanKindFor, splitTasks } from '../src/mapreduce';
import { missingKey, type EgroupRow } from '../src/plan';

const entry = (version: number): EgroupEntry => ({ vdisk: 1n, replicas: [{ node: 'n1', disk: 101n }], version, sizeBytes: 4096 }) as unknown as EgroupEntry;
const row = (egroup: bigint, revision: number, version = 1): MapRow => ({ egroup, revision, entry: entry(version) });

describe('splitTasks', () => {
  it('covers every partition exactly once, in at most one task per partition', () => {
    for (const count of [1, 3, 8, 16, 40]) {
      const tasks = splitTasks(count);
      expect(tasks).toHaveLength(Math.min(count, MD_PARTITIONS));
      expect(tasks.flatMap((t) => t.partitions).sort((a, b) => a - b)).toEqual(Array.from({ length: MD_PARTITIONS }, (_, p) => p));
      for (const t of tasks) expect(t).toMatchObject({ done: false, attempts: 0, pages: 0, entries: 0 });
    }
  });
});

describe('scanKindFor', () => {
  it('is full when asked or due, complete without the last scan rows, else partial', () => {
    expect(scanKindFor({ full: true, fullDue: false, hasBase: true })).toBe('full');
    expect(scanKindFor({ full: false, fullDue: true, hasBase: true })).toBe('full');
    expect(scanKindFor({ full: false, fullDue: false, hasBase: false })).toBe('complete');
    expect(scanKindFor({ full: false, fullDue: false, hasBase: true })).toBe('partial');
  });
});

describe('TaskBoard', () => {
  const options = { master: 'n1', attemptsMax: 2, reassign: true };

  it('hands each task to one curator at a time and counts each curator', () => {
    const board = new TaskBoard(splitTasks(3), options);
    const a = board.take('n2')!;
    const b = board.take('n3')!;
    expect(a.task).not.toBe(b.task);
    board.done(a.task, 'n2', 1, 10);
    expect(board.progress()).toEqual({ done: 1, total: 3, workers: [{ node: 'n2', done: 1, mapping: 0 }, { node: 'n3', done: 0, mapping: 1 }] });
    board.done(b.task, 'n3', 2, 5);
    const c = board.take('n2')!;
    board.done(c.task, 'n2', 1, 1);
    expect(board.finished()).toBe(true);
    expect(board.workers()).toEqual([
      { node: 'n2', tasks: 2 },
      { node: 'n3', tasks: 1 },
    ]);
    expect(board.snapshot().reduce((n, t) => n + t.entries, 0)).toBe(16);
  });

  it('gives a failed task to another slave, takes nothing more from the one that failed, and to the master after attemptsMax', () => {
    const board = new TaskBoard(splitTasks(1), options);
    const t = board.take('n2')!;
    expect(board.failed(t.task, 'n2')).toEqual({ next: 'slave' });
    expect(board.take('n2')).toBeUndefined();
    const again = board.take('n3')!;
    expect(again).toMatchObject({ task: t.task, attempts: 2 });
    expect(board.failed(again.task, 'n3')).toEqual({ next: 'master' });
    // No slave may take it any more; the master does.
    expect(board.take('n4')).toBeUndefined();
    expect(board.take('n1')).toMatchObject({ task: t.task, attempts: 3 });
    board.done(t.task, 'n1', 1, 0);
    expect(board.reassigned).toBe(2);
    expect(board.finished()).toBe(true);
  });

  it('fails the scan when reassignment is off, or when the master itself failed', () => {
    const off = new TaskBoard(splitTasks(2), { ...options, reassign: false });
    expect(off.failed(off.take('n2')!.task, 'n2')).toEqual({ next: 'none' });
    // Nobody takes a task of a scan that failed, the master included.
    expect(off.take('n3')).toBeUndefined();
    expect(off.take('n1')).toBeUndefined();
    const board = new TaskBoard(splitTasks(1), options);
    expect(board.failed(board.take('n1')!.task, 'n1')).toEqual({ next: 'none' });
  });

  it('never hands out a task found done (a resumed scan)', () => {
    const tasks = splitTasks(4).map((t) => (t.task < 3 ? { ...t, done: true, worker: 'n2', pages: 1 } : t));
    const board = new TaskBoard(tasks, options);
    expect(board.take('n3')).toMatchObject({ task: 3 });
    expect(board.take('n2')).toBeUndefined();
    expect(board.progress()).toMatchObject({ done: 3, total: 4 });
  });

  it('refuses a report from a curator that does not map the task', () => {
    const board = new TaskBoard(splitTasks(2), options);
    const t = board.take('n2')!;
    expect(() => board.done(t.task, 'n3', 1, 1)).toThrow(/not mapped by n3/);
  });

  it('maps every task exactly once, with bounded attempts, whatever fails (random runs)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 16 }), fc.integer({ min: 1, max: 4 }), fc.integer({ min: 0, max: 4 }), fc.array(fc.boolean(), { maxLength: 200 }), (count, attemptsMax, slaves, fails) => {
        const board = new TaskBoard(splitTasks(count), { master: 'm', attemptsMax, reassign: true });
        const workers = [...Array.from({ length: slaves }, (_, i) => `s${i}`)];
        let step = 0;
        const mapped = new Map<number, number>();
        // Slaves in turn until none takes a task, then the master (which never fails here).
        for (let progress = true; progress; ) {
          progress = false;
          for (const w of workers) {
            const t = board.take(w);
            if (t === undefined) continue;
            progress = true;
            expect(t.attempts).toBeLessThanOrEqual(attemptsMax);
            if (fails[step++ % Math.max(1, fails.length)] === true) board.failed(t.task, w);
            else {
              board.done(t.task, w, 1, 1);
              mapped.set(t.task, (mapped.get(t.task) ?? 0) + 1);
            }
          }
        }
        for (let t = board.take('m'); t !== undefined; t = board.take('m')) {
          board.done(t.task, 'm', 1, 1);
          mapped.set(t.task, (mapped.get(t.task) ?? 0) + 1);
        }
        expect(board.finished()).toBe(true);
        expect([...mapped.values()].every((n) => n === 1)).toBe(true);
        expect(mapped.size).toBe(Math.min(count, MD_PARTITIONS));
      }),
    );
  });
});

describe('reduceRows', () => {
  it('joins the outputs into sorted rows and the missing replicas', () => {
    const { rows, missing } = reduceRows([
      { rows: [row(7n, 30), row(2n, 10)], missing: [{ egroup: 7n, disk: 101n }] },
      { rows: [row(5n, 20)], missing: [] },
    ]);
    expect(rows.map((r) => r.egroup)).toEqual([2n, 5n, 7n]);
    expect(missing).toEqual(new Set([missingKey(7n, 101n)]));
  });

  it('puts a partial scan’s changes onto the last scan’s rows: newer revisions replace, newer deletions remove, older ones change nothing', () => {
    const base = new Map<bigint, EgroupRow>([
      [1n, row(1n, 10)],
      [2n, row(2n, 11)],
      [3n, row(3n, 40)],
      [4n, row(4n, 13)],
    ]);
    const { rows } = reduceRows(
      [
        {
          rows: [row(1n, 50, 2), row(3n, 30, 9), row(9n, 51)],
          deleted: [
            { egroup: 2n, revision: 52 },
            { egroup: 4n, revision: 5 },
          ],
          missing: [],
        },
      ],
      base,
    );
    expect(rows.map((r) => [r.egroup, r.revision, r.entry.version])).toEqual([
      [1n, 50, 2],
      [3n, 40, 1],
      [4n, 13, 1],
      [9n, 51, 1],
    ]);
    // The base itself is not changed.
    expect(base.size).toBe(4);
  });
});
