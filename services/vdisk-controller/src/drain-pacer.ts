// Drain is background work: its writes were acknowledged long ago, and what it costs
// (reading the index, checksums, a write to every replica, metadata) is paid by the
// same processes and cores that serve foreground I/O. While the node serves
// high-class I/O, the drains of lower-class vDisks are paced: one extent group at a
// time, and after each extent-store write a pause that keeps drain busy for at most
// `dutyPercent` of the time. Without it a low-priority vDisk's drain ran flat out
// beside a high-priority vDisk's QD1 reads and took their p99 from about 0.5 ms to
// 7.5 ms (bench:qos, colocated node); at 10% the p99 was 2.5 ms with nothing else
// changed.
//
// The class of a vDisk is the one admission scheduled its latest request in
// (`priority` on the request); a vDisk whose requests carry none (no admission in
// front, as in some tests) is not high. Nothing is paced while no high-class request
// arrived for `highActiveMs`. Pacing slows drain, never stops it: a lower-class
// writer that fills its oplog waits for room, which is the point.
import type { Priority } from '@strata/proto';

export interface DrainPacerOptions {
  /** Share of the time a paced drain may be busy, 1 to 100 (100: never paced). */
  dutyPercent: number;
  /** High-class I/O counts as active for this long after its last request. */
  highActiveMs: number;
  /** The longest single pause (a drain being closed waits out at most one). */
  pauseMaxMs: number;
  /** The clock, ms. */
  now: () => number;
}

export class DrainPacer {
  private lastHighMs = Number.NEGATIVE_INFINITY;
  /** The latest class of each vDisk that had a request (at most the cluster's vDisks). */
  private readonly classes = new Map<bigint, Priority>();

  constructor(private readonly options: DrainPacerOptions) {
    const { dutyPercent, highActiveMs, pauseMaxMs } = options;
    if (!(dutyPercent >= 1 && dutyPercent <= 100)) throw new RangeError(`dutyPercent must be from 1 to 100, got ${dutyPercent}`);
    if (!(highActiveMs >= 0) || !(pauseMaxMs >= 0)) throw new RangeError('highActiveMs and pauseMaxMs must not be negative');
  }

  /** A request for `vdisk` arrived, scheduled by admission in class `priority` (undefined: not told). */
  note(vdisk: bigint, priority: Priority | undefined): void {
    if (priority === undefined) return;
    if (priority === 'high') this.lastHighMs = this.options.now();
    if (this.classes.get(vdisk) !== priority) this.classes.set(vdisk, priority);
  }

  /** Whether `vdisk`'s drain is paced now. */
  paced(vdisk: bigint): boolean {
    if (this.options.dutyPercent >= 100) return false;
    if (this.options.now() - this.lastHighMs > this.options.highActiveMs) return false;
    return this.classes.get(vdisk) !== 'high';
  }

  /** How long `vdisk`'s drain waits after a write that took `workMs`: 0 when not paced. */
  pauseAfterMs(vdisk: bigint, workMs: number): number {
    if (!this.paced(vdisk)) return 0;
    return Math.min(this.options.pauseMaxMs, Math.max(0, workMs) * (100 / this.options.dutyPercent - 1));
  }
}
