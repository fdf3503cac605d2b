// Heartbeats (proto/liveness.cddl): each node writes its record in the `hb` bucket
// every heartbeat interval; the config leader's failure detector reads them.
import { z } from 'zod';
import { u64, uint } from '@strata/codec';

export const heartbeat = z.strictObject({
  /** Grows with every process start and every rejoin after being declared dead. */
  incarnation: uint,
  /** Counts heartbeats within the incarnation. */
  seq: uint,
  /** Sender's wall clock, ms since the epoch: for people only, never compared. */
  atMs: uint,
  /** The sender's heartbeat interval, ms. */
  intervalMs: uint,
});
export type Heartbeat = z.output<typeof heartbeat>;

/** The id allocator's counter (bucket `ids`): the next id never handed out. */
export const idCounter = z.strictObject({ next: u64 });
