// The rules of the configuration database, as pure functions over a view of the
// current objects: a spec is checked against its kind's schema, then against the
// other objects (references exist, names are unique, a replication factor fits the
// nodes with disks, nothing in use is deleted). Each function returns what to
// store or throws INVALID / CONFLICT / NOT_FOUND with a message naming the field.
import { ErrorCode, StrataError } from '@strata/errors';
import type { z } from 'zod';
import type { CfgObjectWithRevision, Kind, ObjectOf, createRequest, updateRequest } from '@strata/proto';

/** What the rules may look at. */
export interface ConfigView {
  get<K extends Kind>(kind: K, id: bigint): ObjectOf<K> | undefined;
  byName<K extends Kind>(kind: K, name: string): ObjectOf<K> | undefined;
  list<K extends Kind>(kind: K): ObjectOf<K>[];
}

function invalid(field: string, message: string): StrataError {
  return new StrataError(ErrorCode.INVALID, `${field}: ${message}`);
}

function requireRef(view: ConfigView, field: string, kind: Kind, id: bigint | undefined): void {
  if (id !== undefined && view.get(kind, id) === undefined) throw invalid(field, `${kind} ${id} does not exist`);
}

/**
 * A new snapshot or clone: created tentative (creatingSinceMs), as the CLI does, linked
 * to a vDisk of the same size that exists: a snapshot to a vDisk that is not a
 * snapshot, a clone to a snapshot; not both.
 */
function checkLineage(view: ConfigView, s: { sizeBytes: number; snapshotOf?: bigint | undefined; cloneOf?: bigint | undefined; creatingSinceMs?: number | undefined }): void {
  const parentId = s.snapshotOf ?? s.cloneOf;
  if (parentId === undefined) {
    if (s.creatingSinceMs !== undefined) throw invalid('spec.creatingSinceMs', 'is only for a snapshot or clone being made');
    return;
  }
  const field = s.snapshotOf !== undefined ? 'spec.snapshotOf' : 'spec.cloneOf';
  if (s.snapshotOf !== undefined && s.cloneOf !== undefined) throw invalid('spec.cloneOf', 'a vDisk is a snapshot or a clone, not both');
  if (s.creatingSinceMs === undefined) throw invalid('spec.creatingSinceMs', 'a snapshot or clone is created tentative (strata vdisk snapshot / clone)');
  const parent = view.get('vdisk', parentId);
  if (parent === undefined || parent.kind !== 'vdisk') throw invalid(field, `vdisk ${parentId} does not exist`);
  if (s.snapshotOf !== undefined && parent.spec.snapshotOf !== undefined) throw invalid(field, `vdisk ${parent.name} is a snapshot: a snapshot of a snapshot is refused (clone it first)`);
  if (s.cloneOf !== undefined && parent.spec.snapshotOf === undefined) throw invalid(field, `vdisk ${parent.name} is not a snapshot: only snapshots are cloned`);
  if (s.sizeBytes !== parent.spec.sizeBytes) throw invalid('spec.sizeBytes', `must be ${parent.spec.sizeBytes} bytes, the size of vdisk ${parent.name}`);
}

/** Nodes that have at least one disk (in `pool`, when given). */
export function nodesWithDisks(view: ConfigView, pool?: bigint): Set<bigint> {
  const nodes = new Set<bigint>();
  for (const disk of view.list('disk')) {
    if (pool === undefined || disk.spec.pool === pool) nodes.add(disk.spec.node);
  }
  return nodes;
}

/**
 * Container settings nothing in Strata honours yet, refused rather than stored and
 * ignored, so no record says a container deduplicates when it does not. Their
 * defaults state what happens anyway and are accepted.
 */
function refuseNotBuilt(s: { dedup: string; compression: string; maxCapacityBytes?: number; reservedCapacityBytes: number }): void {
  if (s.dedup !== 'off') throw invalid('spec.dedup', `${s.dedup} is not built yet; containers store data without dedup (use off)`);
  if (s.compression !== 'off') throw invalid('spec.compression', `${s.compression} is not built yet; containers store data uncompressed (use off)`);
  if (s.maxCapacityBytes !== undefined) throw invalid('spec.maxCapacityBytes', 'is not built yet; nothing limits how much data a container holds');
  if (s.reservedCapacityBytes !== 0) throw invalid('spec.reservedCapacityBytes', 'is not built yet; no capacity is set aside for a container (use 0)');
}

/** A kind with its checked spec, as a create or update request carries it. */
export type KindSpec = z.output<typeof createRequest> | z.output<typeof updateRequest>;

