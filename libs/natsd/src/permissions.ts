// Least privilege on the bus (pure: no I/O). Each process of the cluster connects as
// a NATS user of its role and instance (`gateway-n1`, `config-1`), and the server
// lets it publish and subscribe only to what its role needs: allow lists, so
// everything else is denied. PROTOCOL.md section 14 tables the same grants; a test
// (test/integration/auth.test.ts) tries a forbidden subject for every role.
//
// Why user and password rather than nkeys or JWTs: the JS client and nats-server
// take them with no extra files or tools, a server config lists them with their
// permissions in one block, and `strata up` makes them with crypto.randomBytes. With
// TLS on every connection the password never crosses the wire in clear.
import { buckets, CfgOp, EventCategory, VdcOp, keys, streams, subjects } from '@strata/proto';

/** The roles a connection can have. `admin` is the operator's CLI: everything. */
export const Role = {
  admin: 'admin',
  config: 'config',
  gateway: 'gateway',
  ioDirector: 'io-director',
  admission: 'admission',
  vdiskController: 'vdisk-controller',
  extentStore: 'extent-store',
  metadataShard: 'metadata-shard',
  curator: 'curator',
  haAgent: 'ha-agent',
} as const;
export type Role = (typeof Role)[keyof typeof Role];

/** What one connection may publish and subscribe to; nothing else. */
export interface Grant {
  publish: string[];
  subscribe: string[];
  /** May answer requests (publish once to the reply subject of a message it received). */
  respond: boolean;
}

/**
 * Who a node-scoped grant is for: the node's name, and once the config service has
 * registered it, its id and its disks' ids (the keys of its heartbeat and disk
 * usage in `hb`). Unknown ids leave those keys open to any node of the role, which
 * is what a cluster gets until its nodes are registered.
 */
export interface NodeScope {
  node: string;
  nodeId?: bigint;
  diskIds?: readonly bigint[];
}

/** Replies come back on the requester's inbox; every role makes requests. */
const INBOX = '_INBOX.>';
/** The JetStream account check every JetStream client makes first. */
const JS_INFO = '$JS.API.INFO';

/**
 * Reading a stream and keeping up with it: its info, creating it when missing (an
 * identical configuration binds to it; a different one is refused), direct and
 * stored message gets, ordered consumers (create, next, flow control, delete).
 */
function streamRead(stream: string): string[] {
  return [
    `$JS.API.STREAM.INFO.${stream}`,
    `$JS.API.STREAM.CREATE.${stream}`,
    `$JS.API.STREAM.MSG.GET.${stream}`,
    `$JS.API.DIRECT.GET.${stream}`,
    `$JS.API.DIRECT.GET.${stream}.>`,
    `$JS.API.CONSUMER.CREATE.${stream}`,
    `$JS.API.CONSUMER.CREATE.${stream}.>`,
    `$JS.API.CONSUMER.INFO.${stream}.>`,
    `$JS.API.CONSUMER.DELETE.${stream}.>`,
    `$JS.API.CONSUMER.MSG.NEXT.${stream}.>`,
    `$JS.FC.${stream}.>`,
    `$JS.ACK.${stream}.>`,
  ];
}

/** The stream that holds bucket `bucket`. */
function kvStream(bucket: string): string {
  return `KV_${bucket}`;
}

/** Read (and watch) a bucket; write only the keys matching `writeKeys` (NATS wildcards). */
function kv(bucket: string, writeKeys: readonly string[] = []): string[] {
  return [...streamRead(kvStream(bucket)), ...writeKeys.map((key) => `$KV.${bucket}.${key}`)];
}

function merge(...grants: Array<Partial<Grant>>): Grant {
  const publish = new Set<string>();
  const subscribe = new Set<string>();
  let respond = false;
  for (const g of grants) {
    g.publish?.forEach((s) => publish.add(s));
    g.subscribe?.forEach((s) => subscribe.add(s));
    respond ||= g.respond === true;
  }
  return { publish: [...publish].sort(), subscribe: [...subscribe].sort(), respond };
}

/** Reading the configuration: every role looks objects up (writing it is the operator's). */
const CFG_READ = [subjects.cfg(CfgOp.get), subjects.cfg(CfgOp.list), subjects.cfg(CfgOp.status)];

/** What every connection of a role needs: its health check, its replies, JetStream's account check, config reads. */
function base(actor: string, instance: string): Partial<Grant> {
  return { publish: [JS_INFO, ...CFG_READ], subscribe: [INBOX, subjects.health(actor, instance)], respond: true };
}

