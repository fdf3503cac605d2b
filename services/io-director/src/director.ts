// The io-director: entry of the I/O path on each node. It checks the request against
// the vDisk's configuration (exists, range inside the disk), finds the vDisk's owner
// in a watched copy of the `own` bucket, claims ownership by compare-and-set when
// the vDisk has none, and hands the request to the owner's admission control: its
// own node's, or, for a vDisk owned elsewhere, the owner's (forwarding; the reply
// travels back the same way).
import type { Bus, RequestContext } from '@strata/bus';
import { ErrorCode, StrataError, isStrataError } from '@strata/errors';
import type { TypedBucket, WatchCache } from '@strata/kv';
import { ioRange, ioSchemas, keys, subjects, type CfgEntry, type IoOp, type IoRequest, type VdiskOwnership, type vdiskOwnership } from '@strata/proto';
import { SpanAttr, recordingSpan } from '@strata/tracing';

export interface DirectorDeps {
  node: string;
  bus: Bus;
  own: TypedBucket<typeof vdiskOwnership>;
  ownership: WatchCache<VdiskOwnership>;
  config: WatchCache<CfgEntry>;
}

export class Director {
  constructor(private readonly deps: DirectorDeps) {}

  /** Handles one I/O request of kind `op`. */
  async handle(op: IoOp, request: IoRequest, ctx: RequestContext): Promise<unknown> {
    const vdiskId = request.vdisk;
    const cfg = this.deps.config.get(keys.object('vdisk', vdiskId))?.value;
    if (cfg === undefined || !('kind' in cfg) || cfg.kind !== 'vdisk') throw new StrataError(ErrorCode.NOT_FOUND, `vdisk ${vdiskId} does not exist`);
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
        throw new StrataError(ErrorCode.INVALID, `range ${range.offset}+${range.length} is past the end of vdisk ${cfg.name} (${cfg.spec.sizeBytes} bytes)`);
      }
    }
    const owner = await this.ownerOf(vdiskId);
    recordingSpan()?.setAttribute(SpanAttr.owner, owner);
    return this.deps.bus.request(subjects.admission(owner, op), request, ioSchemas[op].reply, { timeoutMs: Math.max(1, Math.floor(ctx.remainingMs())) });
  }

  /** The owner's node, claiming the vDisk for this node when nobody owns it. */
  private async ownerOf(vdiskId: bigint): Promise<string> {
    const key = keys.vdiskOwnership(vdiskId);
    const known = this.deps.ownership.get(key)?.value.owner;
    if (known !== undefined) return known;
    try {
      await this.deps.own.create(key, { owner: this.deps.node, epoch: 1, volunteers: [], drained: 0 });
      recordingSpan()?.addEvent('claimed ownership', { [SpanAttr.owner]: this.deps.node, [SpanAttr.epoch]: 1 });
      return this.deps.node;
    } catch (err) {
      if (!isStrataError(err, ErrorCode.CONFLICT)) throw err;
      // Another director claimed it first.
      const current = await this.deps.own.get(key);
      if (current === null) throw new StrataError(ErrorCode.UNAVAILABLE, `vdisk ${vdiskId}: ownership changed while claiming it; try again`);
      return current.value.owner;
    }
  }
}
