// `strata vdisk rm`: the tentative half of a delete. The vDisk's config object is
// marked deleting (`deletingSinceMs`) by compare-and-set on the revision read, so a
// concurrent change makes it fail rather than be lost; from then on it is neither
// attached, served nor changed, and the sweep frees what it holds. A vDisk that a
// client has open (a gateway reports it in `hb`, attach.<node>) is refused unless forced:
// the client's every request would fail from then on.
import { ErrorCode, StrataError } from '@strata/errors';
import type { GatewayAttachments, ObjectOf } from '@strata/proto';

/** Where `vdisk` is open, by the live reports (rewritten within three of their intervals, by `nowMs`). */
export function openOn(reports: readonly GatewayAttachments[], vdisk: bigint, nowMs: number): Array<{ node: string; connections: number }> {
  const out: Array<{ node: string; connections: number }> = [];
  for (const report of reports) {
    if (nowMs - report.atMs > 3 * report.intervalMs) continue;
    const open = report.vdisks.find((v) => v.vdisk === vdisk);
    if (open !== undefined && open.connections > 0) out.push({ node: report.node, connections: open.connections });
  }
  return out.sort((a, b) => a.node.localeCompare(b.node));
}

export interface RemovePorts {
  get(name: string): Promise<ObjectOf<'vdisk'>>;
  update(name: string, spec: ObjectOf<'vdisk'>['spec'], revision: number): Promise<unknown>;
  /** Every gateway's report of open vDisks. */
  attachments(): Promise<GatewayAttachments[]>;
  nowMs(): number;
}

export type RemoveOutcome = { marked: true; openOn: Array<{ node: string; connections: number }> } | { marked: false; sinceMs: number };

/** Marks `name` deleting; `marked: false` when it was already. Refuses CONFLICT when open and not `force`. */
export async function markDeleting(ports: RemovePorts, name: string, options: { force: boolean }): Promise<RemoveOutcome> {
  const vdisk = await ports.get(name);
  if (vdisk.spec.deletingSinceMs !== undefined) return { marked: false, sinceMs: vdisk.spec.deletingSinceMs };
  const nowMs = ports.nowMs();
  const open = openOn(await ports.attachments(), vdisk.id, nowMs);
  if (open.length > 0 && !options.force) {
    const where = open.map((o) => `${o.node} (${o.connections} connection${o.connections === 1 ? '' : 's'})`).join(', ');
    throw new StrataError(ErrorCode.CONFLICT, `vdisk ${name} is open on ${where}; disconnect its clients first, or use --force (their every request then fails)`);
  }
  await ports.update(name, { ...vdisk.spec, deletingSinceMs: nowMs }, vdisk.revision);
  return { marked: true, openOn: open };
}
