// The golden vectors of proto/vectors/*.json, as code: each valid example is encoded
// with @strata/codec (so it is exactly what Strata writes), each invalid one is
// encoded the same way or spelled out byte by byte when the point is the encoding.
// proto.test.ts writes the files from here when UPDATE_VECTORS=1 and otherwise
// checks that the files still match.
import { encode } from '@strata/codec';
import { diagnostic } from './wire-check';

/** The checks a vector is run through: the encoding rules, the CDDL rule, the TypeScript schema. */
export type Checker = 'wire' | 'cddl' | 'ts';
export const checkers: readonly Checker[] = ['wire', 'cddl', 'ts'];

export interface ValidVector {
  rule: string;
  description: string;
  hex: string;
  diagnostic: string;
}

export interface InvalidVector {
  rule: string;
  description: string;
  /** Why the bytes are wrong. */
  reason: string;
  /** The checks that refuse it; the others accept it (a known gap, said in `reason`). */
  rejectedBy: Checker[];
  /** Where the CDDL check finds the first mismatch, when it refuses the vector. */
  path?: string;
  hex: string;
  diagnostic: string;
}

export interface VectorFile {
  about: string;
  /** The CDDL files whose rules the vectors name (read as one, as if concatenated). */
  cddl: string[];
  valid: ValidVector[];
  invalid: InvalidVector[];
}

// ---- Building blocks -------------------------------------------------------------------

const hexOf = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');

type Bytes = { raw: Uint8Array };

function valid(rule: string, description: string, value: unknown): ValidVector {
  const bytes = encode(value);
  return { rule, description, hex: hexOf(bytes), diagnostic: diagnostic(bytes) };
}

interface InvalidOptions {
  rejectedBy?: Checker[];
  path?: string;
}

function invalid(rule: string, description: string, reason: string, value: unknown, options: InvalidOptions = {}): InvalidVector {
  const bytes = isRaw(value) ? value.raw : encode(value);
  const rejectedBy = options.rejectedBy ?? ['cddl', 'ts'];
  const v: InvalidVector = { rule, description, reason, rejectedBy, hex: hexOf(bytes), diagnostic: diagnostic(bytes) };
  if (options.path !== undefined) v.path = options.path;
  return v;
}

function isRaw(v: unknown): v is Bytes {
  return typeof v === 'object' && v !== null && 'raw' in v && (v as Bytes).raw instanceof Uint8Array;
}

// Raw CBOR, for encodings that the codec never writes.
const raw = (...parts: (Uint8Array | number[])[]): Bytes => ({ raw: Uint8Array.from(parts.flatMap((p) => [...p])) });
/** An initial byte and its argument in exactly `size` extra bytes (0: in the initial byte). */
function head(major: number, value: number, size: 0 | 1 | 2 | 4 | 8): number[] {
  if (size === 0) return [(major << 5) | value];
  const info = { 1: 24, 2: 25, 4: 26, 8: 27 }[size];
  const out = [(major << 5) | info];
  for (let i = size - 1; i >= 0; i--) out.push(Number((BigInt(value) >> BigInt(8 * i)) & 0xffn));
  return out;
}
const text = (s: string): number[] => [...encode(s)];
const int = (n: number): number[] => [...encode(n)];
/** A definite map of text keys to already-encoded values. */
const rawMap = (entries: [string, number[]][]): number[] => [...head(5, entries.length, 0), ...entries.flatMap(([k, v]) => [...text(k), ...v])];
const float64 = (n: number): number[] => {
  const b = Buffer.alloc(9);
  b[0] = 0xfb;
  b.writeDoubleBE(n, 1);
  return [...b];
};

// ---- Example values ------------------------------------------------------------------

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;
const TiB = 1024 * GiB;
const T0 = 1735689600000; // 2025-01-01T00:00:00Z

const ids = { node: 12345n, pool: 12346n, container: 12347n, host: 12348n, vdisk: 12349n, vdisk2: 12350n };
const ha = { vm: 12360n };

const vdiskObject = {
  kind: 'vdisk',
  id: ids.vdisk,
  name: 'demo',
  spec: { container: ids.container, sizeBytes: GiB },
  createdAtMs: T0,
  updatedAtMs: T0 + 60_000,
  epoch: 7,
};
const nodeObject = {
  kind: 'node',
  id: ids.node,
  name: 'n1',
  spec: { address: '10.0.0.5' },
  status: { liveness: 'alive', incarnation: 3, changedAtMs: T0 },
  createdAtMs: T0,
  updatedAtMs: T0,
  epoch: 7,
};
const containerObject = {
  kind: 'container',
  id: ids.container,
  name: 'gold-rf3',
  spec: { pool: ids.pool, replicationFactor: 3, dedup: 'inline', compression: 'post-process', maxDedupExtentBytes: 16 * KiB, maxCapacityBytes: 10 * TiB, reservedCapacityBytes: TiB, tierOrder: ['ssd', 'hdd', 'cloud'] },
  createdAtMs: T0,
  updatedAtMs: T0,
  epoch: 7,
};
const leaderMarker = { holder: 'config-2', epoch: 8, atMs: T0 };
const withRevision = <T extends object>(o: T, revision: number): T & { revision: number } => ({ ...o, revision });

const heartbeat = { incarnation: 3, seq: 120, atMs: T0, intervalMs: 1000 };

// ---- The files ---------------------------------------------------------------------------

function common(): VectorFile {
  return {
    about: 'Golden vectors for proto/common.cddl: integers, names, the error object and the reply envelope.',
    cddl: ['common.cddl'],
    valid: [
      valid('uint53', '0 is one byte', 0),
      valid('uint53', '23 is the largest integer that fits in the initial byte', 23),
      valid('uint53', '24 needs one more byte', 24),
      valid('uint53', '1073741824 (1 GiB) in four bytes', GiB),
      valid('uint53', '2^32 is the first value that needs eight bytes', 2 ** 32),
      valid('uint53', '2^53-1, the largest uint53', Number.MAX_SAFE_INTEGER),
      valid('u64', 'the id 1', 1n),
      valid('u64', 'the id 12345 in two bytes', 12345n),
      valid('u64', 'the id 2^63', 2n ** 63n),
      valid('u64', 'the id 2^64-1, the largest u64', 2n ** 64n - 1n),
      valid('object-name', 'a plain name', 'demo'),
      valid('object-name', 'digits, "-" and "_"', 'gold-rf3_b'),
      valid('object-name', '63 characters, the longest name', `a${'0'.repeat(62)}`),
      valid('error', 'NOT_FOUND, without a hint', { code: 'NOT_FOUND', message: 'vdisk "x" does not exist', retryable: false }),
      valid('error', 'NOT_OWNER with the owner node as the hint', { code: 'NOT_OWNER', message: 'vdisk 12349 is owned by node 12345', retryable: true, hint: '12345' }),
      valid('reply', 'a success with no result', { ok: null }),
      valid('reply', 'a success carrying a result', { ok: { objects: [] } }),
      valid('reply', 'a failure', { error: { code: 'UNAVAILABLE', message: 'no config leader', retryable: true } }),
    ],
    invalid: [
      invalid('uint53', '2^53', 'above 2^53-1', 2 ** 53, { path: '$' }),
      invalid('uint53', '-1', 'negative', -1, { path: '$' }),
      invalid('uint53', '1.0 as a half-precision float', 'integers are CBOR integers (major type 0), never floats, even with a whole value; cbor-x decodes 1.0 to the number 1, so the CDDL check on the decoded value and @strata/codec accept it today', raw([0xf9, 0x3c, 0x00]), { rejectedBy: ['wire'] }),
      invalid('uint53', '5 written in five bytes', 'integers must be in their shortest form; decoders read the same value, so only the encoding check sees it', raw(head(0, 5, 4)), { rejectedBy: ['wire'] }),
      invalid('u64', '2^64 as a tag-2 bignum', 'above 2^64-1, and tagged: @strata/codec refuses every tag before it decodes', raw([0xc2, 0x49, 0x01, 0, 0, 0, 0, 0, 0, 0, 0]), { rejectedBy: ['wire', 'cddl', 'ts'] }),
      invalid('u64', '5 as a tag-2 bignum', 'no tags: a u64 is always a plain CBOR unsigned integer (cbor-x would turn the bignum into 5n; @strata/codec refuses every tag before it decodes)', raw([0xc2, 0x41, 0x05]), { rejectedBy: ['wire', 'cddl', 'ts'] }),
      invalid('u64', 'the id as text', 'ids are integers, never text', '12345', { path: '$' }),
      invalid('u64', '-1', 'negative', -1, { path: '$' }),
      invalid('object-name', 'an upper-case letter', 'names are lower case', 'Demo', { path: '$' }),
      invalid('object-name', 'the empty text', 'names have 1 to 63 characters', '', { path: '$' }),
      invalid('object-name', 'a leading "-"', 'names start with a letter or a digit', '-demo', { path: '$' }),
      invalid('object-name', '64 characters', 'names have at most 63 characters', 'a'.repeat(64), { path: '$' }),
      invalid('error', 'no retryable flag', 'retryable is required', { code: 'INVALID', message: 'bad' }, { path: '$' }),
      invalid('error', 'retryable as text', 'retryable is a bool', { code: 'INVALID', message: 'bad', retryable: 'no' }, { path: '$.retryable' }),
      invalid('error', 'an extra key', 'maps are closed', { code: 'INVALID', message: 'bad', retryable: false, details: 'x' }, { path: '$.details' }),
      invalid('error', 'an unknown code', 'codes are a closed set; @strata/bus accepts any text here and turns an unknown code into INTERNAL, so a newer sender does not break an older receiver', { code: 'EXPLODED', message: 'bad', retryable: false }, { rejectedBy: ['cddl'], path: '$.code' }),
      invalid('reply', 'an empty map', 'a reply has exactly one of ok and error', {}, { path: '$' }),
      invalid('reply', 'both ok and error', 'a reply has exactly one of ok and error', { ok: null, error: { code: 'INTERNAL', message: 'x', retryable: false } }),
      invalid('reply', 'neither ok nor error', 'a reply has exactly one of ok and error', { result: 1 }),
    ],
  };
}

