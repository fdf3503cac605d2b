// The map and the reduce of the master's scans, their I/O: the tasks handed to the
// slave curators (`strata.curator.<node>.map`, answered by map.ts) and to the master
// itself when no slave may take them, a failed task given to another curator, the
// record `curator.scan` and each done task's output (`curator.map.<task>.<page>`)
// persisted for a complete or full scan, the scan a previous master left resumed, and
// the rows the last scan read kept for the next partial scan. The decisions are
// mapreduce.ts's; master.ts plans on what this gives.
import type { Bus } from '@strata/bus';
import { ErrorCode, StrataError } from '@strata/errors';
import type { TypedBucket } from '@strata/kv';
import type { Logger } from '@strata/log';
import {
  EventType,
  curatorMapReply,
  keys,
  subjects,
  type ClusterEvent,
  type CuratorMapReply,
  type CuratorMapRequest,
  type CuratorScanRecord,
  type ScanTask,
  type curatorMapOutput,
  type curatorScanRecord,
  type egroupEntry,
} from '@strata/proto';
import { forEachLimited } from './map';
import { TaskBoard, reduceRows, scanKindFor, splitTasks, type MapOutput, type Taken } from './mapreduce';
import { pause } from './copier';
import type { ClusterView, EgroupRow } from './plan';
import type { CuratorSettings } from './settings';

/** Attempts of a request to a slave that reached no curator (its interest may still be crossing the cluster) before its task goes to another. */
const SLAVE_ATTEMPTS = 4;
/** Pages one map task may answer in at most (each MAP_PAGE_ROWS entries): a bound far above any real map. */
const MAP_PAGES_MAX = 100_000;
/** How often a curator with no task to take looks again (for a straggler's task to back up). */
const BOARD_POLL_MS = 200;
/** Writes and deletes of map outputs in flight at once. */
const OUTPUT_WRITES_IN_FLIGHT = 16;

export interface ScanPorts {
  bus: Bus;
  log: Logger;
  settings: CuratorSettings;
  me: string;
  epoch: number;
  leading: () => boolean;
  stopped: () => boolean;
  egroups: TypedBucket<typeof egroupEntry>;
  /** `curator.scan` and the map outputs, in `own`. */
  scans: TypedBucket<typeof curatorScanRecord>;
  outputs: TypedBucket<typeof curatorMapOutput>;
  /** One page of a map task, mapped by this process: the tasks the master maps itself. */
  mapLocal: (req: CuratorMapRequest) => Promise<CuratorMapReply>;
  /** Publishes a curator event (best effort). */
  emit: (fields: Omit<ClusterEvent, 'atMs' | 'epoch' | 'cause' | 'message' | 'curatorEpoch'>, message: string) => Promise<void>;
}

/** What the map and the reduce of one scan gave. */
export interface Mapped {
  rows: EgroupRow[];
  missing: Set<string>;
  /** The scan's record, its tasks as they ended. */
  record: CuratorScanRecord;
  /** Entries its map tasks read (those of the tasks found done included). */
  entries: number;
  /** A partial scan: the revision its changes count from (0 otherwise). */
  sinceRevision: number;
  board: TaskBoard;
  /** Tasks found done when the scan was resumed. */
  resumed: number;
}

/** A scan being mapped, as status shows it. */
export interface ScanInFlight {
  record: CuratorScanRecord;
  board: TaskBoard;
}

interface Run {
  record: CuratorScanRecord;
  board: TaskBoard;
  persist: boolean;
  sinceRevision: number;
  alive: string[];
  outputs: MapOutput[];
  /** Called once the last task's output and the record are stored. */
  finish: () => void;
}

export class ScanTasks {
  /** The rows the last completed scan read (a partial scan's changes go onto them), and the md-egroup revision it started at. */
  private base: Map<bigint, EgroupRow> | undefined;
  private baseRevision = 0;
  /** The scan the previous master left in `curator.scan`, resumed by this master's first scan. */
  private resumable: CuratorScanRecord | undefined;
  /** The revision of `curator.scan` as this master last wrote it (its writes are compare-and-set). */
  private recordRevision = 0;
  private recordWriting: Promise<void> = Promise.resolve();

  constructor(private readonly p: ScanPorts) {}

  /** Whether the next scan resumes a full scan a previous master left. */
  resumesFull(): boolean {
    return this.resumable?.kind === 'full';
  }

