// The io-director: entry of the I/O path on each node. It checks the request against
// the vDisk's configuration (exists, range inside the disk), finds the vDisk's owner
// in a watched copy of the `own` bucket, claims ownership by compare-and-set when
// the vDisk has none, and hands the request to the owner's admission control:
//  - owned here: this node's;
//  - a shared vDisk owned elsewhere: the owner's (forwarding; the reply travels
//    back the same way);
//  - an unshared vDisk owned elsewhere: its VM moved here, so the director first
//    asks the owner to relinquish it, then serves it here. Only while the config
//    leader holds this node alive: a node whose vdisk-controller never started (or
//    was declared dead) would take the vDisk where nothing serves it, and no
//    failover would move it on, since the node was never seen to fail. Until then
//    the request is forwarded to the owner, as for a shared vDisk.
// A gateway that opens a vDisk attaches it: its node becomes a volunteer, one of
// the nodes the config leader moves the vDisk to when its owner fails.
import type { Bus, RequestContext } from '@strata/bus';
import { ErrorCode, StrataError, isStrataError } from '@strata/errors';
import { modify, type TypedBucket, type WatchCache } from '@strata/kv';
import { attach, claim } from '@strata/ownership';
import {
  Liveness,
  VdcOp,
  ioRange,
  ioSchemas,
  keys,
  subjects,
  vdcRelinquishReply,
  vdcSnapshotReply,
  type VdcSnapshotReply,
  type VdcSnapshotRequest,
  type CfgEntry,
  type IoAttachReply,
  type IoOp,
  type IoRequest,
  type VdiskOwnership,
  type vdiskOwnership,
} from '@strata/proto';
import { SpanAttr, recordingSpan } from '@strata/tracing';

/**
 * Whether a failed request to the owner's node says the vDisk may have another owner
 * now: NOT_OWNER, or, for an owner elsewhere, the owner not reached (no service
 * answers its subject, or no reply in time), as when its node failed or its host is
 * cut off.
 */
function ownerMayHaveMoved(err: unknown, ownerIsHere: boolean): boolean {
  if (isStrataError(err, ErrorCode.NOT_OWNER)) return true;
  return !ownerIsHere && (isStrataError(err, ErrorCode.UNAVAILABLE) || isStrataError(err, ErrorCode.TIMEOUT));
}

export interface DirectorDeps {
  node: string;
  bus: Bus;
  own: TypedBucket<typeof vdiskOwnership>;
  ownership: WatchCache<VdiskOwnership>;
  /** The watched `vdisk.>` entries of `cfg`. */
  config: WatchCache<CfgEntry>;
  /** The watched `node.>` entries of `cfg`: their liveness, as the config leader records it. */
  nodes: WatchCache<CfgEntry>;
}

/** Compare-and-set attempts of an attach (claim or volunteer) before it answers UNAVAILABLE. */
const ATTACH_ATTEMPTS = 5;
/** Compare-and-set attempts of a first I/O's claim; a lost one reads the winner's record, so two suffice. */
const CLAIM_ATTEMPTS = 2;

export class Director {
  /** Relinquish requests in progress, one per vDisk however many I/Os wait for it. */
  private readonly relinquishing = new Map<bigint, Promise<string>>();
  /** Owners learnt from a relinquish before the watched copy shows them. */
  private readonly learnt = new Map<bigint, { owner: string; epoch: number }>();
  /** Reads of ownership records in progress (learnOwner), one per vDisk. */
  private readonly learning = new Map<bigint, Promise<void>>();

  constructor(private readonly deps: DirectorDeps) {}

  /** A gateway on this node opened the vDisk: claim it if nobody owns it, and volunteer. */
  async attach(vdiskId: bigint): Promise<IoAttachReply> {
    this.vdiskConfig(vdiskId);
    const { after } = await modify(
      this.deps.own,
      keys.vdiskOwnership(vdiskId),
      (current) => attach(current?.value ?? null, this.deps.node),
      ATTACH_ATTEMPTS,
    );
    const { owner, epoch, volunteers } = after!.value;
    return { owner, epoch, volunteers };
  }