function config(): VectorFile {
  return {
    about: 'Golden vectors for proto/config.cddl: specs, stored objects, and the requests and replies of strata.cfg.<op>.',
    cddl: ['common.cddl', 'config.cddl'],
    valid: [
      valid('node-spec', 'no address', {}),
      valid('node-spec', 'with an address', { address: '10.0.0.5' }),
      valid('node-spec', 'draining (strata node drain)', { drainingSinceMs: T0 }),
      valid('host-spec', 'a host with a storage node', { node: ids.node, cpuCount: 16, memoryBytes: 64 * GiB }),
      valid('host-spec', 'a host without one', { cpuCount: 8, memoryBytes: 32 * GiB }),
      valid('disk-spec', 'a pooled flash disk', { node: ids.node, path: '/var/lib/strata/d1', tier: 'ssd', capacityBytes: TiB, pool: ids.pool }),
      valid('disk-spec', 'a disk not yet pooled', { node: ids.node, path: '/srv/d2', tier: 'hdd', capacityBytes: 4 * TiB }),
      valid('disk-spec', 'draining (strata disk drain)', { node: ids.node, path: '/srv/d2', tier: 'hdd', capacityBytes: 4 * TiB, drainingSinceMs: T0 }),
      valid('pool-spec', 'no description', {}),
      valid('pool-spec', 'with a description', { description: 'rack 2 flash' }),
      valid('container-spec', 'every member left to its default', {}),
      valid('container-spec', 'every member set', containerObject.spec),
      valid('qos-spec', 'defaults', {}),
      valid('qos-spec', 'high priority, weight 3', { priority: 'high', weight: 3 }),
      valid('vdisk-spec', 'the smallest spec: container and size', { container: ids.container, sizeBytes: GiB }),
      valid('vdisk-spec', 'every member set', { container: ids.container, sizeBytes: 100 * GiB, blockSizeBytes: 64 * KiB, shared: true, qos: { priority: 'low', weight: 10 } }),
      valid('vdisk-spec', 'being deleted (strata vdisk rm)', { container: ids.container, sizeBytes: GiB, deletingSinceMs: T0 }),
      valid('vm-spec', 'a VM with two vDisks', { host: ids.host, cpuCount: 2, memoryBytes: 4 * GiB, vdisks: [ids.vdisk, ids.vdisk2], haProtected: false }),
      valid('vm-spec', 'defaults: no vDisks, HA protected, a workload process, medium restart priority', { host: ids.host, cpuCount: 1, memoryBytes: GiB }),
      valid('vm-spec', 'a QEMU guest restarted first', { host: ids.host, cpuCount: 1, memoryBytes: 256 * MiB, vdisks: [ids.vdisk], haProtected: true, driver: 'qemu', restartPriority: 'high' }),
      valid('node-status', 'an alive node', { liveness: 'alive', incarnation: 3, changedAtMs: T0 }),
      valid('cfg-object', 'a vDisk as stored in cfg', vdiskObject),
      valid('cfg-object', 'a node with its status', nodeObject),
      valid('cfg-object', 'a pool with an id above 2^53', { kind: 'pool', id: 2n ** 63n + 5n, name: 'flash', spec: {}, createdAtMs: T0, updatedAtMs: T0, epoch: 1 }),
      valid('cfg-object-with-revision', 'a container at revision 42', withRevision(containerObject, 42)),
      valid('cfg-leader-marker', 'config-2 took over at epoch 8', leaderMarker),
      valid('cfg-entry', 'an object', vdiskObject),
      valid('cfg-entry', 'the takeover marker', leaderMarker),
      valid('create-request', 'create a pool', { kind: 'pool', name: 'flash', spec: { description: 'rack 2 flash' } }),
      valid('create-request', 'create a vDisk', { kind: 'vdisk', name: 'demo', spec: { container: ids.container, sizeBytes: GiB } }),
      valid('create-reply', 'the created vDisk', withRevision(vdiskObject, 41)),
      valid('get-request', 'by name', { kind: 'vdisk', name: 'demo' }),
      valid('get-request', 'by id', { kind: 'vdisk', id: ids.vdisk }),
      valid('get-reply', 'a node', withRevision(nodeObject, 40)),
      valid('list-request', 'every vDisk', { kind: 'vdisk' }),
      valid('list-reply', 'no objects', { objects: [] }),
      valid('list-reply', 'two objects', { objects: [withRevision(vdiskObject, 41), withRevision({ ...vdiskObject, id: ids.vdisk2, name: 'data' }, 43)] }),
      valid('update-request', 'resize by name, compare-and-set on revision 41', { kind: 'vdisk', name: 'demo', spec: { container: ids.container, sizeBytes: 2 * GiB }, revision: 41 }),
      valid('update-request', 'by id, whatever the revision', { kind: 'node', id: ids.node, spec: { address: 'rack2-host7' } }),
      valid('update-reply', 'the vDisk after the update', withRevision({ ...vdiskObject, spec: { container: ids.container, sizeBytes: 2 * GiB } }, 44)),
      valid('delete-request', 'by id at revision 44', { kind: 'vdisk', id: ids.vdisk, revision: 44 }),
      valid('delete-request', 'by name', { kind: 'pool', name: 'flash' }),
      valid('delete-reply', 'the deleted vDisk', { deleted: withRevision(vdiskObject, 44) }),
      valid('status-request', 'the only status request', {}),
      valid('status-reply', 'a three-node cluster with one node dead', { leader: 'config-1', epoch: 7, counts: { node: 3, vdisk: 12 }, nodes: { alive: 2, dead: 1, unknown: 0 } }),
    ],
    invalid: [
      invalid('node-spec', 'an address of 256 characters', 'at most 255 characters: a limit CDDL cannot state for characters (only .size in bytes), so only the TypeScript schema enforces it', { address: 'a'.repeat(256) }, { rejectedBy: ['ts'] }),
      invalid('host-spec', 'no CPUs', 'cpuCount is at least 1', { cpuCount: 0, memoryBytes: GiB }, { path: '$.cpuCount' }),
      invalid('disk-spec', 'an unknown tier', 'tier is ssd, hdd or cloud', { node: ids.node, path: '/d', tier: 'nvme', capacityBytes: TiB }, { path: '$.tier' }),
      invalid('disk-spec', 'no node', 'node is required', { path: '/d', tier: 'ssd', capacityBytes: TiB }, { path: '$' }),
      invalid('container-spec', 'replication factor 6', 'replicationFactor is 1 to 5', { replicationFactor: 6 }, { path: '$.replicationFactor' }),
      invalid('container-spec', 'an unknown dedup mode', 'dedup is off, inline or post-process', { dedup: 'sometimes' }, { path: '$.dedup' }),
      invalid('container-spec', 'a dedup extent of 3000 bytes', 'a power of two from 4 KiB to 1 MiB', { maxDedupExtentBytes: 3000 }, { path: '$.maxDedupExtentBytes' }),
      invalid('container-spec', 'an empty tier order', 'tierOrder names 1 to 3 tiers', { tierOrder: [] }, { path: '$.tierOrder' }),
      invalid('container-spec', 'a tier order of four', 'tierOrder names 1 to 3 tiers', { tierOrder: ['ssd', 'hdd', 'cloud', 'ssd'] }, { path: '$.tierOrder[3]' }),
      invalid('container-spec', 'a tier named twice', 'no tier twice: CDDL cannot say "unique", so only the TypeScript schema enforces it', { tierOrder: ['ssd', 'ssd'] }, { rejectedBy: ['ts'] }),
      invalid('qos-spec', 'weight 0', 'weight is 1 to 1000', { weight: 0 }, { path: '$.weight' }),
      invalid('qos-spec', 'an unknown priority', 'priority is high, normal or low', { priority: 'urgent' }, { path: '$.priority' }),
      invalid('vdisk-spec', 'no container', 'container is required', { sizeBytes: GiB }, { path: '$' }),
      invalid('vdisk-spec', 'size 0', 'sizeBytes is a positive multiple of 512', { container: ids.container, sizeBytes: 0 }, { path: '$.sizeBytes' }),
      invalid('vdisk-spec', 'size 1000', 'sizeBytes is a multiple of 512: CDDL cannot say "multiple of", so only the TypeScript schema enforces it', { container: ids.container, sizeBytes: 1000 }, { rejectedBy: ['ts'] }),
      invalid('vdisk-spec', 'a block size of 3000', 'blockSizeBytes is a power of two from 4 KiB to 1 MiB', { container: ids.container, sizeBytes: GiB, blockSizeBytes: 3000 }, { path: '$.blockSizeBytes' }),
      invalid('vdisk-spec', 'shared as text', 'shared is a bool', { container: ids.container, sizeBytes: GiB, shared: 'yes' }, { path: '$.shared' }),
      invalid('vdisk-spec', 'a misspelt member', 'maps are closed: "size" is not a member', { container: ids.container, sizeBytes: GiB, size: GiB }, { path: '$.size' }),
      invalid('vdisk-spec', 'a QoS weight of 1001', 'weight is 1 to 1000', { container: ids.container, sizeBytes: GiB, qos: { weight: 1001 } }, { path: '$.qos.weight' }),
      invalid('vm-spec', '65 vDisks', 'at most 64 vDisks', { host: ids.host, cpuCount: 1, memoryBytes: GiB, vdisks: Array.from({ length: 65 }, (_, i) => BigInt(i + 1)) }, { path: '$.vdisks[64]' }),
      invalid('node-status', 'an unknown liveness', 'liveness is unknown, alive or dead', { liveness: 'sleepy', incarnation: 1, changedAtMs: T0 }, { path: '$.liveness' }),
      invalid('cfg-object', 'a vDisk whose spec is a node spec', 'the spec must be the spec of the kind', { ...vdiskObject, spec: { address: '10.0.0.5' } }, { path: '$.spec' }),
      invalid('cfg-object', 'a node without its status', 'every node object has a status', (({ status: _s, ...rest }) => rest)(nodeObject), { path: '$' }),
      invalid('cfg-object', 'a host with a status', 'only nodes have a status', { kind: 'host', id: ids.host, name: 'h1', spec: { cpuCount: 8, memoryBytes: 32 * GiB }, status: nodeObject.status, createdAtMs: T0, updatedAtMs: T0, epoch: 7 }, { path: '$.status' }),
      invalid('cfg-object', 'an unknown kind', 'kind is one of the seven kinds', { ...vdiskObject, kind: 'volume' }, { path: '$.kind' }),
      invalid('cfg-object', 'the id as text', 'ids are integers', { ...vdiskObject, id: '12349' }, { path: '$.id' }),
      invalid('cfg-object', 'an upper-case name', 'names are lower case', { ...vdiskObject, name: 'Demo' }, { path: '$.name' }),
      invalid('cfg-object', 'no epoch', 'epoch is required', (({ epoch: _e, ...rest }) => rest)(vdiskObject), { path: '$' }),
      invalid('cfg-leader-marker', 'no atMs', 'atMs is required', { holder: 'config-2', epoch: 8 }, { path: '$' }),
      invalid('cfg-entry', 'a marker with an object member', 'neither an object nor a marker', { ...leaderMarker, kind: 'node' }),
      invalid('cfg-object-with-revision', 'no revision', 'revision is required in replies', vdiskObject, { path: '$' }),
      invalid('create-request', 'no spec', 'spec is required', { kind: 'pool', name: 'flash' }, { path: '$' }),
      invalid('create-request', 'a vDisk spec with an unknown member', 'specs are closed maps', { kind: 'vdisk', name: 'demo', spec: { container: ids.container, sizeBytes: GiB, thin: true } }, { path: '$.spec.thin' }),
      invalid('create-request', 'a name of 64 characters', 'names have at most 63 characters', { kind: 'pool', name: 'p'.repeat(64), spec: {} }, { path: '$.name' }),
      invalid('get-request', 'both id and name', 'exactly one of id and name', { kind: 'vdisk', id: ids.vdisk, name: 'demo' }),
      invalid('get-request', 'neither id nor name', 'exactly one of id and name', { kind: 'vdisk' }, { path: '$' }),
      invalid('list-request', 'no kind', 'kind is required', {}, { path: '$' }),
      invalid('list-reply', 'objects as a map', 'objects is an array', { objects: {} }, { path: '$.objects' }),
      invalid('update-request', 'no spec', 'an update carries the whole new spec', { kind: 'vdisk', name: 'demo', revision: 41 }, { path: '$' }),
      invalid('update-request', 'revision -1', 'revision is a uint53', { kind: 'vdisk', name: 'demo', spec: { container: ids.container, sizeBytes: GiB }, revision: -1 }, { path: '$.revision' }),
      invalid('delete-request', 'both id and name', 'exactly one of id and name', { kind: 'vdisk', id: ids.vdisk, name: 'demo' }),
      invalid('delete-reply', 'the object without its revision', 'deleted carries the revision', { deleted: vdiskObject }, { path: '$.deleted' }),
      invalid('status-request', 'a member', 'the status request is an empty map', { verbose: true }, { path: '$.verbose' }),
      invalid('status-reply', 'a count as text', 'counts are integers', { leader: 'config-1', epoch: 7, counts: { node: '3' }, nodes: { alive: 2, dead: 1, unknown: 0 } }, { path: '$.counts.node' }),
      invalid('status-reply', 'a node count missing', 'nodes has alive, dead and unknown', { leader: 'config-1', epoch: 7, counts: {}, nodes: { alive: 2, dead: 1 } }, { path: '$.nodes' }),
    ],
  };
}