/** Checks a new or changed spec against the other objects (`existing` for an update). */
export function checkReferences(view: ConfigView, request: KindSpec, existing?: CfgObjectWithRevision): void {
  switch (request.kind) {
    case 'node':
      if (existing === undefined && request.spec.drainingSinceMs !== undefined) throw invalid('spec.drainingSinceMs', 'is set by a drain (strata node drain), not at create');
      return;
    case 'pool':
      return;
    case 'host':
      requireRef(view, 'spec.node', 'node', request.spec.node);
      return;
    case 'disk': {
      const s = request.spec;
      requireRef(view, 'spec.node', 'node', s.node);
      requireRef(view, 'spec.pool', 'pool', s.pool);
      if (existing === undefined && s.drainingSinceMs !== undefined) throw invalid('spec.drainingSinceMs', 'is set by a drain (strata disk drain), not at create');
      const clash = view.list('disk').find((d) => d.id !== existing?.id && d.spec.node === s.node && d.spec.path === s.path);
      if (clash !== undefined) throw new StrataError(ErrorCode.CONFLICT, `spec.path: disk ${clash.name} already uses ${s.path} on that node`);
      return;
    }
    case 'container': {
      const s = request.spec;
      refuseNotBuilt(s);
      requireRef(view, 'spec.pool', 'pool', s.pool);
      const nodes = nodesWithDisks(view, s.pool).size;
      if (s.replicationFactor > nodes) {
        throw invalid('spec.replicationFactor', `${s.replicationFactor} is more than the ${nodes} node${nodes === 1 ? '' : 's'} with disks${s.pool === undefined ? '' : ' in the pool'}`);
      }
      return;
    }
    case 'vdisk': {
      const s = request.spec;
      requireRef(view, 'spec.container', 'container', s.container);
      if (existing?.kind !== 'vdisk' && s.deletingSinceMs !== undefined) throw invalid('spec.deletingSinceMs', 'is set by a delete (strata vdisk rm), not at create');
      if (existing?.kind === 'vdisk') {
        const before = existing.spec;
        // Deleting is the tentative half of a delete: it is never undone, and the
        // sweep that commits it must find the vDisk as it was marked.
        if (before.deletingSinceMs !== undefined) throw invalid('spec', `vdisk ${existing.name} is being deleted (since ${new Date(before.deletingSinceMs).toISOString()}); it can no longer be changed`);
        // Marked deleting only if it could be deleted: the sweep's commit must not be
        // refused after it has freed the vDisk's space (a VM still naming it).
        if (s.deletingSinceMs !== undefined) checkDeletable(view, existing);
        if (s.container !== before.container) throw invalid('spec.container', 'a vDisk cannot move to another container');
        if (s.sizeBytes < before.sizeBytes) throw invalid('spec.sizeBytes', `cannot shrink from ${before.sizeBytes} bytes (data would be lost)`);
        if (s.blockSizeBytes !== before.blockSizeBytes) throw invalid('spec.blockSizeBytes', 'cannot change after creation');
        // A snapshot stays a snapshot (read-only), a clone a clone; a snapshot's size is its source's at the cut.
        if (s.snapshotOf !== before.snapshotOf) throw invalid('spec.snapshotOf', 'cannot change after creation');
        if (s.cloneOf !== before.cloneOf) throw invalid('spec.cloneOf', 'cannot change after creation');
        if (s.snapshotOf !== undefined && s.sizeBytes !== before.sizeBytes) throw invalid('spec.sizeBytes', 'a snapshot cannot be resized');
        // Creating is the tentative half of a snapshot or clone: the commit removes it, nothing sets it again.
        if (s.creatingSinceMs !== undefined && s.creatingSinceMs !== before.creatingSinceMs) throw invalid('spec.creatingSinceMs', 'is set only when a snapshot or clone is created');
      } else {
        checkLineage(view, s);
      }
      return;
    }
    case 'vm': {
      const s = request.spec;
      requireRef(view, 'spec.host', 'host', s.host);
      s.vdisks.forEach((id, i) => requireRef(view, `spec.vdisks.${i}`, 'vdisk', id));
      return;
    }
  }
}

/** Throws CONFLICT when other objects still refer to `target`. */
export function checkDeletable(view: ConfigView, target: CfgObjectWithRevision): void {
  const users: string[] = [];
  const refer = <K extends Kind>(kind: K, uses: (o: ObjectOf<K>) => boolean): void => {
    for (const o of view.list(kind)) if (uses(o)) users.push(`${kind} ${o.name}`);
  };
  switch (target.kind) {
    case 'node':
      refer('disk', (o) => o.spec.node === target.id);
      refer('host', (o) => o.spec.node === target.id);
      break;
    case 'pool':
      refer('disk', (o) => o.spec.pool === target.id);
      refer('container', (o) => o.spec.pool === target.id);
      break;
    case 'container':
      refer('vdisk', (o) => o.spec.container === target.id);
      break;
    case 'host':
      refer('vm', (o) => o.spec.host === target.id);
      break;
    case 'vdisk':
      refer('vm', (o) => o.spec.vdisks.includes(target.id));
      break;
    case 'disk':
    case 'vm':
      break;
  }
  if (users.length > 0) {
    const shown = users.slice(0, 5).join(', ') + (users.length > 5 ? ` and ${users.length - 5} more` : '');
    throw new StrataError(ErrorCode.CONFLICT, `${target.kind} ${target.name} is still used by ${shown}`);
  }
}

/** Throws CONFLICT when `name` is taken within `kind`. */
export function checkNameFree(view: ConfigView, kind: Kind, name: string): void {
  if (view.byName(kind, name) !== undefined) throw new StrataError(ErrorCode.CONFLICT, `name: ${kind} "${name}" already exists`);
}

/** Finds the object a request names by id or name, or throws NOT_FOUND. */
export function resolve<K extends Kind>(view: ConfigView, kind: K, sel: { id?: bigint | undefined; name?: string | undefined }): ObjectOf<K> {
  const found = sel.id !== undefined ? view.get(kind, sel.id) : sel.name !== undefined ? view.byName(kind, sel.name) : undefined;
  if (found === undefined) throw new StrataError(ErrorCode.NOT_FOUND, `${kind} ${sel.name !== undefined ? `"${sel.name}"` : String(sel.id)} does not exist`);
  return found;
}
