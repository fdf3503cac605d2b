// `strata vdisk resize`'s rules: a vDisk grows, never shrinks; a snapshot keeps its
// size; a vDisk being deleted or created is not resized; the same size is a no-op.
import type { ObjectOf } from '@strata/proto';
import { describeResize, resizeRefusal } from '../src/resize';

const MiB = 2 ** 20;
const vdisk = (spec: Partial<ObjectOf<'vdisk'>['spec']> = {}): ObjectOf<'vdisk'> =>
  ({ kind: 'vdisk', id: 7n, name: 'v', revision: 3, createdAtMs: 0, updatedAtMs: 0, epoch: 1, spec: { container: 5n, sizeBytes: 8 * MiB, blockSizeBytes: MiB, shared: false, qos: {}, ...spec } }) as unknown as ObjectOf<'vdisk'>;

describe('vdisk resize', () => {
  it('lets a vDisk grow or stay, and says what changed', () => {
    expect(resizeRefusal(vdisk(), 16 * MiB)).toBeUndefined();
    expect(resizeRefusal(vdisk(), 8 * MiB)).toBeUndefined();
    expect(describeResize('v', 8 * MiB, 16 * MiB)).toBe('vdisk v resized from 8 MiB to 16 MiB; a client sees the new size when it reconnects (qemu: block_resize)');
    expect(describeResize('v', 8 * MiB, 8 * MiB)).toBe('vdisk v is already 8 MiB; nothing changed');
  });

  it('refuses to shrink, to resize a snapshot, and a vDisk being deleted or created', () => {
    expect(resizeRefusal(vdisk(), 4 * MiB)?.message).toBe('--size: 4 MiB is smaller than vdisk v (8 MiB); a vDisk only grows (shrinking would discard the data past the new end)');
    expect(resizeRefusal(vdisk({ snapshotOf: 2n }), 16 * MiB)?.message).toBe("vdisk v is a snapshot: its size is its source's at the cut (clone it, then resize the clone)");
    expect(resizeRefusal(vdisk({ snapshotOf: 2n }), 8 * MiB)).toBeUndefined();
    expect(resizeRefusal(vdisk({ deletingSinceMs: 5 }), 16 * MiB)?.message).toBe('vdisk v is being deleted; it can no longer be resized');
    expect(resizeRefusal(vdisk({ creatingSinceMs: 5, cloneOf: 2n }), 16 * MiB)?.message).toBe('vdisk v is still being created; resize it once it is');
  });
});