function events(): VectorFile {
  return {
    about: 'Golden vectors for proto/events.cddl: cluster events of the EVENTS stream.',
    cddl: ['common.cddl', 'events.cddl'],
    valid: [
      valid('cluster-event', 'a vDisk created by an operator (strata.events.cfg)', { type: 'created', atMs: T0, epoch: 7, kind: 'vdisk', id: ids.vdisk, name: 'demo', cause: 'operator', message: 'vdisk demo created' }),
      valid('cluster-event', 'a node declared dead (strata.events.node)', { type: 'node.dead', atMs: T0, epoch: 7, kind: 'node', id: ids.node, name: 'n2', incarnation: 3, cause: 'failure-detector', message: 'node n2 declared dead after 6012 ms of silence' }),
      valid('cluster-event', 'a vDisk moved by failover (strata.events.owner)', { type: 'owner.changed', atMs: T0, epoch: 7, kind: 'vdisk', id: ids.vdisk, name: 'demo', owner: 'n1', previousOwner: 'n2', ownerEpoch: 4, cause: 'failover', message: 'vdisk demo: n2 -> n1 at epoch 4 (node n2 declared dead)' }),
      valid('cluster-event', 'a VM restarted by HA (strata.events.ha)', { type: 'ha.vm.restarted', atMs: T0, epoch: 0, kind: 'vm', id: ha.vm, name: 'web', host: 'n2', haEpoch: 5, powerOnEpoch: 4, cause: 'ha-master', message: 'vm web restarted on n2 (power-on lease epoch 4): host n1 failed' }),
      valid('cluster-event', 'a replica copied by the curator (strata.events.curator)', { type: 'curator.replica.copied', atMs: T0, epoch: 0, kind: 'egroup', id: 67890n, curatorEpoch: 4, fromDisk: 12351n, toDisk: 12352n, bytes: 4 * MiB, reason: 'replica on disk 12350 lost: node n2 dead for 61 s', cause: 'curator', message: 'egroup 67890: copied 4194304 bytes from disk 12351 (n1) to disk 12352 (n3)' }),
      valid('cluster-event', 'a damaged replica found by a scrub (strata.events.curator)', { type: 'curator.scrub.damaged', atMs: T0, epoch: 0, curatorEpoch: 4, kind: 'egroup', id: 12360n, fromDisk: 12350n, reason: 'CHECKSUM: egroup 12360: slice 0 (bytes 0 to 65535) failed its check', cause: 'curator', message: 'scrub: egroup 12360 on disk 12350 (n1) fails its checksum; a copy from a good replica replaces it' }),
      valid('cluster-event', 'a drained node (strata.events.curator)', { type: 'curator.drain.done', atMs: T0, epoch: 0, curatorEpoch: 4, kind: 'node', id: ids.node, name: 'n2', cause: 'curator', message: 'node n2 is drained: it holds no replica; "strata node rm n2" removes it' }),
      valid('cluster-event', 'garbage deleted by a curator scan (strata.events.curator)', { type: 'curator.garbage.deleted', atMs: T0, epoch: 0, curatorEpoch: 4, freedBytes: 8 * MiB, cause: 'curator', message: 'garbage collection: 2 replicas no entry names deleted, 8388608 bytes reclaimed (40 listed, 1 younger than the grace period, 0 disks skipped)' }),
      valid('cluster-event', 'a curator scan started (strata.events.curator)', { type: 'curator.scan.started', atMs: T0, epoch: 0, curatorEpoch: 4, reason: 'operator', cause: 'curator', message: 'scan 1735689600000 (full) started: 8 map tasks for n2, n3; operator' }),
      valid('cluster-event', 'a map task reassigned (strata.events.curator)', { type: 'curator.scan.task.reassigned', atMs: T0, epoch: 0, curatorEpoch: 4, name: 'n2', reason: 'no reply on strata.curator.n2.map within 30000 ms', cause: 'curator', message: 'scan 1735689600000: map task 2 (partitions 2, 10) failed on n2: no reply on strata.curator.n2.map within 30000 ms; another curator takes it' }),
      valid('cluster-event', 'a scan resumed by a new master (strata.events.curator)', { type: 'curator.scan.resumed', atMs: T0, epoch: 0, curatorEpoch: 5, name: 'n1', reason: 'the curator master n1 (epoch 4) left it running', cause: 'curator', message: 'scan 1735689600000 (full) of n1 resumed: 3 of 8 map tasks found done, 5 mapped again' }),
      valid('cluster-event', 'a curator scan done (strata.events.curator)', { type: 'curator.scan.done', atMs: T0, epoch: 0, curatorEpoch: 4, durationMs: 42, reason: 'scheduled', cause: 'curator', message: 'scan 3: 120 extent groups, 7 under-replicated, 7 copies queued' }),
      valid('cluster-event', 'a disk full (strata.events.space)', { type: 'space.full', atMs: T0, epoch: 7, kind: 'disk', id: 12351n, name: 'n1-d1', usedBytes: 63 * MiB, capacityBytes: 64 * MiB, cause: 'space-monitor', message: 'disk n1-d1 is full: 1 MiB free of 64 MiB, below 16 MiB' }),
      valid('cluster-event', 'a vDisk swept (strata.events.space)', { type: 'vdisk.swept', atMs: T0, epoch: 0, kind: 'vdisk', id: ids.vdisk, name: 'old', freedBytes: 32 * MiB, cause: 'sweep', message: 'vdisk old swept: 2 extent groups (4 replicas, 32 MiB), 1 row' }),
      valid('cluster-event', 'a leader elected, no object (strata.events.leader)', { type: 'leader.elected', atMs: T0, epoch: 8, cause: 'election', message: 'config-2 leads the configuration database at epoch 8' }),
    ],
    invalid: [
      invalid('cluster-event', 'an unknown type', 'type is one of the event types', { type: 'node.exploded', atMs: T0, epoch: 7, cause: 'x', message: 'x' }, { path: '$.type' }),
      invalid('cluster-event', 'no cause', 'cause is required', { type: 'created', atMs: T0, epoch: 7, message: 'x' }, { path: '$' }),
      invalid('cluster-event', 'a negative id', 'ids are unsigned', { type: 'deleted', atMs: T0, epoch: 7, id: -5, cause: 'operator', message: 'x' }, { path: '$.id' }),
      invalid('cluster-event', 'an unknown member', 'maps are closed', { type: 'created', atMs: T0, epoch: 7, cause: 'operator', message: 'x', severity: 'info' }, { path: '$.severity' }),
    ],
  };
}