function events(...categories: EventCategory[]): string[] {
  return [...streamRead(streams.events).filter((s) => s.startsWith('$JS.API.STREAM.')), ...categories.map((c) => subjects.events(c))];
}

const ANY = '*';

/** A built subject or key with its last token any value: `node.12` becomes `node.*`. */
function anyLast(example: string): string {
  return example.replace(/[^.]+$/, ANY);
}

/** Keys of a node's own heartbeat and disks in `hb`: exact once registered, any node's before. */
function nodeHeartbeatKey(scope: NodeScope): string {
  return scope.nodeId === undefined ? anyLast(keys.nodeHeartbeat(0n)) : keys.nodeHeartbeat(scope.nodeId);
}

function diskUsageKeys(scope: NodeScope): string[] {
  return scope.diskIds === undefined ? [keys.diskUsageAll] : scope.diskIds.map((d) => keys.diskUsage(d));
}

const oplogAll = anyLast(subjects.oplog(0n));
/** Every partition's metadata requests: `strata.md.*.*`. */
const mdAll = subjects.md(0, ANY).replace('.0.', `.${ANY}.`);

/**
 * The config replicas: they lead the configuration, detect failures and run failovers.
 * `strata config run`, as the same user, asks its replica's health check.
 */
export function configGrant(replica: string): Grant {
  return merge(base('config', replica), {
    publish: [
      subjects.health('config', replica),
      ...kv(buckets.cfg, ['>']),
      ...kv(buckets.own, ['>']),
      ...kv(buckets.hb),
      ...kv(buckets.ids, [keys.idCounter]),
      // A failover reads the vDisk's oplog tail and appends its takeover marker.
      ...streamRead(streams.oplog),
      oplogAll,
      subjects.controller(ANY, ANY),
      ...events(EventCategory.cfg, EventCategory.node, EventCategory.leader, EventCategory.owner, EventCategory.space),
    ],
    subscribe: [subjects.cfgAll],
  });
}

/** A node's gateway: I/O only to its own node's io-director. */
export function gatewayGrant(scope: NodeScope): Grant {
  return merge(base('gateway', scope.node), {
    publish: [subjects.io(scope.node, ANY), ...kv(buckets.hb, [keys.gatewayAttachments(scope.node)]), ...kv(buckets.ha), ...kv(buckets.cfg)],
  });
}

/** A node's io-director: serves its node's I/O, sends it to any node's admission (a shared vDisk's owner), asks owners to relinquish and cuts snapshots at the owner. */
export function ioDirectorGrant(scope: NodeScope): Grant {
  return merge(base('io-director', scope.node), {
    publish: [subjects.admission(ANY, ANY), subjects.controller(ANY, 'relinquish'), subjects.controller(ANY, 'snapshot'), ...kv(buckets.cfg), ...kv(buckets.own, [keys.vdiskOwnershipAll])],
    subscribe: [subjects.io(scope.node, ANY)],
  });
}

/** A node's admission control: between its node's director and its node's controller only. */
export function admissionGrant(scope: NodeScope): Grant {
  return merge(base('admission', scope.node), {
    publish: [subjects.controller(scope.node, ANY), ...kv(buckets.cfg), ...kv(buckets.own)],
    subscribe: [subjects.admission(scope.node, ANY)],
  });
}

/** A node's vdisk-controller: the oplog, extent stores, metadata shards, its own heartbeat. */
export function vdiskControllerGrant(scope: NodeScope): Grant {
  return merge(base('vdisk-controller', scope.node), {
    publish: [
      ...streamRead(streams.oplog),
      `$JS.API.STREAM.PURGE.${streams.oplog}`,
      oplogAll,
      subjects.estore(ANY, ANY),
      mdAll,
      ...kv(buckets.cfg),
      ...kv(buckets.hb, [nodeHeartbeatKey(scope)]),
      ...kv(buckets.own, [keys.vdiskOwnershipAll]),
      ...kv(buckets.ids, [keys.idCounter]),
      ...kv(buckets.mdVdisk),
      ...kv(buckets.mdEgroup),
      ...events(EventCategory.owner),
    ],
    subscribe: [subjects.controller(scope.node, ANY), '$JS.EVENT.ADVISORY.STREAM.LEADER_ELECTED.>'],
  });
}

/** A node's extent store: answers only its own node's subjects, reports only its own disks. */
export function extentStoreGrant(scope: NodeScope): Grant {
  return merge(base('extent-store', scope.node), {
    publish: [...kv(buckets.hb, diskUsageKeys(scope)), ...kv(buckets.cfg)],
    subscribe: [subjects.estore(scope.node, ANY)],
  });
}

