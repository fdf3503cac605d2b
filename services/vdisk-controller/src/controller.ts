// The node's vdisk-controller: opens each vDisk this node owns on its first I/O
// (replaying the undrained oplog tail and appending a takeover marker before it
// serves), routes I/O to it, and gives the vDisks what they need from the rest of
// the cluster: extent stores, metadata shards, ids, placement.
import { performance } from 'node:perf_hooks';
import { DeliverPolicy, jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import type { Bus } from '@strata/bus';
import { decode } from '@strata/codec';
import type { ConfigClient } from '@strata/config-client';
import { ErrorCode, StrataError, isStrataError } from '@strata/errors';
import type { IdAllocator } from '@strata/ids';
import type { TypedBucket, WatchCache } from '@strata/kv';
import type { Logger } from '@strata/log';
import type { MdClient } from '@strata/md-client';
import {
  keys,
  oplogEntry,
  streams,
  subjects,
  type DiskUsage,
  type EgroupEntry,
  type VdiskOwnership,
  type vdiskOwnership,
} from '@strata/proto';
import { SpanAttr, inSpan, recordingSpan, trace } from '@strata/tracing';
import { OplogLink } from './oplog-link';
import { OplogAppender } from './oplog';
import { place, type CandidateDisk } from './placement';
import { ExtentGroups } from './extent-groups';
import { Vdisk, type VdiskSettings } from './vdisk';

export interface ControllerSettings extends VdiskSettings {
  node: string;
  /** Most payload bytes in one oplog message. */
  oplogBatchBytesMax: number;
  /** Extent-group size at which a new one is started. */
  egroupSizeBytes: number;
  /** Most data bytes in one extent-store write request. */
  drainWriteBytesMax: number;
  /** Deadline of one extent-store or metadata request. */
  backendTimeoutMs: number;
}

export interface ControllerDeps {
  bus: Bus;
  config: ConfigClient;
  own: TypedBucket<typeof vdiskOwnership>;
  md: MdClient;
  ids: IdAllocator;
  usage: WatchCache<DiskUsage>;
  log: Logger;
  settings: ControllerSettings;
}

/** A served vDisk and what only its controller keeps. */
interface Served {
  vdisk: Vdisk;
  ownership: { epoch: number; revision: number };
  replicationFactor: number;
  tierOrder: string[];
}

const tracer = trace.getTracer('@strata/vdisk-controller');

export class Controller {
  private readonly served = new Map<bigint, Served>();
  private readonly opening = new Map<bigint, Promise<Served>>();
  private js!: JetStreamClient;
  private jsm!: JetStreamManager;
  private link!: OplogLink;

  constructor(private readonly deps: ControllerDeps) {}

  async start(): Promise<void> {
    this.js = jetstream(this.deps.bus.nc);
    this.jsm = await jetstreamManager(this.deps.bus.nc);
    this.link = OplogLink.start({ nc: this.deps.bus.nc, stream: streams.oplog, log: this.deps.log, recheckMs: 30_000, retireAfterMs: 3 * this.deps.settings.backendTimeoutMs });
  }

  /** The served vDisk, opened on first use. Throws NOT_OWNER when this node does not own it. */
  async get(vdiskId: bigint): Promise<Vdisk> {
    const current = this.served.get(vdiskId);
    if (current !== undefined) {
      if (current.vdisk.appender.failed === undefined) return current.vdisk;
      // Its oplog view cannot be trusted any more: drop it and reopen from the oplog.
      this.served.delete(vdiskId);
      await current.vdisk.close();
      if (current.vdisk.appender.failed.code === ErrorCode.FENCED) throw this.notOwner(vdiskId, undefined);
    }
    let opening = this.opening.get(vdiskId);
    if (opening === undefined) {
      opening = this.openTraced(vdiskId).finally(() => this.opening.delete(vdiskId));
      this.opening.set(vdiskId, opening);
    }
    return (await opening).vdisk;
  }

  private notOwner(vdiskId: bigint, owner: string | undefined): StrataError {
    return new StrataError(ErrorCode.NOT_OWNER, `node ${this.deps.settings.node} does not own vdisk ${vdiskId}${owner === undefined ? '' : `; ${owner} does`}`, owner === undefined ? {} : { hint: owner });
  }

  /** open() under a `vdisk open` span: the first I/O's trace shows the replay and the takeover marker. */
  private async openTraced(vdiskId: bigint): Promise<Served> {
    const span = tracer.startSpan('vdisk open');
    span.setAttribute(SpanAttr.vdisk, String(vdiskId));
    return inSpan(span, async () => {
      const served = await this.open(vdiskId);
      span.setAttribute(SpanAttr.epoch, served.ownership.epoch);
      return served;
    });
  }

  private async open(vdiskId: bigint): Promise<Served> {
    const { settings, log } = this.deps;
    const ownership = await this.deps.own.get(keys.vdiskOwnership(vdiskId));
    if (ownership === null || ownership.value.owner !== settings.node) throw this.notOwner(vdiskId, ownership?.value.owner);
    const cfg = await this.deps.config.get({ kind: 'vdisk', id: vdiskId });
    if (cfg.kind !== 'vdisk') throw new StrataError(ErrorCode.INTERNAL, `config returned a ${cfg.kind} for vdisk ${vdiskId}`);
    const container = await this.deps.config.get({ kind: 'container', id: cfg.spec.container });
    if (container.kind !== 'container') throw new StrataError(ErrorCode.INTERNAL, `config returned a ${container.kind} for container ${cfg.spec.container}`);

    const started = performance.now();
    const subject = subjects.oplog(vdiskId);
    const { lastSeq, entries } = await this.readOplogTail(subject, ownership.value.drained);
    recordingSpan()?.setAttributes({ 'strata.oplog.drained_seq': ownership.value.drained, 'strata.oplog.last_seq': lastSeq, 'strata.oplog.replayed': entries.length });
    // The vDisk's callbacks need the Served record, which exists only once the vDisk does.
    const ref: { served?: Served } = {};
    const appender = new OplogAppender({
      js: () => this.link.js,
      subject,
      vdisk: vdiskId,
      epoch: ownership.value.epoch,
      owner: settings.node,
      lastSequence: lastSeq,
      maxBatchBytes: settings.oplogBatchBytesMax,
      publishTimeoutMs: settings.backendTimeoutMs,
      publishAttempts: 3,
      onStored: (seq, ops, writes) => ref.served?.vdisk.apply(seq, ops, writes),
    });
    const space = new ExtentGroups({
      bus: this.deps.bus,
      md: this.deps.md,
      log,
      node: settings.node,
      vdisk: vdiskId,
      epoch: () => ref.served!.ownership.epoch,
      createEgroup: (firstExtentBytes) => this.createEgroup(ref.served!, firstExtentBytes),
      egroupSizeBytes: settings.egroupSizeBytes,
      writeBytesMax: settings.drainWriteBytesMax,
      timeoutMs: settings.backendTimeoutMs,
    });
    const vdisk = new Vdisk(
      { id: vdiskId, sizeBytes: cfg.spec.sizeBytes, blockSizeBytes: cfg.spec.blockSizeBytes },
      appender,
      space,
      {
        getRow: (row) => this.deps.md.get('vdisk', keys.vdiskRow(vdiskId, row)),
        putRow: (row, value, revision) => this.deps.md.put('vdisk', keys.vdiskRow(vdiskId, row), value, revision),
        recordDrained: (seq) => this.recordDrained(ref.served!, seq),
        purgeBelow: (seq) => this.purgeBelow(subject, seq, appender.lastSequence),
      },
      settings,
      ownership.value.drained,
      (err) => log.warn({ err, vdisk: String(vdiskId) }, 'drain failed; it will be retried'),
    );
    for (const { seq, ops } of entries) vdisk.apply(seq, ops);
    // Fence: from here on, any earlier writer of this oplog fails its next append.
    try {
      await appender.appendMarker();
    } catch (err) {
      if (isStrataError(err, ErrorCode.FENCED)) throw this.notOwner(vdiskId, undefined);
      throw err;
    }
    const served: Served = {
      vdisk,
      ownership: { epoch: ownership.value.epoch, revision: ownership.revision },
      replicationFactor: container.spec.replicationFactor,
      tierOrder: container.spec.tierOrder,
    };
    ref.served = served;
    this.served.set(vdiskId, served);
    log.info(
      { vdisk: String(vdiskId), epoch: ownership.value.epoch, drained: ownership.value.drained, replayed: entries.length, lastSeq, ms: Math.round(performance.now() - started) },
      'serving vdisk',
    );
    vdisk.kickDrain();
    return served;
  }

  /** Every oplog entry of `subject` after `drained`, and the subject's last sequence. */
  private async readOplogTail(subject: string, drained: number): Promise<{ lastSeq: number; entries: Array<{ seq: number; ops: Parameters<Vdisk['apply']>[1] }> }> {
    let lastSeq = 0;
    try {
      const last = await this.jsm.streams.getMessage(streams.oplog, { last_by_subj: subject });
      lastSeq = last?.seq ?? 0;
    } catch (err) {
      // No message on the subject yet.
      if (!/no message found/i.test((err as Error).message ?? '')) throw err;
    }
    const entries: Array<{ seq: number; ops: Parameters<Vdisk['apply']>[1] }> = [];
    if (lastSeq <= drained) return { lastSeq, entries };
    // One subject as a string: a single filter, which nats-server 2.9 understands.
    const consumer = await this.js.consumers.get(streams.oplog, {
      filter_subjects: subject,
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: drained + 1,
    });
    for (;;) {
      const batch = await consumer.fetch({ max_messages: 256, expires: 2_000 });
      let done = false;
      let got = 0;
      for await (const m of batch) {
        got++;
        const entry = decode(m.data, oplogEntry);
        if (entry.kind === 'ops') entries.push({ seq: m.seq, ops: entry.ops });
        if (m.seq >= lastSeq) done = true;
      }
      if (done || got === 0) break;
    }
    return { lastSeq, entries };
  }

  /**
   * A new extent group for the vDisk, placed on RF disks of distinct live nodes and
   * recorded (empty) in the map before any replica is written. Drain asks for it: an
   * `egroup create` span under the drain's.
   */
  private async createEgroup(served: Served, firstExtentBytes: number): Promise<{ id: bigint; entry: EgroupEntry; revision: number }> {
    const span = tracer.startSpan('egroup create');
    return inSpan(span, async () => {
      const created = await this.placeEgroup(served, firstExtentBytes);
      if (span.isRecording()) {
        span.setAttributes({
          [SpanAttr.vdisk]: String(served.vdisk.shape.id),
          [SpanAttr.egroup]: String(created.id),
          [SpanAttr.disk]: created.entry.replicas.map((r) => String(r.disk)),
          'strata.nodes': created.entry.replicas.map((r) => r.node),
        });
      }
      return created;
    });
  }

  private async placeEgroup(served: Served, firstExtentBytes: number): Promise<{ id: bigint; entry: EgroupEntry; revision: number }> {
    const { settings } = this.deps;
    const [disks, nodes] = await Promise.all([this.deps.config.list('disk'), this.deps.config.list('node')]);
    const nodeName = new Map(nodes.map((n) => [n.id, n.name]));
    const live = new Set(nodes.filter((n) => n.status.liveness !== 'dead').map((n) => n.name));
    const candidates: CandidateDisk[] = disks.map((d) => ({
      id: d.id,
      node: nodeName.get(d.spec.node) ?? '?',
      tier: d.spec.tier,
      capacityBytes: d.spec.capacityBytes,
      usedBytes: this.deps.usage.get(keys.diskUsage(d.id))?.value.usedBytes ?? 0,
    }));
    const placement = place({
      disks: candidates,
      liveNodes: live,
      localNode: settings.node,
      replicationFactor: served.replicationFactor,
      tierOrder: served.tierOrder,
      needBytes: Math.max(firstExtentBytes, settings.egroupSizeBytes),
    });
    if (!placement.ok) throw new StrataError(ErrorCode.NO_SPACE, placement.why);
    const id = await this.deps.ids.allocate();
    const entry: EgroupEntry = { vdisk: served.vdisk.shape.id, replicas: placement.replicas.map((d) => ({ disk: d.id, node: d.node })), version: 0, sizeBytes: 0, extents: [] };
    const revision = await this.deps.md.put('egroup', keys.egroup(id), entry, 0);
    return { id, entry, revision };
  }

  private async recordDrained(served: Served, seq: number): Promise<void> {
    const key = keys.vdiskOwnership(served.vdisk.shape.id);
    const current = await this.deps.own.get(key);
    if (current === null || current.value.owner !== this.deps.settings.node || current.value.epoch !== served.ownership.epoch) {
      throw new StrataError(ErrorCode.FENCED, `vdisk ${served.vdisk.shape.id} changed owner; not recording drained ${seq}`);
    }
    const next: VdiskOwnership = { ...current.value, drained: Math.max(current.value.drained, seq) };
    served.ownership.revision = await this.deps.own.update(key, next, current.revision);
  }

  private async purgeBelow(subject: string, seq: number, lastSeq: number): Promise<void> {
    // Purging the newest message would reset the subject's last sequence to 0 and
    // break the next append's expectation, so it always stays.
    const below = Math.min(seq, lastSeq);
    if (below <= 1) return;
    await this.jsm.streams.purge(streams.oplog, { filter: subject, seq: below });
  }

  /** Drains every served vDisk and stops. */
  async stop(): Promise<void> {
    await Promise.all(
      [...this.served.values()].map(async (s) => {
        await s.vdisk.close();
      }),
    );
    this.served.clear();
    await this.link.stop();
  }
}