function liveness(): VectorFile {
  return {
    about: 'Golden vectors for proto/liveness.cddl: heartbeats (hb), the id counter (ids) and leases (own).',
    cddl: ['common.cddl', 'liveness.cddl'],
    valid: [
      valid('heartbeat', 'the 120th heartbeat of incarnation 3', heartbeat),
      valid('id-counter', 'a fresh counter', { next: 1n }),
      valid('id-counter', 'a counter past 2^32', { next: 2n ** 32n + 1001n }),
      valid('id-counter', 'the last id', { next: 2n ** 64n - 1n }),
      valid('lease-record', 'the config leader lease, held', { holder: 'config-1', epoch: 7, renewedAtMs: T0, ttlMs: 3000 }),
      valid('lease-record', 'a released lease', { holder: '', epoch: 7, renewedAtMs: T0, ttlMs: 3000 }),
    ],
    invalid: [
      invalid('heartbeat', 'no seq', 'seq is required', { incarnation: 3, atMs: T0, intervalMs: 1000 }, { path: '$' }),
      invalid('heartbeat', 'seq -1', 'seq is unsigned', { ...heartbeat, seq: -1 }, { path: '$.seq' }),
      invalid('heartbeat', 'atMs as a float64', 'integers are CBOR integers, never floats; cbor-x decodes a whole float64 to the same number, so the CDDL check on the decoded value and @strata/codec accept it today', raw(rawMap([['incarnation', int(3)], ['seq', int(120)], ['atMs', float64(T0)], ['intervalMs', int(1000)]])), { rejectedBy: ['wire'] }),
      invalid('heartbeat', 'seq written in five bytes', 'integers must be in their shortest form', raw(rawMap([['incarnation', int(3)], ['seq', head(0, 120, 4)], ['atMs', int(T0)], ['intervalMs', int(1000)]])), { rejectedBy: ['wire'] }),
      invalid('heartbeat', 'an indefinite-length map', 'maps have definite lengths', raw([0xbf], rawMap([['incarnation', int(3)], ['seq', int(120)], ['atMs', int(T0)], ['intervalMs', int(1000)]]).slice(1), [0xff]), { rejectedBy: ['wire'] }),
      invalid(
        'heartbeat',
        'written with the cbor-x record extension (new Encoder() with its defaults)',
        'no cbor-x records: they are tags 0xdfff and 0xe000 that other decoders do not know (cbor-x reads records even with useRecords: false; @strata/codec refuses every tag before it decodes)',
        // new (require('cbor-x').Encoder)().encode({ incarnation: 3, seq: 1, atMs: 5, intervalMs: 1000 })
        { raw: Uint8Array.from(Buffer.from('d9dfff8619e000846b696e6361726e6174696f6e637365716461744d736a696e74657276616c4d730301051903e8', 'hex')) },
        { rejectedBy: ['wire', 'cddl', 'ts'] },
      ),
      invalid('id-counter', 'next as text', 'next is an integer', { next: '13001' }, { path: '$.next' }),
      invalid('id-counter', 'next above 2^64-1', 'beyond 64 bits (a tag-2 bignum; @strata/codec refuses every tag before it decodes)', raw(rawMap([['next', [0xc2, 0x49, 0x01, 0, 0, 0, 0, 0, 0, 0, 0]]])), { rejectedBy: ['wire', 'cddl', 'ts'] }),
      invalid('id-counter', 'the key next twice', 'a key appears at most once (RFC 8949 section 5.6); cbor-x keeps the last value, another decoder may keep the first, so only the encoding check sees it', raw(rawMap([['next', int(5)], ['next', int(6)]])), { rejectedBy: ['wire'] }),
      invalid('lease-record', 'no epoch', 'epoch is required', { holder: 'config-1', renewedAtMs: T0, ttlMs: 3000 }, { path: '$' }),
      invalid('lease-record', 'ttlMs 4000.5', 'ttlMs is an integer', raw(rawMap([['holder', text('config-1')], ['epoch', int(7)], ['renewedAtMs', int(T0)], ['ttlMs', float64(4000.5)]])), { rejectedBy: ['wire', 'cddl', 'ts'], path: '$.ttlMs' }),
    ],
  };
}

// ---- The I/O path ---------------------------------------------------------------------

const io = { vdisk: 12349n, disk: 12351n, disk2: 12352n, disk3: 12353n, egroup: 67890n, big: 2n ** 63n + 5n, max: 2n ** 64n - 1n };
const hello = Uint8Array.from(Buffer.from('Hello'));
const readRequest = { vdisk: io.vdisk, offset: 4 * KiB, length: 4 * KiB };
const writeRequest = { vdisk: io.vdisk, offset: 0, data: hello };
const location = (offset: number): { egroup: bigint; offset: number; length: number } => ({ egroup: io.egroup, offset, length: MiB });
const takeover = { vdisk: io.vdisk, step: 'fence', from: 'n2', to: 'n1', epoch: 4, reason: 'node n2 declared dead', startedAtMs: T0, attempts: 0, excluded: [] };
const egWrite = { disk: io.disk, egroup: io.egroup, vdisk: io.vdisk, epoch: 1, version: 3, sizeBytes: 16 * MiB, pieces: [{ offset: 0, data: hello }] };
const newEgroup = { vdisk: io.vdisk, replicas: [{ disk: io.disk, node: 'n1' }, { disk: io.disk2, node: 'n2' }], version: 0, sizeBytes: 0, extents: [] };
const egroupEntry = {
  vdisk: io.vdisk,
  replicas: [
    { disk: io.disk, node: 'n1' },
    { disk: io.disk2, node: 'n2' },
    { disk: io.disk3, node: 'n3' },
  ],
  version: 3,
  sizeBytes: 2 * MiB,
  tentative: { version: 4, atMs: T0 },
  extents: [
    { id: `${io.vdisk}:32`, offset: 0, length: MiB, refs: 1 },
    { id: `${io.vdisk}:37`, offset: MiB, length: MiB, refs: 0 },
  ],
};
const vdiskRow = { blocks: { '32': location(0), '37': location(MiB) } };