  /** At start: the scan a previous master left, resumed by the first scan (or dropped, STRATA_CURATOR_SCAN_RESUME=off). */
  async findLeft(): Promise<void> {
    const left = await this.p.scans.get(keys.curatorScan);
    if (left === null) return;
    this.recordRevision = left.revision;
    if (this.p.settings.curatorScanResume === 'on' && left.value.kind !== 'partial') {
      this.resumable = left.value;
      return;
    }
    this.p.log.info({ scan: left.value.id }, `scan ${left.value.id} of ${left.value.master} dropped (STRATA_CURATOR_SCAN_RESUME=off): a new scan starts`);
    await this.drop();
  }

  /**
   * The map and the reduce of a scan: the scan the previous master left (only its
   * tasks not done are mapped again), or a new one of the kind due. Complete and full
   * scans are persisted (`curator.scan` and each task's output) as their tasks end;
   * partial ones are not (their base, the last scan's rows, is this master's alone).
   * `started` gets the record and the tasks as soon as they are made (for status).
   */
  async map(o: { full: boolean; fullDue: boolean; reason: string; startedAtMs: number; view: ClusterView; started: (s: ScanInFlight) => void }): Promise<Mapped> {
    const alive = [...o.view.nodes.values()].filter((n) => n.liveness === 'alive').map((n) => n.name);
    const slaves = alive.filter((n) => n !== this.p.me).sort();
    const left = this.resumable;
    this.resumable = undefined;
    // A new scan's first write replaces whatever record is there (one of a scan that failed); a resumed one's is a compare-and-set on what was found.
    if (left === undefined) this.recordRevision = 0;
    const { record, outputs, resumed } = left === undefined ? await this.newScan(o, slaves.length) : await this.resumeScan(left);
    const { settings } = this.p;
    const board = new TaskBoard(record.tasks, {
      master: this.p.me,
      slaves,
      attemptsMax: settings.curatorMapAttemptsMax,
      reassign: settings.curatorMapReassign === 'on',
      backupAfterMs: settings.curatorMapBackupAfterMs,
    });
    o.started({ record, board });
    let finish = (): void => undefined;
    const finished = new Promise<void>((resolve) => (finish = resolve));
    const run: Run = { record, board, persist: record.kind !== 'partial', sinceRevision: record.kind === 'partial' ? this.baseRevision : 0, alive, outputs, finish };
    if (run.persist) await this.saveRecord(record, board);
    if (left === undefined) {
      const workers = slaves.length === 0 ? `${this.p.me} (the master, alone)` : slaves.join(', ');
      await this.p.emit({ type: EventType.curatorScanStarted, reason: o.reason }, `scan ${record.id} (${record.kind}) started: ${record.tasks.length} map tasks for ${workers}; ${o.reason}`);
    }
    // Every curator pulls tasks, one at a time (the master only those no slave may
    // take). The scan goes on once every task is answered and stored: a backed-up
    // straggler's request is not waited for (its late answer is dropped).
    await Promise.race([finished, settleAll([...slaves, this.p.me].map((worker) => this.mapTasks(worker, run)))]);
    if (!board.finished()) throw new StrataError(ErrorCode.UNAVAILABLE, `scan ${record.id}: ${board.waiting()} map tasks not mapped`);
    const { rows, missing } = reduceRows(outputs, record.kind === 'partial' ? this.base : undefined);
    const entries = board.snapshot().reduce((n, t) => n + t.entries, 0);
    return { rows, missing, record: { ...record, tasks: board.snapshot() }, entries, sinceRevision: run.sinceRevision, board, resumed };
  }

  /** The scan was planned on `rows`: they are the next partial scan's base, and its record and outputs go. */
  async ended(record: CuratorScanRecord, rows: readonly EgroupRow[]): Promise<void> {
    this.base = new Map(rows.map((r) => [r.egroup, r]));
    this.baseRevision = record.uptoRevision;
    if (record.kind === 'partial') return;
    await this.recordWriting;
    await this.drop();
  }

  /** A new scan: its kind, the md-egroup revision it starts at, its tasks (a partial scan: one per slave at most). */
  private async newScan(o: { full: boolean; fullDue: boolean; reason: string; startedAtMs: number }, slaves: number): Promise<{ record: CuratorScanRecord; outputs: MapOutput[]; resumed: number }> {
    const kind = scanKindFor({ full: o.full, fullDue: o.fullDue, hasBase: this.base !== undefined });
    const uptoRevision = await this.p.egroups.lastSequence();
    const tasks = this.p.settings.curatorMapTasks;
    const count = kind === 'partial' ? Math.min(tasks, Math.max(1, slaves)) : tasks;
    const record: CuratorScanRecord = { id: o.startedAtMs, kind, reason: o.reason.slice(0, 200), master: this.p.me, curatorEpoch: this.p.epoch, startedAtMs: o.startedAtMs, uptoRevision, tasks: splitTasks(count) };
    return { record, outputs: [], resumed: 0 };
  }

