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
  /** Another curator maps it already (a backup), or has mapped it: nothing to hand out. */
  | { next: 'elsewhere' }
  /** Reassignment is off, or the master itself failed: the scan fails. */
  | { next: 'none' };

export interface BoardOptions {
  /** The master's node: it maps only what no slave may take. */
  master: string;
  /** The slaves of the scan. */
  slaves: readonly string[];
  /** Times a task is handed to slaves at most. */
  attemptsMax: number;
  /** Whether a failed or straggling task is handed to another curator. */
  reassign: boolean;
  /** A task mapped this long by one curator may be given to an idle one too (a backup: the first answer counts). */
  backupAfterMs: number;
}

/** A task handed out; `backupOf` names the curator that maps it too, when it is a backup. */
export type Taken = ScanTask & { backupOf?: string };

/**
 * The tasks of one scan and who maps them. Curators pull tasks (`take`): a task waiting
 * goes to one curator; a task mapped for longer than `backupAfterMs` may go to an idle
 * one too (MapReduce's backup tasks: a hung slave costs the scan that delay, not the
 * map deadline), and the first answer counts. A task that failed goes back to the queue
 * (the slave that failed takes none again in this scan), or to the master once it was
 * handed out `attemptsMax` times. The master maps only those, or everything once no
 * slave is left. Tasks found done (a resumed scan) are never mapped again.
 */
export class TaskBoard {
  private readonly tasks: ScanTask[];
  /** Per task being mapped: each curator mapping it, and since when. */
  private readonly mapping = new Map<number, Map<string, number>>();
  private readonly failedWorkers = new Set<string>();
  private readonly doneBy = new Map<string, number>();
  /** A task failed with nowhere to go: the scan fails, and no task is handed out any more. */
  private aborted = false;
  /** Tasks handed to another curator because theirs failed or straggled. */
  reassigned = 0;

  constructor(
    tasks: readonly ScanTask[],
    private readonly o: BoardOptions,
  ) {
    this.tasks = tasks.map((t) => ({ ...t, partitions: [...t.partitions] }));
  }

  /** The next task `worker` may map at `nowMs`, now marked as mapped by it; undefined when none. */
  take(worker: string, nowMs: number): Taken | undefined {
    if (this.aborted || this.failedWorkers.has(worker)) return undefined;
    const may = (t: ScanTask): boolean => !t.done && !this.mappers(t.task).has(worker) && (worker === this.o.master ? this.masterMay(t) : t.attempts < this.o.attemptsMax);
    const waiting = this.tasks.find((t) => may(t) && this.mappers(t.task).size === 0);
    const straggling = waiting === undefined && this.o.reassign ? this.tasks.find((t) => may(t) && this.straggler(t.task, nowMs) !== undefined) : undefined;
    const t = waiting ?? straggling;
    if (t === undefined) return undefined;
    const backupOf = straggling === undefined ? undefined : this.straggler(straggling.task, nowMs);
    if (backupOf !== undefined) this.reassigned++;
    t.attempts++;
    t.worker = worker;
    const mappers = this.mapping.get(t.task) ?? new Map<string, number>();
    mappers.set(worker, nowMs);
    this.mapping.set(t.task, mappers);
    return { ...t, partitions: [...t.partitions], ...(backupOf === undefined ? {} : { backupOf }) };
  }

  /** Whether `worker` may be given a task later in this scan (one waiting, failing or straggling elsewhere). */
  mayTakeLater(worker: string): boolean {
    return !this.aborted && !this.failedWorkers.has(worker) && this.tasks.some((t) => !t.done && !this.mappers(t.task).has(worker));
  }

  /** `worker` answered `task`: true when it is the first answer (which counts), false when another curator answered first. */
  done(task: number, worker: string, pages: number, entries: number): boolean {
    const t = this.find(task);
    if (t.done) return false;
    this.mapper(task, worker);
    t.done = true;
    t.worker = worker;
    t.pages = pages;
    t.entries = entries;
    this.mapping.delete(task);
    this.doneBy.set(worker, (this.doneBy.get(worker) ?? 0) + 1);
    return true;
  }

  /** `worker` could not map `task`: it takes nothing more in this scan, and the task goes on (see Failed). */
  failed(task: number, worker: string): Failed {
    const t = this.find(task);
    if (t.done) {
      if (worker !== this.o.master) this.failedWorkers.add(worker);
      return { next: 'elsewhere' };
    }
    this.mapper(task, worker);
    this.mappers(task).delete(worker);
    if (!this.o.reassign || worker === this.o.master) {
      this.aborted = true;
      return { next: 'none' };
    }
    this.failedWorkers.add(worker);
    if (this.mappers(task).size > 0) return { next: 'elsewhere' };
    this.mapping.delete(task);
    delete t.worker;
    this.reassigned++;
    return t.attempts < this.o.attemptsMax ? { next: 'slave' } : { next: 'master' };
  }

  /** Every task done. */
  finished(): boolean {
    return this.tasks.every((t) => t.done);
  }

  /** Tasks left that no curator maps now. */
  waiting(): number {
    return this.tasks.filter((t) => !t.done && this.mappers(t.task).size === 0).length;
  }

  snapshot(): ScanTask[] {
    return this.tasks.map((t) => ({ ...t, partitions: [...t.partitions] }));
  }

  /** Done of total, and per curator: tasks done and mapping now (for status). */
  progress(): { done: number; total: number; workers: Array<{ node: string; done: number; mapping: number }> } {
    const mapping = new Map<string, number>();
    for (const mappers of this.mapping.values()) for (const w of mappers.keys()) mapping.set(w, (mapping.get(w) ?? 0) + 1);
    const nodes = new Set([...this.doneBy.keys(), ...mapping.keys()]);
    const workers = [...nodes].sort().map((node) => ({ node, done: this.doneBy.get(node) ?? 0, mapping: mapping.get(node) ?? 0 }));
    return { done: this.tasks.filter((t) => t.done).length, total: this.tasks.length, workers };
  }

  /** The curators that mapped tasks in this scan (those found done included), and how many each. */
  workers(): ScanWorker[] {
    const count = new Map<string, number>();
    for (const t of this.tasks) if (t.done && t.worker !== undefined) count.set(t.worker, (count.get(t.worker) ?? 0) + 1);
    return [...count].sort(([a], [b]) => (a < b ? -1 : 1)).map(([node, tasks]) => ({ node, tasks }));
  }

  /** The master maps a task handed to slaves too often, or any once no slave is left. */
  private masterMay(t: ScanTask): boolean {
    return t.attempts >= this.o.attemptsMax || this.o.slaves.every((s) => this.failedWorkers.has(s));
  }

  /** The one curator mapping `task` for longer than backupAfterMs at `nowMs`, if so (a task has one backup at most). */
  private straggler(task: number, nowMs: number): string | undefined {
    const mappers = [...this.mappers(task)];
    if (mappers.length !== 1) return undefined;
    const [worker, sinceMs] = mappers[0]!;
    return nowMs - sinceMs >= this.o.backupAfterMs ? worker : undefined;
  }

  private mappers(task: number): Map<string, number> {
    return this.mapping.get(task) ?? new Map<string, number>();
  }

  private find(task: number): ScanTask {
    const t = this.tasks.find((x) => x.task === task);
    if (t === undefined) throw new Error(`no task ${task} in this scan`);
    return t;
  }

  /** Throws unless `worker` maps `task`. */
  private mapper(task: number, worker: string): void {
    if (!this.mappers(task).has(worker)) throw new Error(`task ${task} is not mapped by ${worker}`);
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