function ioPath(): VectorFile {
  return {
    about:
      'Golden vectors for proto/io.cddl: vDisk I/O (strata.io, strata.adm, strata.vdc), the oplog, vDisk ownership (own), the extent stores (strata.estore) and disk usage (hb), the metadata maps and their shards (strata.md).',
    cddl: ['common.cddl', 'io.cddl'],
    valid: [
      valid('io-read-request', 'the second 4 KiB block', readRequest),
      valid('io-read-request', 'a vDisk id above 2^53 (a bigint in JavaScript), an offset above 2^32', { vdisk: io.big, offset: 5 * GiB, length: 512 }),
      valid('io-read-reply', 'five bytes', { data: hello }),
      valid('io-write-request', 'five bytes at offset 0', writeRequest),
      valid('io-write-request', 'with the FUA flag', { ...writeRequest, offset: 512, fua: true }),
      valid('io-zero-request', '64 KiB at 1 MiB', { vdisk: io.vdisk, offset: MiB, length: 64 * KiB }),
      valid('io-flush-request', 'the only member', { vdisk: io.vdisk }),
      valid('io-done-reply', 'the reply of write, zero and flush', {}),
      valid('oplog-op', 'a write', { op: 'write', offset: 0, data: hello }),
      valid('oplog-op', 'a zero', { op: 'zero', offset: MiB, length: 64 * KiB }),
      valid('oplog-op', "a direct write's commit point: 256 KiB at 1 MiB, in egroup 4711 at 2 MiB", { op: 'ref', offset: MiB, length: 256 * KiB, egroup: 4711n, egOffset: 2 * MiB }),
      valid('oplog-entry', 'a group commit of a write and a zero', { kind: 'ops', epoch: 1, ops: [{ op: 'write', offset: 0, data: hello }, { op: 'zero', offset: MiB, length: 64 * KiB }] }),
      valid('oplog-entry', 'the takeover marker of n2 at epoch 2', { kind: 'marker', epoch: 2, owner: 'n2' }),
      valid('vdisk-ownership', 'as an io-director claims an unowned vDisk', { owner: 'n1', epoch: 1, volunteers: [], drained: 0 }),
      valid('vdisk-ownership', 'with volunteers and a drained sequence', { owner: 'n2', epoch: 3, volunteers: ['n1', 'n3'], drained: 4711 }),
      valid('vdisk-ownership', 'defaults: no volunteers, nothing drained', { owner: 'n1', epoch: 1 }),
      valid('vdisk-ownership', 'after two snapshots: generation 2', { owner: 'n1', epoch: 4, volunteers: ['n1'], drained: 4711, generation: 2 }),
      valid('io-attach-request', 'a gateway opened the vDisk', { vdisk: io.vdisk }),
      valid('io-attach-reply', 'owned by n2, n1 volunteers', { owner: 'n2', epoch: 3, volunteers: ['n2', 'n1'] }),
      valid('vdc-open-request', 'take over at epoch 4', { vdisk: io.vdisk, epoch: 4 }),
      valid('vdc-open-reply', '17 entries replayed', { epoch: 4, replayed: 17, lastSeq: 5120 }),
      valid('vdc-relinquish-request', 'the VM moved to n3', { vdisk: io.vdisk, to: 'n3' }),
      valid('vdc-relinquish-reply', 'n3 owns it at epoch 5', { owner: 'n3', epoch: 5 }),
      valid('vdc-snapshot-request', 'snapshot 12360 of the vDisk', { vdisk: io.vdisk, snapshot: 12360n }),
      valid('vdc-snapshot-reply', 'cut at sequence 5120, writes held 35 ms', { generation: 1, cutSeq: 5120, rows: 4, blocks: 61, pauseMs: 35 }),
      valid('vdc-record-copy-request', 'n3 copied the replica on n2: the owner records it', {
        vdisk: io.vdisk,
        epoch: 3,
        egroup: io.egroup,
        source: { disk: io.disk2, node: 'n2' },
        sourceVersion: 3,
        sourceSizeBytes: 2 * MiB,
        entry: { vdisk: io.vdisk, replicas: [{ disk: io.disk, node: 'n1' }, { disk: io.disk2, node: 'n2' }, { disk: io.disk3, node: 'n3' }], version: 3, sizeBytes: 2 * MiB, extents: egroupEntry.extents },
        revision: 42,
      }),
      valid('vdc-record-copy-reply', 'recorded at revision 43', { revision: 43 }),
      valid('vdc-release-request', 'two extent groups no row names', { vdisk: io.vdisk, epoch: 3, egroups: [io.egroup, io.egroup + 1n] }),
      valid('vdc-release-reply', 'one released; the other holds an undrained direct write', { released: [io.egroup] }),
      valid('vdc-compact-request', 'an extent group a quarter live', { vdisk: io.vdisk, epoch: 3, egroups: [io.egroup] }),
      valid('vdc-compact-reply', 'evacuating, 2 blocks to move', { evacuating: [io.egroup], blocks: 2 }),
      valid('takeover-record', 'a failover about to fence', takeover),
      valid('takeover-record', 'a retried replay with a node excluded', { ...takeover, step: 'replay', attempts: 2, excluded: ['n3'] }),
      valid('eg-piece', 'bytes', { offset: 8 * KiB, data: hello }),
      valid('eg-piece', '4 KiB of zeros', { offset: 12 * KiB, zeros: 4 * KiB }),
      valid('eg-write-request', 'one piece of data', egWrite),
      valid('eg-write-request', 'data and zeros, ids above 2^53', { ...egWrite, disk: io.max, egroup: io.big, pieces: [{ offset: 0, data: hello }, { offset: 4 * KiB, zeros: 4 * KiB }] }),
      valid('eg-write-reply', 'version 3; 3808858755 is the CRC32C of "123456789"', { version: 3, crc32c: 0xe3069283 }),
      valid('eg-read-request', '4 KiB at 4 KiB', { disk: io.disk, egroup: io.egroup, offset: 4 * KiB, length: 4 * KiB }),
      valid('eg-read-reply', 'five bytes', { data: hello }),
      valid('eg-stat-request', 'a replica', { disk: io.disk, egroup: io.egroup }),
      valid('eg-stat-reply', 'version 3, 16 MiB', { version: 3, sizeBytes: 16 * MiB }),
      valid('eg-delete-request', 'a replica', { disk: io.disk, egroup: io.egroup }),
      valid('eg-delete-reply', 'the only reply', {}),
      valid('eg-list-request', 'the first page', { disk: io.disk }),
      valid('eg-list-request', 'the next page of 1000', { disk: io.disk, after: io.egroup, limit: 1000 }),
      valid('eg-listed-replica', 'version 3, 16 MiB', { egroup: io.egroup, sizeBytes: 16 * MiB, version: 3, mtimeMs: T0 }),
      valid('eg-list-reply', 'one replica, the last', { replicas: [{ egroup: io.egroup, sizeBytes: 16 * MiB, version: 3, mtimeMs: T0 }], more: false }),
      valid('eg-list-reply', 'an empty disk', { replicas: [], more: false }),
      valid('disk-usage', '1 GiB of 1 TiB used', { node: 'n1', usedBytes: GiB, capacityBytes: TiB, atMs: T0 }),
      valid('gateway-attachments', 'one vDisk open on one connection', { node: 'n1', vdisks: [{ vdisk: ids.vdisk, connections: 1 }], atMs: T0, intervalMs: 5000 }),
      valid('gateway-attachments', 'nothing open', { node: 'n2', vdisks: [], atMs: T0, intervalMs: 5000 }),
      valid('block-location', 'a 1 MiB extent at 1 MiB', location(MiB)),
      valid('block-location', 'made the home at generation 2 (after two snapshots)', { ...location(MiB), gen: 2 }),
      valid('vdisk-row', 'no block holds data', { blocks: {} }),
      valid('vdisk-row', 'blocks 32 and 37', vdiskRow),
      valid('extent-entry', 'a dedup extent', { egroup: io.egroup }),
      valid('egroup-replica', 'on disk 12351 of n1', { disk: io.disk, node: 'n1' }),
      valid('egroup-entry', 'a new extent group, as placement records it', newEgroup),
      valid('egroup-entry', 'three replicas, two extents (one garbage), a write in progress', egroupEntry),
      valid('md-get-request', 'an extent group', { map: 'egroup', key: '67890' }),
      valid('md-get-reply', 'an extent-id entry at revision 42', { value: { egroup: io.egroup }, revision: 42 }),
      valid('md-get-reply', 'no value', { revision: 0 }),
      valid('md-put-request', 'create a vDisk map row', { map: 'vdisk', key: '12349.2', value: vdiskRow, revision: 0 }),
      valid('md-put-request', 'an extent group, compare-and-set on revision 42', { map: 'egroup', key: '67890', value: egroupEntry, revision: 42 }),
      valid('md-put-request', 'a vDisk map row written by the vDisk\'s owner at epoch 3', { map: 'vdisk', key: '12349.2', value: vdiskRow, revision: 42, fence: { vdisk: io.vdisk, epoch: 3 } }),
      valid('md-put-reply', 'the new revision', { revision: 43 }),
      valid('md-delete-request', 'at revision 43', { map: 'vdisk', key: '12349.2', revision: 43 }),
      valid('md-delete-request', 'whatever the revision', { map: 'extent', key: '4096-9f86d081' }),
      valid('md-delete-request', 'by the vDisk\'s owner at epoch 3', { map: 'vdisk', key: '12349.2', revision: 43, fence: { vdisk: io.vdisk, epoch: 3 } }),
      valid('md-fence', 'vDisk 12349 at epoch 3', { vdisk: io.vdisk, epoch: 3 }),
      valid('md-delete-reply', 'the only reply', {}),
    ],
    invalid: [
      invalid('io-read-request', 'a lone 0xff break byte', 'malformed CBOR: a break code outside an indefinite-length item (cbor-x alone would read it as {})', raw([0xff]), { rejectedBy: ['wire', 'cddl', 'ts'] }),
      invalid('io-read-request', 'a negative offset', 'offset is unsigned', { ...readRequest, offset: -4096 }, { path: '$.offset' }),
      invalid('io-read-request', 'offset 2^53', 'offset is a uint53', { ...readRequest, offset: 2 ** 53 }, { path: '$.offset' }),
      invalid('io-read-request', 'the vDisk id as text', 'ids are integers, never text', { ...readRequest, vdisk: '12349' }, { path: '$.vdisk' }),
      invalid('io-read-request', 'a vDisk id of 2^64, a tag-2 bignum', 'above 2^64-1, and tagged (@strata/codec refuses every tag before it decodes)', raw(rawMap([['vdisk', [0xc2, 0x49, 0x01, 0, 0, 0, 0, 0, 0, 0, 0]], ['offset', int(0)], ['length', int(512)]])), { rejectedBy: ['wire', 'cddl', 'ts'] }),
      invalid('io-read-request', 'no length', 'length is required', { vdisk: io.vdisk, offset: 0 }, { path: '$' }),
      invalid('io-write-request', 'an unknown field', 'maps are closed', { ...writeRequest, sync: true }, { path: '$.sync' }),
      invalid('io-write-request', 'data as base64 text', 'binary data travels as byte strings, never base64', { ...writeRequest, data: 'SGVsbG8=' }, { path: '$.data' }),
      invalid(
        'io-write-request',
        'data as a tag-64 typed array',
        'no tags: byte strings are plain major type 2 (cbor-x tags a Uint8Array with 64 by default, and decodes the tag to the same bytes; @strata/codec refuses every tag before it decodes)',
        raw(rawMap([['vdisk', int(12349)], ['offset', int(0)], ['data', [0xd8, 0x40, ...encode(hello)]]])),
        { rejectedBy: ['wire', 'cddl', 'ts'] },
      ),
      invalid('io-write-request', 'fua as 1', 'fua is a bool', { ...writeRequest, fua: 1 }, { path: '$.fua' }),
      invalid('io-zero-request', 'a negative length', 'length is unsigned', { vdisk: io.vdisk, offset: 0, length: -1 }, { path: '$.length' }),
      invalid('io-flush-request', 'followed by a 0xff break byte', 'one data item per message, nothing after it', raw([...encode({ vdisk: io.vdisk })], [0xff]), { rejectedBy: ['wire', 'cddl', 'ts'] }),
      invalid('io-done-reply', 'a member', 'the reply is an empty map', { done: true }, { path: '$.done' }),
      invalid('oplog-op', 'an unknown op', 'op is write, zero or ref', { op: 'trim', offset: 0, length: 4096 }, { path: '$.op' }),
      invalid('oplog-op', 'a write with a length', 'a write carries data, its length is the data\'s', { op: 'write', offset: 0, data: hello, length: 5 }, { path: '$.length' }),
      invalid('oplog-entry', 'no ops', 'a group commit carries at least one op', { kind: 'ops', epoch: 1, ops: [] }, { path: '$.ops' }),
      invalid('oplog-entry', 'a marker without its owner', 'owner is required in a marker', { kind: 'marker', epoch: 2 }, { path: '$' }),
      invalid('oplog-entry', 'a marker with an unknown field', 'maps are closed', { kind: 'marker', epoch: 2, owner: 'n2', reason: 'takeover' }, { path: '$.reason' }),
      invalid('vdisk-ownership', 'a negative drained sequence', 'drained is unsigned', { owner: 'n1', epoch: 1, drained: -1 }, { path: '$.drained' }),
      invalid('takeover-record', 'an unknown step', 'step is claim, fence, replay or serve', { ...takeover, step: 'drain' }, { path: '$.step' }),
      invalid('vdc-open-request', 'no epoch', 'epoch is required: the new owner checks it against own', { vdisk: io.vdisk }, { path: '$' }),
      invalid('vdisk-ownership', 'volunteers as text', 'volunteers is an array of node names', { owner: 'n1', epoch: 1, volunteers: 'n2' }, { path: '$.volunteers' }),
      invalid('eg-piece', 'both data and zeros', 'a piece is data or zeros, not both', { offset: 0, data: hello, zeros: 5 }, { path: '$.zeros' }),
      invalid('eg-piece', 'neither data nor zeros', 'a piece is data or zeros', { offset: 0 }, { path: '$' }),
      invalid('eg-write-request', 'an empty pieces array', 'a write carries 1 to 4096 pieces (EG_WRITE_PIECES_MAX)', { ...egWrite, pieces: [] }, { path: '$.pieces' }),
      invalid('eg-write-request', 'a piece at a negative offset', 'offsets are unsigned', { ...egWrite, pieces: [{ offset: -1, zeros: 1 }] }, { path: '$.pieces[0].offset' }),
      invalid('eg-write-request', 'no vdisk', 'vdisk is required: the store checks who owns the extent group', (({ vdisk: _v, ...rest }) => rest)(egWrite), { path: '$' }),
      invalid('eg-write-reply', 'crc32c as bytes', 'crc32c is an integer', { version: 3, crc32c: Uint8Array.from([0xe3, 0x06, 0x92, 0x83]) }, { path: '$.crc32c' }),
      invalid('eg-read-request', 'no length', 'length is required', { disk: io.disk, egroup: io.egroup, offset: 0 }, { path: '$' }),
      invalid('eg-stat-request', 'the extent group id as text', 'ids are integers', { disk: io.disk, egroup: '67890' }, { path: '$.egroup' }),
      invalid('eg-delete-request', 'an unknown field', 'maps are closed', { disk: io.disk, egroup: io.egroup, force: true }, { path: '$.force' }),
      invalid('eg-list-request', 'a limit of 0', 'a page holds 1 to 10000 replicas', { disk: io.disk, limit: 0 }, { path: '$.limit' }),
      invalid('eg-list-request', 'a limit over 10000', 'a page holds 1 to 10000 replicas', { disk: io.disk, limit: 10_001 }, { path: '$.limit' }),
      invalid('eg-delete-reply', 'a member', 'the reply is an empty map; the store does not say whether the replica was there', { deleted: true }, { path: '$.deleted' }),
      invalid('disk-usage', 'no node', 'node is required', { usedBytes: GiB, capacityBytes: TiB, atMs: T0 }, { path: '$' }),
      invalid('block-location', 'a negative length', 'length is unsigned', { ...location(0), length: -1 }, { path: '$.length' }),
      invalid('vdisk-row', 'a block key in hexadecimal', 'block keys are block indexes in decimal', { blocks: { '0x25': location(0) } }, { path: '$.blocks["0x25"]' }),
      invalid('vdisk-row', 'a block without its length', 'a block location has egroup, offset and length', { blocks: { '37': { egroup: io.egroup, offset: 0 } } }, { path: '$.blocks["37"]' }),
      invalid(
        'vdisk-row',
        'a 0xff break byte in place of the blocks map',
        'malformed CBOR: a break code outside an indefinite-length item (cbor-x alone reads it as an empty map; @strata/codec walks the message first and refuses it)',
        raw(rawMap([['blocks', [0xff]]])),
        { rejectedBy: ['wire', 'cddl', 'ts'] },
      ),
      invalid('extent-entry', 'an unknown field', 'maps are closed', { egroup: io.egroup, refs: 2 }, { path: '$.refs' }),
      invalid('egroup-replica', 'the node as its id', 'node is the node\'s name', { disk: io.disk, node: 12345n }, { path: '$.node' }),
      invalid('egroup-entry', 'no replicas', 'an extent group has at least one replica', { ...newEgroup, replicas: [] }, { path: '$.replicas' }),
      invalid('egroup-entry', 'an extent without refs', 'refs is required', { ...newEgroup, extents: [{ id: `${io.vdisk}:37`, offset: 0, length: MiB }] }, { path: '$.extents[0]' }),
      invalid('md-get-request', 'an unknown map', 'map is vdisk, extent or egroup', { map: 'inode', key: '67890' }, { path: '$.map' }),
      invalid('md-get-request', 'an empty key', 'keys have 1 to 200 characters', { map: 'egroup', key: '' }, { path: '$.key' }),
      invalid('md-get-request', 'a key of 201 characters', 'keys have 1 to 200 characters', { map: 'extent', key: 'k'.repeat(201) }, { path: '$.key' }),
      invalid(
        'md-get-request',
        'a key of 101 "é" (202 bytes)',
        'CDDL\'s .size counts UTF-8 bytes, the TypeScript schema UTF-16 code units, so only the CDDL refuses it; the shard refuses any key that is not ASCII letters, digits and - / = . _ anyway (INVALID)',
        { map: 'extent', key: 'é'.repeat(101) },
        { rejectedBy: ['cddl'], path: '$.key' },
      ),
      invalid('md-get-reply', 'a negative revision', 'revision is unsigned', { revision: -1 }, { path: '$.revision' }),
      invalid('md-put-request', 'no revision', 'a put is a compare-and-set: revision is required (0 creates)', { map: 'extent', key: '4096-9f86d081', value: { egroup: io.egroup } }, { path: '$' }),
      invalid(
        'md-put-request',
        'a value that fits no map',
        'the value is the md-value of its map; the request schema accepts any value and the shard checks it against the map (INVALID), so the TypeScript request schema lets it through',
        { map: 'extent', key: '4096-9f86d081', value: { inode: 7 }, revision: 0 },
        { rejectedBy: ['cddl'], path: '$.value' },
      ),
      invalid('md-put-reply', 'no revision', 'revision is required', {}, { path: '$' }),
      invalid('md-delete-request', 'a negative revision', 'revision is unsigned', { map: 'vdisk', key: '12349.2', revision: -1 }, { path: '$.revision' }),
      invalid('md-delete-request', 'a fence without its epoch', 'a fence names the vDisk and the epoch', { map: 'vdisk', key: '12349.2', fence: { vdisk: io.vdisk } }, { path: '$.fence' }),
      invalid('md-fence', 'the epoch as text', 'epoch is an integer', { vdisk: io.vdisk, epoch: '3' }, { path: '$.epoch' }),
      invalid('md-fence', 'the vDisk as its name', 'vdisk is the vDisk\'s id', { vdisk: 'db-disk', epoch: 3 }, { path: '$.vdisk' }),
      invalid('md-delete-reply', 'a member', 'the reply is an empty map', { deleted: true }, { path: '$.deleted' }),
    ],
  };
}