  /**
   * A snapshot of the vDisk (`strata vdisk snapshot`): sent to its owner's controller,
   * which takes the cut (a vDisk nobody owns yet is claimed first, as by its first I/O).
   */
  async snapshot(req: VdcSnapshotRequest, ctx: RequestContext): Promise<VdcSnapshotReply> {
    this.vdiskConfig(req.vdisk);
    const owner = await this.ownerOf(req.vdisk);
    return this.deps.bus.request(subjects.controller(owner, VdcOp.snapshot), req, vdcSnapshotReply, { timeoutMs: Math.max(1, Math.floor(ctx.remainingMs())) });
  }

  private vdiskConfig(vdiskId: bigint): Extract<CfgEntry, { kind: 'vdisk' }> {
    const cfg = this.deps.config.get(keys.object('vdisk', vdiskId))?.value;
    if (cfg === undefined || !('kind' in cfg) || cfg.kind !== 'vdisk') throw new StrataError(ErrorCode.NOT_FOUND, `vdisk ${vdiskId} does not exist`);
    // A vDisk being deleted (strata vdisk rm) is neither attached nor served: the
    // sweep is freeing its space, and a claim or a write now would bring it back.
    if (cfg.spec.deletingSinceMs !== undefined) throw new StrataError(ErrorCode.NOT_FOUND, `vdisk ${cfg.name} is being deleted`);
    // A snapshot or clone whose rows are still being copied (the tentative half).
    if (cfg.spec.creatingSinceMs !== undefined) throw new StrataError(ErrorCode.NOT_FOUND, `vdisk ${cfg.name} is being created`);
    return cfg;
  }

  /** The vDisk's size as the `cfg` bucket itself has it, when newer than the watched copy's `known`. */
  private async currentSize(vdiskId: bigint, known: number): Promise<number> {
    const entry = await this.deps.config.latest(keys.object('vdisk', vdiskId));
    const value = entry?.value;
    return value !== undefined && 'kind' in value && value.kind === 'vdisk' ? Math.max(known, value.spec.sizeBytes) : known;
  }

  /** Handles one I/O request of kind `op`. */
  async handle(op: IoOp, request: IoRequest, ctx: RequestContext): Promise<unknown> {
    const vdiskId = request.vdisk;
    const cfg = this.vdiskConfig(vdiskId);
    const range = ioRange(request);
    // The bus's `handle strata.io.<node>.<op>` span: what the request is about.
    recordingSpan()?.setAttributes({
      [SpanAttr.vdisk]: String(vdiskId),
      [SpanAttr.vdiskName]: cfg.name,
      [SpanAttr.ioOp]: op,
      ...(range === undefined ? {} : { [SpanAttr.offset]: range.offset, [SpanAttr.length]: range.length }),
    });
    if (range !== undefined) {
      if (range.length <= 0) throw new StrataError(ErrorCode.INVALID, 'length must be greater than 0');
      if (range.offset + range.length > cfg.spec.sizeBytes) {
        // The vDisk may have grown (strata vdisk resize) before the watched copy saw it.
        const sizeBytes = await this.currentSize(vdiskId, cfg.spec.sizeBytes);
        if (range.offset + range.length > sizeBytes) throw new StrataError(ErrorCode.INVALID, `range ${range.offset}+${range.length} is past the end of vdisk ${cfg.name} (${sizeBytes} bytes)`);
      }
    }
    let owner = await this.ownerOf(vdiskId);
    if (owner !== this.deps.node && !cfg.spec.shared && this.aliveHere()) owner = await this.relinquishTo(vdiskId, owner, ctx);
    recordingSpan()?.setAttribute(SpanAttr.owner, owner);
    try {
      return await this.deps.bus.request(subjects.admission(owner, op), request, ioSchemas[op].reply, { timeoutMs: Math.max(1, Math.floor(ctx.remainingMs())) });
    } catch (err) {
      // The node asked no longer owns the vDisk, or cannot be reached (it may have
      // failed, and the vDisk moved on), so the watched copy of `own` may be behind:
      // by a moment, or for good when its consumer died with its nats-server (seen
      // under a server kill, and with the owner's host cut off: the consumer lived on
      // the cut server, and every retry went back to the old owner). Learn the owner
      // from the record itself, so the gateway's retry goes to the right node.
      if (ownerMayHaveMoved(err, owner === this.deps.node)) await this.learnOwner(vdiskId).catch(() => undefined);
      throw err;
    }
  }

