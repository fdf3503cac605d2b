// Cluster events (proto/events.cddl), stored in the EVENTS stream under
// `strata.events.<category>` for operators, the console and watchers.
import { z } from 'zod';
import { u64, uint } from '@strata/codec';

export const EventType = {
  created: 'created',
  updated: 'updated',
  deleted: 'deleted',
  nodeDead: 'node.dead',
  nodeAlive: 'node.alive',
  nodeRestarted: 'node.restarted',
  leaderElected: 'leader.elected',
  ownerChanged: 'owner.changed',
} as const;
export type EventType = (typeof EventType)[keyof typeof EventType];

export const clusterEvent = z.strictObject({
  type: z.enum(EventType),
  /** Wall-clock time, ms since the epoch. */
  atMs: uint,
  /** The config leader epoch under which the event happened. */
  epoch: uint,
  /** The object concerned, when there is one. */
  kind: z.string().optional(),
  id: u64.optional(),
  name: z.string().optional(),
  /** Node incarnation for liveness events. */
  incarnation: uint.optional(),
  /** For owner.changed: the new owner, the old one and the new ownership epoch. */
  owner: z.string().optional(),
  previousOwner: z.string().optional(),
  ownerEpoch: uint.optional(),
  /** Who caused it: `operator`, `failure-detector`, `election`, `failover`, `relinquish`. */
  cause: z.string(),
  /** One line for people: `node n2 declared dead after 6012 ms of silence`. */
  message: z.string(),
});
export type ClusterEvent = z.output<typeof clusterEvent>;