// ---- HA --------------------------------------------------------------------------------

const protection = { power: 'on', protected: true, host: 'n2', service: 'ha-master', setBy: 'n1', haEpoch: 5, reason: 'operator start', atMs: T0 };
const hostRec = { host: 'n1', incarnation: 2, seq: 41, atMs: T0, cpuCount: 4, memoryBytes: 4 * GiB, vms: [{ vm: ha.vm, powerOnEpoch: 3, pid: 4711 }], isolated: false, intervalMs: 1000 };
const waiting = {
  vm: ha.vm,
  step: 'wait-access',
  cause: 'host n1 failed: its power-on lease (epoch 3) expired',
  reason: 'vdisk db: extent group 67890 has no replica on a live node (n1)',
  priority: 'high',
  listedAtMs: T0,
  attempts: 0,
  excluded: [],
  haEpoch: 5,
};
const hostStatus = { host: 'n1', state: 'alive', cpuCount: 4, memoryBytes: 4 * GiB, cpuUsed: 1, memoryUsedBytes: 256 * MiB, vms: ['web'] };
const vmStatus = { vm: ha.vm, name: 'web', state: 'running', host: 'n2', protected: true, reason: 'power-on lease epoch 4 held by n2' };

function haFile(): VectorFile {
  return {
    about: 'Golden vectors for proto/ha.cddl: the ha bucket (protection state, host records, restart records), agent heartbeats, requests to agents and to the HA master.',
    cddl: ['common.cddl', 'config.cddl', 'ha.cddl'],
    valid: [
      valid('vm-protection', 'powered on by the operator, protected', protection),
      valid('vm-protection', 'set by an agent for the master', { ...protection, service: 'ha-agent', setBy: 'n3' }),
      valid('vm-protection', 'powered off', { ...protection, power: 'off', protected: false, reason: 'operator stop' }),
      valid('hosted-vm', 'a VM at power-on epoch 3', { vm: ha.vm, powerOnEpoch: 3, pid: 4711 }),
      valid('host-record', 'a host running one VM', hostRec),
      valid('host-record', 'an isolated host', { ...hostRec, vms: [], isolated: true }),
      valid('restart-record', 'on the wait list', waiting),
      valid('restart-record', 'being powered on at n3 after a failure', { ...waiting, step: 'powering-on', reason: 'told n3 to power it on', host: 'n3', attempts: 1, excluded: ['n2'] }),
      valid('restart-record', 'waiting to retry', { ...waiting, step: 'retry-delay', reason: 'n3: the VM exited at once', attempts: 1, retryAtMs: T0 + 2000, excluded: ['n3'] }),
      valid('ha-heartbeat', 'the master', { host: 'n1', incarnation: 2, seq: 120, master: true, haEpoch: 5, isolated: false, intervalMs: 500 }),
      valid('ha-heartbeat', 'a slave that has seen no master yet', { host: 'n2', incarnation: 1, seq: 3, master: false, haEpoch: 0, isolated: false, intervalMs: 500 }),
      valid('ha-power-on-request', 'a restart onto an expired lease', { vm: ha.vm, haEpoch: 5, leaseRevision: 812, reason: 'restart: host n1 failed' }),
      valid('ha-power-on-request', 'a first power-on', { vm: ha.vm, haEpoch: 5, leaseRevision: 0, reason: 'operator start' }),
      valid('ha-power-on-reply', 'running on n2', { host: 'n2', powerOnEpoch: 4, leaseRevision: 813, pid: 4711 }),
      valid('ha-power-off-request', 'the operator stopped it', { vm: ha.vm, haEpoch: 5, reason: 'operator stop' }),
      valid('ha-power-off-reply', 'it ran', { wasRunning: true }),
      valid('ha-set-request', 'a SET for the master', { vm: ha.vm, value: { ...protection, service: 'ha-agent', setBy: 'n3' }, revision: 815 }),
      valid('ha-set-restart-request', 'a restart record for the master', { vm: ha.vm, record: waiting, revision: 902, haEpoch: 5 }),
      valid('ha-set-restart-request', 'the restart is over: delete', { vm: ha.vm, revision: 903, haEpoch: 5 }),
      valid('ha-set-reply', 'the new revision', { revision: 816 }),
      valid('ha-start-request', 'a VM', { vm: ha.vm }),
      valid('ha-start-reply', 'running on n2', { host: 'n2', powerOnEpoch: 4, leaseRevision: 813, pid: 4711 }),
      valid('ha-stop-request', 'a VM', { vm: ha.vm }),
      valid('ha-stop-reply', 'it was not running', { wasRunning: false }),
      valid('ha-status-request', 'the only request', {}),
      valid('ha-host-status', 'a host running one VM', hostStatus),
      valid('ha-vm-status', 'a running VM', vmStatus),
      valid('ha-status-reply', 'one host, one VM, one VM waiting', { master: 'n1', haEpoch: 5, hosts: [hostStatus], vms: [vmStatus], restarts: [waiting] }),
    ],
    invalid: [
      invalid('vm-protection', 'power as a bool', 'power is "on" or "off"', { ...protection, power: true }, { path: '$.power' }),
      invalid('vm-protection', 'an unknown service', 'service is ha-master or ha-agent', { ...protection, service: 'vcenter' }, { path: '$.service' }),
      invalid('vm-protection', 'no reason', 'reason is required', (({ reason: _r, ...rest }) => rest)(protection), { path: '$' }),
      invalid('host-record', 'an upper-case host name', 'host names are object names', { ...hostRec, host: 'N1' }, { path: '$.host' }),
      invalid('host-record', 'a VM id as text', 'ids are integers', { ...hostRec, vms: [{ vm: '12360', powerOnEpoch: 3, pid: 4711 }] }, { path: '$.vms[0].vm' }),
      invalid('restart-record', 'an unknown step', 'step is one of the restart steps', { ...waiting, step: 'booting' }, { path: '$.step' }),
      invalid('restart-record', 'priority normal', 'restart priorities are high, medium and low', { ...waiting, priority: 'normal' }, { path: '$.priority' }),
      invalid('ha-heartbeat', 'no haEpoch', 'haEpoch is required', { host: 'n1', incarnation: 2, seq: 120, master: true, isolated: false, intervalMs: 500 }, { path: '$' }),
      invalid('ha-power-on-request', 'a negative lease revision', 'revisions are unsigned', { vm: ha.vm, haEpoch: 5, leaseRevision: -1, reason: 'x' }, { path: '$.leaseRevision' }),
      invalid('ha-status-reply', 'a VM in an unknown state', 'state is one of the VM states', { master: 'n1', haEpoch: 5, hosts: [], vms: [{ ...vmStatus, state: 'paused' }], restarts: [] }, { path: '$.vms[0].state' }),
    ],
  };
}