/** A metadata shard: any partition it holds the lease of, the metadata buckets, the shards' heartbeats. */
export function metadataShardGrant(shard: string): Grant {
  return merge(base('metadata-shard', shard), {
    publish: [
      // `strata shard run`, as the same user, asks its shard's health check.
      subjects.health('metadata-shard', shard),
      ...kv(buckets.mdVdisk, ['>']),
      ...kv(buckets.mdExtent, ['>']),
      ...kv(buckets.mdEgroup, ['>']),
      ...kv(buckets.own, [anyLast(keys.mdPartition(0))]),
      // Its own heartbeat, and a peer's once that peer has been silent for ten of its
      // live windows (removed by compare-and-set, so a peer back meanwhile keeps it).
      ...kv(buckets.hb, [keys.shardHeartbeat('*')]),
    ],
    subscribe: [mdAll],
  });
}

/**
 * A node's curator: maps scan tasks for the master on its own map subject (and, as
 * master, asks the other curators' and keeps the scan's record and outputs), scans
 * metadata, copies replicas between extent stores, holds the
 * master lease, and sweeps what a deleted vDisk left (fences and deletes its ownership
 * and takeover records, purges its oplog subject, and has the config service delete
 * its entry last).
 */
export function curatorGrant(scope: NodeScope): Grant {
  return merge(base('curator', scope.node), {
    publish: [
      subjects.estore(ANY, ANY),
      mdAll,
      subjects.cfg(CfgOp.delete),
      `$JS.API.STREAM.PURGE.${streams.oplog}`,
      ...kv(buckets.cfg),
      ...kv(buckets.hb),
      ...kv(buckets.mdVdisk),
      ...kv(buckets.mdEgroup),
      subjects.curatorMap(ANY),
      // A copy is recorded by the vDisk's owner (its writer) when it has one.
      subjects.controller(ANY, VdcOp.recordCopy),
      // The sweep asks a vDisk's owner which unnamed extent groups it gives up.
      subjects.controller(ANY, VdcOp.release),
      // And to evacuate extent groups that are mostly dead.
      subjects.controller(ANY, VdcOp.compact),
      ...kv(buckets.own, [keys.curatorMasterLease, keys.curatorProgress, keys.curatorScan, keys.curatorMapOutputAll, keys.vdiskOwnershipAll, anyLast(keys.takeover(0n))]),
      // Its own events, and the sweep's (vdisk.swept, egroup.reclaimed are space events).
      ...events(EventCategory.curator, EventCategory.space),
    ],
    subscribe: [subjects.curator(ANY), subjects.curatorMap(scope.node)],
  });
}

/** A host's HA agent: its own heartbeat and host record; as master, the agents and the protection state. */
export function haAgentGrant(scope: NodeScope): Grant {
  return merge(base('ha-agent', scope.node), {
    publish: [
      subjects.haHeartbeat(scope.node),
      subjects.haAgent(ANY, ANY),
      ...kv(buckets.cfg),
      ...kv(buckets.mdVdisk),
      ...kv(buckets.mdEgroup),
      ...kv(buckets.own, [keys.haMasterLease]),
      ...kv(buckets.ha, [keys.vmProtectionAll, keys.restartRecordAll, keys.powerOnLeaseAll, keys.hostRecord(scope.node)]),
      ...events(EventCategory.ha),
    ],
    subscribe: [subjects.haAgent(scope.node, ANY), subjects.haMaster(ANY), subjects.haHeartbeatAll],
  });
}

/** The actors of a node's I/O path, the grant of each. */
export const NODE_ACTOR_GRANTS = {
  gateway: gatewayGrant,
  'io-director': ioDirectorGrant,
  admission: admissionGrant,
  'vdisk-controller': vdiskControllerGrant,
  'extent-store': extentStoreGrant,
} as const;
export type NodeActorRole = keyof typeof NODE_ACTOR_GRANTS;

/** A node-host process running several of a node's actors on one connection: the union of theirs. */
export function nodeHostGrant(scope: NodeScope, actors: readonly NodeActorRole[], shard?: string): Grant {
  return merge(base('node-host', scope.node), ...actors.map((a) => NODE_ACTOR_GRANTS[a](scope)), shard === undefined ? {} : metadataShardGrant(shard));
}

/** Whether NATS subject pattern `pattern` (`*` one token, `>` the rest) matches `subject`. */
export function subjectMatches(pattern: string, subject: string): boolean {
  const p = pattern.split('.');
  const s = subject.split('.');
  for (let i = 0; i < p.length; i++) {
    if (p[i] === '>') return s.length > i;
    if (i >= s.length || (p[i] !== '*' && p[i] !== s[i])) return false;
  }
  return p.length === s.length;
}

