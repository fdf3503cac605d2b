// `strata vdisk snapshot NAME SNAP` and `strata vdisk clone SNAP NEW`, each a tentative
// record and a commit. The CLI creates the new vDisk's config object with
// `creatingSinceMs` set (not exported, not served, and no extent group is deleted by
// the sweep while it is set), then fills its rows, then commits by removing the mark
// with a compare-and-set. A snapshot's rows are cut by the source's owner (the
// io-director forwards the request to its vdisk-controller: it holds new writes,
// drains, bumps the source's generation and copies the rows); a clone's rows are a
// copy of the snapshot's, which never change. If a step fails the new object is
// marked deleting and the sweep removes what it got; if the CLI itself dies, the sweep
// removes it once the mark is older than its creating timeout.
import { ErrorCode, StrataError } from '@strata/errors';
import { EventType, type ClusterEvent, type ObjectOf, type VdcSnapshotReply } from '@strata/proto';

type Vdisk = ObjectOf<'vdisk'>;
type VdiskSpec = Vdisk['spec'];

/** Why `v` cannot be snapshotted, or undefined when it can. */
export function snapshotRefusal(v: Vdisk): string | undefined {
  if (v.spec.snapshotOf !== undefined) return `vdisk ${v.name} is a snapshot: clone it (strata vdisk clone ${v.name} NEW) and snapshot the clone`;
  if (v.spec.deletingSinceMs !== undefined) return `vdisk ${v.name} is being deleted`;
  if (v.spec.creatingSinceMs !== undefined) return `vdisk ${v.name} is still being created`;
  return undefined;
}

/** Why `v` cannot be cloned, or undefined when it can. */
export function cloneRefusal(v: Vdisk): string | undefined {
  if (v.spec.snapshotOf === undefined) return `vdisk ${v.name} is not a snapshot: take one first (strata vdisk snapshot ${v.name} SNAP) and clone that`;
  if (v.spec.deletingSinceMs !== undefined) return `snapshot ${v.name} is being deleted`;
  if (v.spec.creatingSinceMs !== undefined) return `snapshot ${v.name} is still being created`;
  return undefined;
}

/** The tentative spec of a snapshot or clone of `from`: same container, size and block size; unshared; `creatingSinceMs` set. */
export function tentativeSpec(from: Vdisk, link: { snapshotOf: bigint } | { cloneOf: bigint }, nowMs: number): VdiskSpec {
  const { container, sizeBytes, blockSizeBytes, qos } = from.spec;
  return { container, sizeBytes, blockSizeBytes, shared: false, qos, ...link, creatingSinceMs: nowMs };
}

/** The committed spec: the tentative one without its mark. */
export function committedSpec(spec: VdiskSpec): VdiskSpec {
  const { creatingSinceMs: _mark, ...rest } = spec;
  return rest;
}

export interface SnapshotPorts {
  get(name: string): Promise<Vdisk>;
  create(name: string, spec: VdiskSpec): Promise<Vdisk>;
  update(name: string, spec: VdiskSpec, revision: number): Promise<Vdisk>;
  /** Asks the source's owner to cut the snapshot into the rows of `snapshot`. */
  cut(vdisk: bigint, snapshot: bigint): Promise<VdcSnapshotReply>;
  /** Copies every row of `from` to `to`; resolves to the rows and blocks copied. */
  copyRows(from: bigint, to: bigint): Promise<{ rows: number; blocks: number }>;
  event(event: ClusterEvent): Promise<void>;
  nowMs(): number;
}

/** Marks the tentative object deleting after a failed step (best effort: otherwise the sweep's creating timeout removes it). */
async function abandon(ports: SnapshotPorts, created: Vdisk): Promise<void> {
  await ports.update(created.name, { ...created.spec, deletingSinceMs: ports.nowMs() }, created.revision).catch(() => undefined);
}

/** Runs `fill` on a new tentative vDisk, then commits it; abandons it if anything fails. */
async function makeTentative<T>(ports: SnapshotPorts, name: string, spec: VdiskSpec, fill: (created: Vdisk) => Promise<T>): Promise<{ vdisk: Vdisk; result: T }> {
  const created = await ports.create(name, spec);
  try {
    const result = await fill(created);
    const vdisk = await ports.update(name, committedSpec(created.spec), created.revision);
    return { vdisk, result };
  } catch (err) {
    await abandon(ports, created);
    throw err;
  }
}

export async function takeSnapshot(ports: SnapshotPorts, sourceName: string, name: string): Promise<{ snapshot: Vdisk; cut: VdcSnapshotReply }> {
  const source = await ports.get(sourceName);
  const refusal = snapshotRefusal(source);
  if (refusal !== undefined) throw new StrataError(ErrorCode.INVALID, refusal);
  const { vdisk, result } = await makeTentative(ports, name, tentativeSpec(source, { snapshotOf: source.id }, ports.nowMs()), (created) => ports.cut(source.id, created.id));
  await ports.event({
    type: EventType.vdiskSnapshotCreated,
    atMs: ports.nowMs(),
    epoch: 0,
    kind: 'vdisk',
    id: vdisk.id,
    name: vdisk.name,
    durationMs: result.pauseMs,
    reason: `snapshot of vdisk ${source.name} (operator)`,
    cause: 'operator',
    message: `vdisk ${source.name}: snapshot ${vdisk.name} holds every write stored up to oplog sequence ${result.cutSeq} (${result.blocks} blocks); writes were held ${result.pauseMs} ms; generation now ${result.generation}`,
  });
  return { snapshot: vdisk, cut: result };
}

export async function makeClone(ports: SnapshotPorts, snapshotName: string, name: string): Promise<{ clone: Vdisk; rows: number; blocks: number }> {
  const snapshot = await ports.get(snapshotName);
  const refusal = cloneRefusal(snapshot);
  if (refusal !== undefined) throw new StrataError(ErrorCode.INVALID, refusal);
  const { vdisk, result } = await makeTentative(ports, name, tentativeSpec(snapshot, { cloneOf: snapshot.id }, ports.nowMs()), (created) => ports.copyRows(snapshot.id, created.id));
  await ports.event({
    type: EventType.vdiskCloneCreated,
    atMs: ports.nowMs(),
    epoch: 0,
    kind: 'vdisk',
    id: vdisk.id,
    name: vdisk.name,
    reason: `clone of snapshot ${snapshot.name} (operator)`,
    cause: 'operator',
    message: `vdisk ${vdisk.name} cloned from snapshot ${snapshot.name}: ${result.blocks} blocks shared until written`,
  });
  return { clone: vdisk, ...result };
}