const scanSummary = { scan: 3, full: false, startedAtMs: T0, durationMs: 42, egroups: 120, underReplicated: 7, lostReplicas: 7, copiesQueued: 7, unfixable: 0 };
const garbageSummary = { atMs: T0, listed: 40, deleted: 2, bytes: 8 * MiB, young: 1, skippedDisks: 0, enabled: true };
const scrubSummary = { startedAtMs: T0, durationMs: 5000, replicas: 120, bytes: 240 * MiB, damaged: 1, skipped: 0 };
const progress = { master: 'n1', curatorEpoch: 4, updatedAtMs: T0, rebuild: true, underReplicated: 3, bytesToCopy: 12 * MiB, bytesCopied: 16 * MiB, copiesDone: 4, copiesFailed: 0, bytesPerSec: 20 * MiB, etaMs: 600, lastScan: scanSummary };

const mapRowExample = { egroup: 67890n, revision: 5121, entry: { vdisk: 12345n, replicas: [{ node: 'n1', disk: 12351n }, { node: 'n2', disk: 12352n }], version: 3, sizeBytes: 4 * MiB, extents: [{ id: '12345:0', offset: 0, length: 65536, refs: 1 }] } };
const scanTaskExample = { task: 2, partitions: [2, 10], done: true, worker: 'n2', attempts: 1, pages: 1, entries: 40 };

