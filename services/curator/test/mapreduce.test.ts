// A scan as MapReduce, the pure part: the partitions split into tasks, the tasks handed
// to curators (slaves first, a failed task to another curator, a straggling one backed
// up by an idle curator, the master after too many attempts or once no slave is left,
// the scan failing when reassignment is off), and the reduce (a partial scan's changes
// onto the last scan's rows). Random runs (fast-check) check that every task is
// counted done exactly once and attempts stay bounded, whatever fails or straggles.
import fc from 'fast-check';
import { MD_PARTITIONS, type EgroupEntry, type MapRow } from '@strata/proto';
import { TaskBoard, reduceRows, scanKindFor, splitTasks } from '../src/mapreduce';
import { missingKey, type EgroupRow } from '../src/plan';

const entry = (version: number): EgroupEntry => ({ vdisk: 1n, replicas: [{ node: 'n1', disk: 101n }], version, sizeBytes: 4096, extents: [] }) as unknown as EgroupEntry;
const row = (egroup: bigint, revision: number, version = 1): MapRow => ({ egroup, revision, entry: entry(version) });
const T = 1_000_000;

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
  const options = { master: 'n1', slaves: ['n2', 'n3', 'n4'], attemptsMax: 2, reassign: true, backupAfterMs: 5_000 };

  it('hands each task to one curator at a time and counts each curator', () => {
    const board = new TaskBoard(splitTasks(3), options);
    const a = board.take('n2', T)!;
    const b = board.take('n3', T)!;
    expect(a.task).not.toBe(b.task);
    expect(board.take('n1', T)).toBeUndefined();
    expect(board.done(a.task, 'n2', 1, 10)).toBe(true);
    expect(board.progress()).toEqual({ done: 1, total: 3, workers: [{ node: 'n2', done: 1, mapping: 0 }, { node: 'n3', done: 0, mapping: 1 }] });
    board.done(b.task, 'n3', 2, 5);
    const c = board.take('n2', T)!;
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
    const t = board.take('n2', T)!;
    expect(board.failed(t.task, 'n2')).toEqual({ next: 'slave' });
    expect(board.take('n2', T)).toBeUndefined();
    expect(board.mayTakeLater('n2')).toBe(false);
    const again = board.take('n3', T)!;
    expect(again).toMatchObject({ task: t.task, attempts: 2 });
    expect(board.failed(again.task, 'n3')).toEqual({ next: 'master' });
    // No slave may take it any more; the master does.
    expect(board.take('n4', T)).toBeUndefined();
    expect(board.take('n1', T)).toMatchObject({ task: t.task, attempts: 3 });
    board.done(t.task, 'n1', 1, 0);
    expect(board.reassigned).toBe(2);
    expect(board.finished()).toBe(true);
  });

  it('lets the master map everything once no slave is left, and only then', () => {
    const alone = new TaskBoard(splitTasks(2), { ...options, slaves: [] });
    expect(alone.take('n1', T)).toMatchObject({ task: 0 });
    const board = new TaskBoard(splitTasks(2), { ...options, slaves: ['n2'] });
    expect(board.take('n1', T)).toBeUndefined();
    board.failed(board.take('n2', T)!.task, 'n2');
    expect(board.take('n1', T)).toMatchObject({ task: 0 });
  });

  it('backs up a task mapped longer than backupAfterMs on an idle curator; the first answer counts, the other is dropped', () => {
    const board = new TaskBoard(splitTasks(2), options);
    const slow = board.take('n2', T)!;
    const quick = board.take('n3', T)!;
    board.done(quick.task, 'n3', 1, 1);
    // Nothing waits: n3 idles until n2's task has run backupAfterMs.
    expect(board.take('n3', T + 4_999)).toBeUndefined();
    expect(board.mayTakeLater('n3')).toBe(true);
    const backup = board.take('n3', T + 5_000)!;
    expect(backup).toMatchObject({ task: slow.task, backupOf: 'n2' });
    // One backup at most.
    expect(board.take('n4', T + 60_000)).toBeUndefined();
    expect(board.progress().workers).toEqual([
      { node: 'n2', done: 0, mapping: 1 },
      { node: 'n3', done: 1, mapping: 1 },
    ]);
    expect(board.done(slow.task, 'n3', 1, 7)).toBe(true);
    expect(board.done(slow.task, 'n2', 1, 7)).toBe(false);
    expect(board.finished()).toBe(true);
    expect(board.workers()).toEqual([{ node: 'n3', tasks: 2 }]);
    expect(board.reassigned).toBe(1);
  });

  it('goes on with the backup when the straggler fails, and drops a failure of a task already done', () => {
    const board = new TaskBoard(splitTasks(1), options);
    const t = board.take('n2', T)!;
    board.take('n3', T + 5_000);
    expect(board.failed(t.task, 'n2')).toEqual({ next: 'elsewhere' });
    expect(board.done(t.task, 'n3', 1, 1)).toBe(true);
    const other = new TaskBoard(splitTasks(1), options);
    const u = other.take('n2', T)!;
    other.take('n3', T + 5_000);
    other.done(u.task, 'n3', 1, 1);
    expect(other.failed(u.task, 'n2')).toEqual({ next: 'elsewhere' });
    expect(other.reassigned).toBe(1);
  });

  it('fails the scan when reassignment is off (no backups either), or when the master itself failed', () => {
    const off = new TaskBoard(splitTasks(2), { ...options, reassign: false });
    const first = off.take('n2', T)!;
    off.done(off.take('n3', T)!.task, 'n3', 1, 1);
    expect(off.take('n3', T + 60_000)).toBeUndefined();
    expect(off.failed(first.task, 'n2')).toEqual({ next: 'none' });
    // Nobody takes a task of a scan that failed, the master included.
    expect(off.take('n4', T)).toBeUndefined();
    expect(off.take('n1', T)).toBeUndefined();
    expect(off.mayTakeLater('n4')).toBe(false);
    const board = new TaskBoard(splitTasks(1), { ...options, slaves: [] });
    expect(board.failed(board.take('n1', T)!.task, 'n1')).toEqual({ next: 'none' });
  });

  it('never hands out a task found done (a resumed scan)', () => {
    const tasks = splitTasks(4).map((t) => (t.task < 3 ? { ...t, done: true, worker: 'n2', pages: 1 } : t));
    const board = new TaskBoard(tasks, options);
    expect(board.take('n3', T)).toMatchObject({ task: 3 });
    expect(board.take('n2', T)).toBeUndefined();
    expect(board.progress()).toMatchObject({ done: 3, total: 4 });
  });

  it('refuses a report from a curator that does not map the task', () => {
    const board = new TaskBoard(splitTasks(2), options);
    const t = board.take('n2', T)!;
    expect(() => board.done(t.task, 'n3', 1, 1)).toThrow(/not mapped by n3/);
  });

  it('counts every task done exactly once, with bounded attempts, whatever fails or straggles (random runs)', () => {
    type Step = 'answer' | 'fail' | 'hang';
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 16 }), fc.integer({ min: 1, max: 4 }), fc.integer({ min: 0, max: 4 }), fc.array(fc.constantFrom<Step>('answer', 'fail', 'hang'), { maxLength: 200 }), (count, attemptsMax, slaveCount, steps) => {
        const slaves = Array.from({ length: slaveCount }, (_, i) => `s${i}`);
        const board = new TaskBoard(splitTasks(count), { master: 'm', slaves, attemptsMax, reassign: true, backupAfterMs: 10 });
        let now = T;
        let step = 0;
        const counted = new Map<number, number>();
        const hung: Array<{ task: number; worker: string }> = [];
        // Rounds of every curator in turn (the master never fails); time passes between rounds, hung maps never answer.
        for (let round = 0; round < 500 && !board.finished(); round++) {
          for (const w of [...slaves, 'm']) {
            const t = board.take(w, now);
            if (t === undefined) continue;
            expect(t.attempts).toBeLessThanOrEqual(w === 'm' ? Infinity : attemptsMax);
            const what = w === 'm' ? 'answer' : (steps[step++ % Math.max(1, steps.length)] ?? 'answer');
            if (what === 'fail') board.failed(t.task, w);
            else if (what === 'hang') hung.push({ task: t.task, worker: w });
            else if (board.done(t.task, w, 1, 1)) counted.set(t.task, (counted.get(t.task) ?? 0) + 1);
          }
          now += 20;
          // Now and then a hung map fails at its deadline.
          if (round % 7 === 6 && hung.length > 0) {
            const h = hung.shift()!;
            board.failed(h.task, h.worker);
          }
        }
        expect(board.finished()).toBe(true);
        expect([...counted.values()].every((n) => n === 1)).toBe(true);
        expect(counted.size).toBe(Math.min(count, MD_PARTITIONS));
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