  /** The scan the previous master left: the outputs of its tasks done are read back (a task whose output is incomplete is mapped again). */
  private async resumeScan(left: CuratorScanRecord): Promise<{ record: CuratorScanRecord; outputs: MapOutput[]; resumed: number }> {
    const outputs: MapOutput[] = [];
    const tasks: ScanTask[] = [];
    for (const t of left.tasks) {
      const pages = t.done ? await this.readOutput(left.id, t) : undefined;
      if (pages === undefined) tasks.push({ ...t, done: false, pages: 0, entries: 0 });
      else {
        outputs.push(...pages);
        tasks.push(t);
      }
    }
    const resumed = tasks.filter((t) => t.done).length;
    const record: CuratorScanRecord = { ...left, master: this.p.me, curatorEpoch: this.p.epoch, tasks };
    await this.p.emit(
      { type: EventType.curatorScanResumed, name: left.master, reason: `the curator master ${left.master} (epoch ${left.curatorEpoch}) left it running` },
      `scan ${left.id} (${left.kind}) of ${left.master} resumed: ${resumed} of ${tasks.length} map tasks found done, ${tasks.length - resumed} mapped again`,
    );
    return { record, outputs, resumed };
  }

  /** A done task's stored output, or undefined when a page is missing or belongs to another scan. */
  private async readOutput(scan: number, t: ScanTask): Promise<MapOutput[] | undefined> {
    const pages: MapOutput[] = [];
    for (let page = 0; page < t.pages; page++) {
      const out = (await this.p.outputs.get(keys.curatorMapOutput(t.task, page)))?.value;
      if (out?.scan !== scan || out.task !== t.task) return undefined;
      pages.push(out);
    }
    return t.pages === 0 ? undefined : pages;
  }

  /**
   * `worker` maps tasks until none is left for it: waiting ones, or a straggler's as a
   * backup; one that fails takes no more in this scan, and its task goes on (TaskBoard).
   */
  private async mapTasks(worker: string, run: Run): Promise<void> {
    const { record, board } = run;
    while (!board.finished()) {
      if (this.p.stopped() || !this.p.leading()) throw new StrataError(ErrorCode.FENCED, `scan ${record.id} stopped: ${this.p.me} is no longer the curator master`);
      const t = board.take(worker, Date.now());
      if (t === undefined) {
        if (!board.mayTakeLater(worker)) return;
        await pause(BOARD_POLL_MS);
        continue;
      }
      if (t.backupOf !== undefined) await this.backedUp(worker, t, run);
      if (run.persist) await this.saveRecord(record, board);
      let pages: CuratorMapReply[];
      try {
        pages = await this.mapTask(worker, t, run);
      } catch (err) {
        await this.failed(worker, t, run, err);
        return;
      }
      // The first answer counts; a later one (the straggler's or its backup's) is dropped.
      if (!board.done(t.task, worker, pages.length, entriesOf(pages))) continue;
      run.outputs.push(...pages);
      // The output before the record says the task is done: a new master finds both, or a task to map again.
      if (run.persist) {
        await this.saveOutput(record.id, t.task, pages);
        await this.saveRecord(record, board);
      }
      if (board.finished()) run.finish();
    }
  }

  /** A straggler's task given to `worker` too: an event names the straggler. */
  private async backedUp(worker: string, t: Taken, run: Run): Promise<void> {
    const after = this.p.settings.curatorMapBackupAfterMs;
    await this.p.emit(
      { type: EventType.curatorScanTaskReassigned, name: t.backupOf, reason: `no answer from ${t.backupOf} after ${after} ms` },
      `scan ${run.record.id}: map task ${t.task} (partitions ${t.partitions.join(', ')}) has no answer from ${t.backupOf} after ${after} ms; ${worker} maps it too (a backup: the first answer counts)`,
    );
  }