function curatorFile(): VectorFile {
  return {
    about: 'Golden vectors for proto/curator.cddl: the curator master\'s progress (own, curator.progress) and the requests strata.curator.status and strata.curator.scan.',
    cddl: ['common.cddl', 'curator.cddl'],
    valid: [
      valid('curator-scan-summary', 'a scan that found 7 extent groups under-replicated', scanSummary),
      valid('curator-scan-summary', 'a full scan mapped by two slaves, one task reassigned', { ...scanSummary, full: true, kind: 'full', id: T0, entries: 120, tasks: 8, reassigned: 1, resumed: 0, workers: [{ node: 'n2', tasks: 5 }, { node: 'n3', tasks: 3 }] }),
      valid('scan-worker', 'a slave that mapped four tasks', { node: 'n2', tasks: 4 }),
      valid('curator-map-request', 'the first page of a full scan\'s task', { scan: T0, master: 'n1', curatorEpoch: 4, task: 2, partitions: [2, 10], kind: 'full', sinceRevision: 0, alive: ['n1', 'n2', 'n3'] }),
      valid('curator-map-request', 'the next page of a partial scan\'s task', { scan: T0, master: 'n1', curatorEpoch: 4, task: 0, partitions: [0, 2, 4], kind: 'partial', sinceRevision: 5120, alive: [], after: '5400' }),
      valid('curator-map-reply', 'one entry, one replica missing', { rows: [mapRowExample], deleted: [], missing: [{ egroup: 67890n, disk: 12351n }], entries: 1 }),
      valid('curator-map-reply', 'a partial page with a deletion and more to come', { rows: [mapRowExample], deleted: [{ egroup: 67891n, revision: 5130 }], missing: [], entries: 2, next: '5130' }),
      valid('map-row', 'an entry with its revision', mapRowExample),
      valid('map-missing', 'a replica with no file', { egroup: 67890n, disk: 12351n }),
      valid('scan-task', 'a task done by n2', scanTaskExample),
      valid('curator-scan-record', 'a full scan with one task done', { id: T0, kind: 'full', reason: 'operator', master: 'n1', curatorEpoch: 4, startedAtMs: T0, uptoRevision: 5120, tasks: [scanTaskExample, { task: 3, partitions: [3, 11], done: false, worker: 'n3', attempts: 1, pages: 0, entries: 0 }] }),
      valid('curator-map-output', 'the first page of task 2', { scan: T0, task: 2, page: 0, rows: [mapRowExample], missing: [] }),
      valid('curator-progress', 'copying, with an estimate', progress),
      valid('curator-garbage-summary', 'two replicas deleted, one too young', garbageSummary),
      valid('curator-drain', 'a node with 12 replicas left', { kind: 'node', name: 'n2', replicas: 12, bytes: 48 * MiB }),
      valid('rebalance-disk', 'a disk 40% used', { disk: 101n, node: 'n1', usedPermille: 400 }),
      valid('curator-rebalance', 'a new node being given a share', { enabled: true, thresholdPermille: 100, fullest: { disk: 101n, node: 'n1', usedPermille: 400 }, emptiest: { disk: 104n, node: 'n4', usedPermille: 25 }, spreadPermille: 375, moving: 3, movesDone: 5 }),
      valid('curator-rebalance', 'off, one disk', { enabled: false, thresholdPermille: 100, moving: 0, movesDone: 0 }),
      valid('curator-progress', 'rebalancing', { ...progress, rebalance: { enabled: true, thresholdPermille: 100, fullest: { disk: 101n, node: 'n1', usedPermille: 400 }, emptiest: { disk: 104n, node: 'n4', usedPermille: 25 }, spreadPermille: 375, moving: 3, movesDone: 5 } }),
      valid('tier-use', 'an ssd tier 83.2% used', { tier: 'ssd', usedPermille: 832 }),
      valid('curator-tiering', 'moving cold data off a full ssd tier', { enabled: true, thresholdPermille: 800, coldAfterMs: 3_600_000, tiers: [{ tier: 'ssd', usedPermille: 832 }, { tier: 'hdd', usedPermille: 41 }], moving: 3, movesDone: 12 }),
      valid('curator-progress', 'tiering', { ...progress, tiering: { enabled: true, thresholdPermille: 800, coldAfterMs: 3_600_000, tiers: [{ tier: 'ssd', usedPermille: 832 }], moving: 0, movesDone: 2 } }),
      valid('curator-progress', 'draining a node and a disk', { ...progress, draining: [{ kind: 'node', name: 'n2', replicas: 12, bytes: 48 * MiB }, { kind: 'disk', name: 'n3-d2', replicas: 0, bytes: 0 }] }),
      valid('curator-progress', 'after a scan that collected garbage', { ...progress, garbageDeleted: 12, garbageBytes: 48 * MiB, egroupsReclaimed: 5, egroupsReclaimedBytes: 20 * MiB, egroupsCompacted: 2, lastGarbage: garbageSummary }),
      valid('curator-progress', 'a new master before its first scan, rebuild off', (({ etaMs: _e, lastScan: _l, ...rest }) => ({ ...rest, rebuild: false, underReplicated: 0, bytesToCopy: 0, bytesPerSec: 0 }))(progress)),
      valid('curator-status-request', 'the only request', {}),
      valid('curator-status-reply', 'a full scan running', { master: 'n1', curatorEpoch: 4, running: { startedAtMs: T0, full: true }, copiesInFlight: 2, progress }),
      valid('curator-scan-request', 'a full scan', { full: true }),
      valid('curator-scan-reply', 'the scan\'s summary', { ...scanSummary, full: true }),
      valid('curator-scrub-summary', 'a pass that found one damaged replica', scrubSummary),
      valid('curator-scrub-request', 'the only request', {}),
      valid('curator-scrub-reply', 'the pass\'s summary', scrubSummary),
      valid('curator-progress', 'a scrub running after one that ended', { ...progress, lastScrub: scrubSummary, scrubbing: { startedAtMs: T0, replicasDone: 40, replicasTotal: 120 } }),
    ],
    invalid: [
      invalid('curator-scan-request', 'no full flag', 'full is required', {}, { path: '$' }),
      invalid('curator-scan-request', 'full as text', 'full is a bool', { full: 'yes' }, { path: '$.full' }),
      invalid('curator-progress', 'negative bytes copied', 'counts are unsigned', { ...progress, bytesCopied: -1 }, { path: '$.bytesCopied' }),
      invalid('curator-status-reply', 'an upper-case master', 'node names are object names', { master: 'N1', curatorEpoch: 4, copiesInFlight: 0, progress }, { path: '$.master' }),
    ],
  };
}

/** Every vector file, by its name under proto/vectors/. */
export function buildVectorFiles(): Record<string, VectorFile> {
  return { 'common.json': common(), 'config.json': config(), 'events.json': events(), 'liveness.json': liveness(), 'io.json': ioPath(), 'ha.json': haFile(), 'curator.json': curatorFile() };
}