  /** Whether the config leader records this node alive: its vdisk-controller heartbeats, so a vDisk moved here is served. */
  private aliveHere(): boolean {
    return this.deps.nodes.values().some(({ value }) => 'kind' in value && value.kind === 'node' && value.name === this.deps.node && value.status.liveness === Liveness.alive);
  }

  /**
   * Reads the vDisk's ownership record and, when it is newer than the watched copy,
   * serves by it until the copy catches up. One read per vDisk at a time, however
   * many requests failed meanwhile.
   */
  private learnOwner(vdiskId: bigint): Promise<void> {
    let pending = this.learning.get(vdiskId);
    if (pending === undefined) {
      pending = this.readOwner(vdiskId).finally(() => this.learning.delete(vdiskId));
      this.learning.set(vdiskId, pending);
    }
    return pending;
  }

  private async readOwner(vdiskId: bigint): Promise<void> {
    const current = await this.deps.own.get(keys.vdiskOwnership(vdiskId));
    if (current === null) return;
    const watched = this.deps.ownership.get(keys.vdiskOwnership(vdiskId))?.value;
    const learnt = this.learnt.get(vdiskId);
    const known = Math.max(watched?.epoch ?? 0, learnt?.epoch ?? 0);
    if (current.value.epoch > known) this.learnt.set(vdiskId, { owner: current.value.owner, epoch: current.value.epoch });
  }

  /**
   * An unshared vDisk's I/O arrived here while another node owns it: its VM moved.
   * Asks the owner to hand it over (once, however many requests wait) and returns
   * the owner after that: this node, unless the vDisk had moved elsewhere meanwhile.
   */
  private relinquishTo(vdiskId: bigint, owner: string, ctx: RequestContext): Promise<string> {
    let pending = this.relinquishing.get(vdiskId);
    if (pending === undefined) {
      pending = (async () => {
        const reply = await this.deps.bus.request(subjects.controller(owner, VdcOp.relinquish), { vdisk: vdiskId, to: this.deps.node }, vdcRelinquishReply, {
          timeoutMs: Math.max(1, Math.floor(ctx.remainingMs())),
        });
        recordingSpan()?.addEvent('relinquished', { [SpanAttr.owner]: reply.owner, [SpanAttr.epoch]: reply.epoch, 'strata.previous_owner': owner });
        this.learnt.set(vdiskId, reply);
        return reply.owner;
      })().finally(() => this.relinquishing.delete(vdiskId));
      this.relinquishing.set(vdiskId, pending);
    }
    return pending;
  }

  /** The owner's node, claiming the vDisk for this node when nobody owns it. */
  private async ownerOf(vdiskId: bigint): Promise<string> {
    const key = keys.vdiskOwnership(vdiskId);
    const watched = this.deps.ownership.get(key)?.value;
    const learnt = this.learnt.get(vdiskId);
    if (learnt !== undefined) {
      if (watched === undefined || watched.epoch < learnt.epoch) return learnt.owner;
      this.learnt.delete(vdiskId);
    }
    const known = watched?.owner;
    if (known !== undefined) return known;
    // Created when absent; when another director claimed it first, its owner is the answer.
    const { after, written } = await modify(this.deps.own, key, (current) => claim(current?.value ?? null, this.deps.node), CLAIM_ATTEMPTS);
    if (written) recordingSpan()?.addEvent('claimed ownership', { [SpanAttr.owner]: this.deps.node, [SpanAttr.epoch]: 1 });
    return after!.value.owner;
  }
}