/** Whether `grant` lets its user publish (or subscribe to) `subject`, as the server decides for an allow list. */
export function grantAllows(grant: Grant, action: 'publish' | 'subscribe', subject: string): boolean {
  return grant[action].some((pattern) => subjectMatches(pattern, subject));
}

/** One NATS user: its name, its password, and its grant (`all` for the operator). */
export interface NatsUser {
  user: string;
  password: string;
  grant: Grant | 'all';
}

function quote(s: string): string {
  if (!/^[\w$.*>@:/-]+$/.test(s)) throw new Error(`refusing to write ${JSON.stringify(s)} into a nats-server config`);
  return `"${s}"`;
}

function list(items: readonly string[]): string {
  return `[${items.map(quote).join(', ')}]`;
}

/**
 * The nats-server `authorization { users: [...] }` block for `users`. A user with a
 * grant gets allow lists only, so whatever they do not name is denied; `respond`
 * adds `allow_responses` (one reply per request received).
 */
export function authorizationBlock(users: readonly NatsUser[]): string {
  const names = new Set<string>();
  const lines = ['authorization {', '  users: ['];
  for (const u of users) {
    if (names.has(u.user)) throw new Error(`user ${u.user} is listed twice`);
    names.add(u.user);
    if (u.password.length < 16) throw new Error(`the password of ${u.user} is shorter than 16 characters`);
    const head = `    { user: ${quote(u.user)}, password: ${quote(u.password)}`;
    if (u.grant === 'all') {
      lines.push(`${head} }`);
      continue;
    }
    const { publish, subscribe, respond } = u.grant;
    const perms = [`publish: { allow: ${list(publish)} }`, `subscribe: { allow: ${list(subscribe)} }`, ...(respond ? ['allow_responses: true'] : [])];
    lines.push(`${head}, permissions: { ${perms.join(', ')} } }`);
  }
  lines.push('  ]', '}');
  return lines.join('\n') + '\n';
}

/** Stand-ins for a node's name and ids in the documented table. */
const DOC_NODE = '<node>';
const DOC_NODE_ID = 990_000_001n;
const DOC_DISK_ID = 990_000_002n;

/** A grant in a table cell: streams read as `read S`, the rest as subjects. */
function tableCell(subjectsOf: readonly string[]): string {
  const left = new Set(subjectsOf);
  const reads: string[] = [];
  const streamsSeen = new Set([...left].map((s) => /^\$JS\.API\.STREAM\.INFO\.(.+)$/.exec(s)?.[1]).filter((s): s is string => s !== undefined));
  for (const stream of [...streamsSeen].sort()) {
    const all = streamRead(stream);
    if (all.every((s) => left.has(s))) {
      all.forEach((s) => left.delete(s));
      reads.push(`read ${stream}`);
    }
  }
  const text = (s: string): string => s.replace(String(DOC_NODE_ID), '<node-id>').replace(String(DOC_DISK_ID), '<disk-id>');
  return [...reads, ...[...left].sort().map(text)].map((s) => `\`${s}\``).join(', ');
}

/**
 * The table of PROTOCOL.md section 14, one row per role: what it may publish
 * (requests, KV writes, stream reads) and subscribe to. A unit test checks that the
 * document has exactly these rows.
 */
export function permissionTable(): string[] {
  const scope: NodeScope = { node: DOC_NODE, nodeId: DOC_NODE_ID, diskIds: [DOC_DISK_ID] };
  const rows: Array<[string, string, Grant]> = [
    [Role.config, 'config-<k>', configGrant('<replica>')],
    [Role.gateway, '<node>-gateway', gatewayGrant(scope)],
    [Role.ioDirector, '<node>-io-director', ioDirectorGrant(scope)],
    [Role.admission, '<node>-admission', admissionGrant(scope)],
    [Role.vdiskController, '<node>-vdisk-controller', vdiskControllerGrant(scope)],
    [Role.extentStore, '<node>-extent-store', extentStoreGrant(scope)],
    [Role.metadataShard, '<node>-metadata-shard, md-<k>', metadataShardGrant('<shard>')],
    [Role.curator, '<node>-curator', curatorGrant(scope)],
    [Role.haAgent, '<node>-ha-agent', haAgentGrant(scope)],
  ];
  return [
    '| role | user | may publish | may subscribe | answers requests |',
    '|---|---|---|---|---|',
    ...rows.map(([role, user, g]) => `| ${role} | \`${user}\` | ${tableCell(g.publish)} | ${tableCell(g.subscribe)} | ${g.respond ? 'yes' : 'no'} |`),
  ];
}