  /** A task failed on `worker`: handed to another curator (an event says why), or the scan fails. */
  private async failed(worker: string, t: ScanTask, run: Run, err: unknown): Promise<void> {
    const why = err instanceof Error ? err.message : String(err);
    const next = run.board.failed(t.task, worker);
    if (next.next === 'none') {
      const off = this.p.settings.curatorMapReassign === 'off' ? ' (STRATA_CURATOR_MAP_REASSIGN=off: no other curator takes it)' : '';
      throw new StrataError(ErrorCode.UNAVAILABLE, `scan ${run.record.id}: map task ${t.task} failed on ${worker}: ${why}${off}`, { cause: err });
    }
    if (next.next === 'elsewhere') {
      this.p.log.info({ task: t.task, worker, why }, `map task ${t.task} failed on ${worker}; another curator maps it or has`);
      return;
    }
    const to = next.next === 'slave' ? 'another curator takes it' : `the master maps it itself after ${t.attempts} attempts`;
    await this.p.emit(
      { type: EventType.curatorScanTaskReassigned, name: worker, reason: why.slice(0, 300) },
      `scan ${run.record.id}: map task ${t.task} (partitions ${t.partitions.join(', ')}) failed on ${worker}: ${why}; ${to}`,
    );
    if (run.persist && !run.board.finished()) await this.saveRecord(run.record, run.board);
  }

  /** Every page of one map task, from `worker` (or mapped here when it is this master). */
  private async mapTask(worker: string, t: ScanTask, run: Run): Promise<CuratorMapReply[]> {
    const { record } = run;
    const pages: CuratorMapReply[] = [];
    let after: string | undefined;
    for (let page = 0; page < MAP_PAGES_MAX; page++) {
      const req: CuratorMapRequest = {
        scan: record.id,
        master: this.p.me,
        curatorEpoch: this.p.epoch,
        task: t.task,
        partitions: t.partitions,
        kind: record.kind,
        sinceRevision: run.sinceRevision,
        alive: record.kind === 'full' ? run.alive : [],
        ...(after === undefined ? {} : { after }),
      };
      const reply = worker === this.p.me ? await this.p.mapLocal(req) : await this.askSlave(worker, req);
      pages.push(reply);
      if (reply.next === undefined) return pages;
      after = reply.next;
    }
    throw new StrataError(ErrorCode.INTERNAL, `map task ${t.task} of scan ${record.id} answered more than ${MAP_PAGES_MAX} pages`);
  }

  /**
   * One page from a slave, within the map deadline. A slave whose curator is not
   * subscribed (killed, not started yet) fails after a few attempts rather than at the
   * deadline: the bus sends a request that reached nobody again until then.
   */
  private askSlave(worker: string, req: CuratorMapRequest): Promise<CuratorMapReply> {
    let attempts = 0;
    return this.p.bus.request(subjects.curatorMap(worker), req, curatorMapReply, {
      timeoutMs: this.p.settings.curatorMapTimeoutMs,
      beforeAttempt: () => {
        if (++attempts > SLAVE_ATTEMPTS) throw new StrataError(ErrorCode.UNAVAILABLE, `no curator answers on ${subjects.curatorMap(worker)} (${SLAVE_ATTEMPTS} attempts)`);
      },
    });
  }

  private async saveOutput(scan: number, task: number, pages: readonly CuratorMapReply[]): Promise<void> {
    await forEachLimited(
      pages.map((p, page) => ({ p, page })),
      OUTPUT_WRITES_IN_FLIGHT,
      async ({ p, page }) => {
        await this.p.outputs.put(keys.curatorMapOutput(task, page), { scan, task, page, rows: p.rows, missing: p.missing });
      },
    );
  }

  /** Writes `curator.scan` with the tasks as they are now; one write at a time, each a compare-and-set on the last (a master that lost the scan stops). */
  private saveRecord(record: CuratorScanRecord, board: TaskBoard): Promise<void> {
    const write = this.recordWriting.then(async () => {
      const value: CuratorScanRecord = { ...record, tasks: board.snapshot() };
      this.recordRevision = this.recordRevision === 0 ? await this.p.scans.put(keys.curatorScan, value) : await this.p.scans.update(keys.curatorScan, value, this.recordRevision);
    });
    this.recordWriting = write.catch(() => undefined);
    return write;
  }

  /** Deletes the map outputs, then `curator.scan`; a failure is logged (the next scan's record replaces it). */
  private async drop(): Promise<void> {
    try {
      const outputs = await this.p.outputs.keys(keys.curatorMapOutputAll);
      await forEachLimited(outputs, OUTPUT_WRITES_IN_FLIGHT, (key) => this.p.outputs.delete(key));
      await this.p.scans.delete(keys.curatorScan);
      this.recordRevision = 0;
    } catch (err) {
      this.p.log.warn({ err }, 'could not delete the record of the scan that ended');
    }
  }
}

const entriesOf = (pages: readonly CuratorMapReply[]): number => pages.reduce((n, p) => n + p.entries, 0);

/** Waits for every promise; then fails with the first failure, if any (none is left running). */
async function settleAll(work: ReadonlyArray<Promise<void>>): Promise<void> {
  const results = await Promise.allSettled(work);
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed !== undefined) throw failed.reason;
}
