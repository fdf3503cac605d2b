// A scan as MapReduce, the pure part: the md-egroup partitions split into map tasks,
// the tasks handed to the curators that map them (slaves first; the master maps only
// when alone, or a task that failed too often), a failed task handed to another
// curator, and the map outputs reduced into the rows the plan takes (plan.ts). No I/O
// and no clock: master.ts sends the tasks (map.ts answers them) and keeps the record.
import { MD_PARTITIONS, type MapRow, type ScanKind, type ScanTask, type ScanWorker } from '@strata/proto';
import { missingKey, type EgroupRow } from './plan';

/**
 * The partitions split into `count` tasks (at most one per partition), partition p
 * going to task p mod count: each task a share of the keys, whatever their spread.
 */
export function splitTasks(count: number, partitions = MD_PARTITIONS): ScanTask[] {
  const n = Math.max(1, Math.min(count, partitions));
  return Array.from({ length: n }, (_, task) => ({
    task,
    partitions: Array.from({ length: partitions }, (_, p) => p).filter((p) => p % n === task),
    done: false,
    attempts: 0,
    pages: 0,
    entries: 0,
  }));
}

/** What a scan reads, from what was asked and what the master has. */
export function scanKindFor(o: { full: boolean; fullDue: boolean; hasBase: boolean }): ScanKind {
  if (o.full || o.fullDue) return 'full';
  return o.hasBase ? 'partial' : 'complete';
}

/** What became of a task whose map failed. */
export type Failed =
  /** Back in the queue for another slave. */
  | { next: 'slave' }
  /** Handed to slaves too often: the master maps it itself. */
  | { next: 'master' }
  /** Reassignment is off: the scan fails. */
  | { next: 'none' };

export interface BoardOptions {
  /** The master's node: it maps only what no slave may take. */
  master: string;
  /** Times a task is handed to slaves at most. */
  attemptsMax: number;
  /** Whether a failed task is handed to another curator. */
  reassign: boolean;
}

/**
 * The tasks of one scan and who maps them. Curators pull tasks (`take`): a task is
 * handed to one curator at a time; one that failed goes back to the queue (a slave
 * that failed takes none again in this scan), or to the master once it was handed
 * out `attemptsMax` times. Tasks found done (a resumed scan) are never mapped again.
 */
export class TaskBoard {
  private readonly tasks: ScanTask[];
  private readonly mapping = new Map<number, string>();
  private readonly failedWorkers = new Set<string>();
  private readonly doneBy = new Map<string, number>();
  /** A task failed with nowhere to go: the scan fails, and no task is handed out any more. */
  private aborted = false;
  reassigned = 0;

  constructor(
    tasks: readonly ScanTask[],
    private readonly o: BoardOptions,
  ) {
    this.tasks = tasks.map((t) => ({ ...t, partitions: [...t.partitions] }));
  }

  /** The next task `worker` may map, now marked as mapped by it; undefined when none. */
  take(worker: string): ScanTask | undefined {
    if (this.aborted || this.failedWorkers.has(worker)) return undefined;
    const forMaster = worker === this.o.master;
    const t = this.tasks.find((x) => !x.done && !this.mapping.has(x.task) && (forMaster || x.attempts < this.o.attemptsMax));
    if (t === undefined) return undefined;
    t.attempts++;
    t.worker = worker;
    this.mapping.set(t.task, worker);
    return { ...t };
  }

  done(task: number, worker: string, pages: number, entries: number): void {
    const t = this.find(task, worker);
    t.done = true;
    t.pages = pages;
    t.entries = entries;
    this.mapping.delete(task);
    this.doneBy.set(worker, (this.doneBy.get(worker) ?? 0) + 1);
  }

  /** `worker` could not map `task`: it takes nothing more in this scan, and the task goes on (see Failed). */
  failed(task: number, worker: string): Failed {
    const t = this.find(task, worker);
    this.mapping.delete(task);
    delete t.worker;
    if (!this.o.reassign || worker === this.o.master) {
      this.aborted = true;
      return { next: 'none' };
    }
    this.failedWorkers.add(worker);
    this.reassigned++;
    return t.attempts < this.o.attemptsMax ? { next: 'slave' } : { next: 'master' };
  }

  /** Every task done. */
  finished(): boolean {
    return this.tasks.every((t) => t.done);
  }

  /** Tasks left that no curator maps now. */
  waiting(): number {
    return this.tasks.filter((t) => !t.done && !this.mapping.has(t.task)).length;
  }

  snapshot(): ScanTask[] {
    return this.tasks.map((t) => ({ ...t, partitions: [...t.partitions] }));
  }

  /** Done of total, and per curator: tasks done and mapping now (for status). */
  progress(): { done: number; total: number; workers: Array<{ node: string; done: number; mapping: number }> } {
    const nodes = new Set([...this.doneBy.keys(), ...this.mapping.values()]);
    const workers = [...nodes].sort().map((node) => ({ node, done: this.doneBy.get(node) ?? 0, mapping: [...this.mapping.values()].filter((w) => w === node).length }));
    return { done: this.tasks.filter((t) => t.done).length, total: this.tasks.length, workers };
  }

  /** The curators that mapped tasks in this scan (those found done included), and how many each. */
  workers(): ScanWorker[] {
    const count = new Map<string, number>();
    for (const t of this.tasks) if (t.done && t.worker !== undefined) count.set(t.worker, (count.get(t.worker) ?? 0) + 1);
    return [...count].sort(([a], [b]) => (a < b ? -1 : 1)).map(([node, tasks]) => ({ node, tasks }));
  }

  private find(task: number, worker: string): ScanTask {
    const t = this.tasks.find((x) => x.task === task);
    if (t === undefined || this.mapping.get(task) !== worker) throw new Error(`task ${task} is not mapped by ${worker}`);
    return t;
  }
}

/** One page of a map task's output, as the reduce takes it. */
export interface MapOutput {
  rows: readonly MapRow[];
  deleted?: ReadonlyArray<{ egroup: bigint; revision: number }>;
  missing: ReadonlyArray<{ egroup: bigint; disk: bigint }>;
}

/**
 * The reduce: the map outputs into one row per extent group, sorted (what the plan
 * takes), and the replicas found missing. A partial scan's outputs go onto `base`, the
 * rows the last scan read: a row replaces the base's when its revision is newer, and a
 * deletion newer than the base's row removes it.
 */
export function reduceRows(outputs: Iterable<MapOutput>, base?: ReadonlyMap<bigint, EgroupRow>): { rows: EgroupRow[]; missing: Set<string> } {
  const rows = new Map<bigint, EgroupRow>(base ?? []);
  const missing = new Set<string>();
  for (const o of outputs) {
    for (const r of o.rows) {
      const held = rows.get(r.egroup);
      if (held === undefined || held.revision < r.revision) rows.set(r.egroup, { egroup: r.egroup, revision: r.revision, entry: r.entry });
    }
    for (const d of o.deleted ?? []) {
      const held = rows.get(d.egroup);
      if (held !== undefined && held.revision < d.revision) rows.delete(d.egroup);
    }
    for (const m of o.missing) missing.add(missingKey(m.egroup, m.disk));
  }
  return { rows: [...rows.values()].sort((a, b) => (a.egroup < b.egroup ? -1 : a.egroup > b.egroup ? 1 : 0)), missing };
}
