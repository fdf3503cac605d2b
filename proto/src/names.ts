// Names of subjects, buckets and streams. Subjects are built by these functions
// only, never spelled out in services, so the protocol has one source.

/** Operations of the configuration interface (proto/config.cddl). */
export const CfgOp = {
  create: 'create',
  get: 'get',
  list: 'list',
  update: 'update',
  delete: 'delete',
  status: 'status',
} as const;
export type CfgOp = (typeof CfgOp)[keyof typeof CfgOp];

export const subjects = {
  /** Requests to the config leader: `strata.cfg.create`. */
  cfg: (op: CfgOp): string => `strata.cfg.${op}`,
  /** Every config request, for the leader's subscription. */
  cfgAll: 'strata.cfg.*',
  /** Events of one category: `strata.events.node`. */
  events: (category: EventCategory): string => `strata.events.${category}`,
  /** Every event (the EVENTS stream's subjects). */
  eventsAll: 'strata.events.>',
} as const;

/** Categories of cluster events. */
export const EventCategory = {
  /** Configuration objects created, updated or deleted. */
  cfg: 'cfg',
  /** Node liveness: declared dead, alive again, restarted. */
  node: 'node',
  /** Leader elections of the cluster's roles. */
  leader: 'leader',
} as const;
export type EventCategory = (typeof EventCategory)[keyof typeof EventCategory];

/** KV buckets (design.md, "Shared state"). */
export const buckets = {
  cfg: 'cfg',
  hb: 'hb',
  own: 'own',
  ha: 'ha',
  /** The 64-bit id allocator's counter. */
  ids: 'ids',
} as const;

/** JetStream streams. */
export const streams = {
  events: 'EVENTS',
} as const;

/** Keys inside the buckets. */
export const keys = {
  /** A config object: `vdisk.12345`. */
  object: (kind: string, id: bigint): string => `${kind}.${id}`,
  /** The config leader's takeover marker in `cfg`. */
  cfgLeader: 'leader',
  /** The config leader's lease in `own`. */
  configLeaderLease: 'role.config',
  /** A node's heartbeat in `hb`: `node.12345`. */
  nodeHeartbeat: (nodeId: bigint): string => `node.${nodeId}`,
  /** The global id counter in `ids`. */
  idCounter: 'global',
} as const;
