// `strata vdisk resize`: a vDisk grows, never shrinks. The change is one
// compare-and-set of the vDisk's config entry, so a crash leaves the old size or the
// new one; the io-director and the vdisk-controller serve up to the new end from the
// next request past the old one (each reads the size again then). A client sees the
// new size when it next connects (qemu: `block_resize`, or reconnect).
import type { ObjectOf } from '@strata/proto';
import { UsageError, formatSize } from './units';

/** Why `vdisk` cannot take `sizeBytes`, or undefined when it can (also when it already has it). */
export function resizeRefusal(vdisk: ObjectOf<'vdisk'>, sizeBytes: number): UsageError | undefined {
  const s = vdisk.spec;
  if (s.deletingSinceMs !== undefined) return new UsageError(`vdisk ${vdisk.name} is being deleted; it can no longer be resized`);
  if (s.creatingSinceMs !== undefined) return new UsageError(`vdisk ${vdisk.name} is still being created; resize it once it is`);
  if (s.snapshotOf !== undefined && sizeBytes !== s.sizeBytes) return new UsageError(`vdisk ${vdisk.name} is a snapshot: its size is its source's at the cut (clone it, then resize the clone)`);
  if (sizeBytes < s.sizeBytes) return new UsageError(`--size: ${formatSize(sizeBytes)} is smaller than vdisk ${vdisk.name} (${formatSize(s.sizeBytes)}); a vDisk only grows (shrinking would discard the data past the new end)`);
  return undefined;
}

/** What the CLI prints after a resize. */
export function describeResize(name: string, before: number, after: number): string {
  if (before === after) return `vdisk ${name} is already ${formatSize(after)}; nothing changed`;
  return `vdisk ${name} resized from ${formatSize(before)} to ${formatSize(after)}; a client sees the new size when it reconnects (qemu: block_resize)`;
}
