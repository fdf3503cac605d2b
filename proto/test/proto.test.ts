// proto/ is where a message is defined, for every language: the CDDL files, the
// golden vectors and PROTOCOL.md. This test proves they agree with the TypeScript
// the actors run: the CDDL parses and links; every vector is accepted or refused
// as it says by the encoding rules, the CDDL rule and the TypeScript schema; the
// valid vectors are exactly what @strata/codec writes; each CDDL rule and its zod
// schema have the same members, optional members, defaults and value sets; the
// error codes and their retryable flags match libs/errors.
//
// UPDATE_VECTORS=1 npx jest --selectProjects unit -- proto   rewrites proto/vectors/.
import fs from 'node:fs';
import path from 'node:path';
import type { z } from 'zod';
import { decode, decodeUntyped, encode, u64, uint } from '@strata/codec';
import { errorCodes, isRetryableCode, type ErrorCode } from '@strata/errors';
import { errorBody, replyEnvelope } from '@strata/bus';
import { leaseRecord } from '@strata/lease';
import {
  CfgOp,
  EstoreOp,
  EventType,
  IoOp,
  Liveness,
  MdMap,
  MdOp,
  Priority,
  Tier,
  Transform,
  cfgEntry,
  cfgLeaderMarker,
  cfgObject,
  cfgObjectWithRevision,
  clusterEvent,
  containerSpec,
  createRequest,
  deleteReply,
  deleteRequest,
  diskSpec,
  getRequest,
  heartbeat,
  hostSpec,
  idCounter,
  kinds,
  listReply,
  listRequest,
  nodeSpec,
  nodeStatus,
  objectName,
  poolSpec,
  qosSpec,
  specs,
  statusReply,
  statusRequest,
  updateRequest,
  vdiskSpec,
  vmSpec,
  ioReadRequest,
  ioReadReply,
  ioWriteRequest,
  ioZeroRequest,
  ioFlushRequest,
  ioDoneReply,
  oplogOp,
  oplogEntry,
  vdiskOwnership,
  ioAttachRequest,
  ioAttachReply,
  vdcOpenRequest,
  vdcOpenReply,
  vdcRelinquishRequest,
  vdcRelinquishReply,
  takeoverRecord,
  TakeoverStep,
  egPiece,
  egWriteRequest,
  egWriteReply,
  egReadRequest,
  egReadReply,
  egStatRequest,
  egStatReply,
  egDeleteRequest,
  egDeleteReply,
  diskUsage,
  blockLocation,
  vdiskRow,
  extentEntry,
  egroupReplica,
  egroupEntry,
  mdGetRequest,
  mdGetReply,
  mdFence,
  mdPutRequest,
  mdPutReply,
  mdDeleteRequest,
  mdDeleteReply,
  subjects,
  type Kind,
} from '@strata/proto';
import { CddlSchema, parseCddlFiles, type Entry, type Group, type Type } from './cddl-check';
import { compareShapes, cddlShape, zodShape } from './shape';
import { buildVectorFiles, checkers, type Checker, type VectorFile } from './vectors';
import { checkWire } from './wire-check';

const protoDir = path.resolve(__dirname, '..');
const vectorsDir = path.join(protoDir, 'vectors');
const cddlFiles = fs.readdirSync(protoDir).filter((f) => f.endsWith('.cddl')).sort();

// ---- The table: each CDDL rule and the TypeScript schema that reads it --------------------

interface Pair {
  rule: string;
  /** The schema the code reads the message with. */
  schema: z.ZodType;
  /** Why the pair is what it is, when it is not obvious. */
  note?: string;
}

const PAIRS: readonly Pair[] = [
  // common.cddl
  { rule: 'uint53', schema: uint },
  { rule: 'u64', schema: u64 },
  { rule: 'object-name', schema: objectName },
  { rule: 'error', schema: errorBody, note: '@strata/bus' },
  { rule: 'reply', schema: replyEnvelope, note: '@strata/bus' },
  // config.cddl
  { rule: 'node-spec', schema: nodeSpec },
  { rule: 'host-spec', schema: hostSpec },
  { rule: 'disk-spec', schema: diskSpec },
  { rule: 'pool-spec', schema: poolSpec },
  { rule: 'container-spec', schema: containerSpec },
  { rule: 'qos-spec', schema: qosSpec },
  { rule: 'vdisk-spec', schema: vdiskSpec },
  { rule: 'vm-spec', schema: vmSpec },
  { rule: 'node-status', schema: nodeStatus },
  { rule: 'cfg-object', schema: cfgObject },
  { rule: 'cfg-object-with-revision', schema: cfgObjectWithRevision },
  { rule: 'cfg-leader-marker', schema: cfgLeaderMarker },
  { rule: 'cfg-entry', schema: cfgEntry },
  { rule: 'create-request', schema: createRequest },
  { rule: 'create-reply', schema: cfgObjectWithRevision, note: 'no createReply schema in proto/src; the config service returns a CfgObjectWithRevision' },
  { rule: 'get-request', schema: getRequest },
  { rule: 'get-reply', schema: cfgObjectWithRevision, note: 'no getReply schema in proto/src' },
  { rule: 'list-request', schema: listRequest },
  { rule: 'list-reply', schema: listReply },
  { rule: 'update-request', schema: updateRequest },
  { rule: 'update-reply', schema: cfgObjectWithRevision, note: 'no updateReply schema in proto/src' },
  { rule: 'delete-request', schema: deleteRequest },
  { rule: 'delete-reply', schema: deleteReply },
  { rule: 'status-request', schema: statusRequest },
  { rule: 'status-reply', schema: statusReply },
  // events.cddl
  { rule: 'cluster-event', schema: clusterEvent },
  // liveness.cddl
  { rule: 'heartbeat', schema: heartbeat },
  { rule: 'id-counter', schema: idCounter },
  { rule: 'lease-record', schema: leaseRecord, note: '@strata/lease' },
  // io.cddl
  { rule: 'io-read-request', schema: ioReadRequest },
  { rule: 'io-read-reply', schema: ioReadReply },
  { rule: 'io-write-request', schema: ioWriteRequest },
  { rule: 'io-zero-request', schema: ioZeroRequest },
  { rule: 'io-flush-request', schema: ioFlushRequest },
  { rule: 'io-done-reply', schema: ioDoneReply },
  { rule: 'oplog-op', schema: oplogOp },
  { rule: 'oplog-entry', schema: oplogEntry },
  { rule: 'vdisk-ownership', schema: vdiskOwnership },
  { rule: 'io-attach-request', schema: ioAttachRequest },
  { rule: 'io-attach-reply', schema: ioAttachReply },
  { rule: 'vdc-open-request', schema: vdcOpenRequest },
  { rule: 'vdc-open-reply', schema: vdcOpenReply },
  { rule: 'vdc-relinquish-request', schema: vdcRelinquishRequest },
  { rule: 'vdc-relinquish-reply', schema: vdcRelinquishReply },
  { rule: 'takeover-record', schema: takeoverRecord },
  { rule: 'eg-piece', schema: egPiece },
  { rule: 'eg-write-request', schema: egWriteRequest },
  { rule: 'eg-write-reply', schema: egWriteReply },
  { rule: 'eg-read-request', schema: egReadRequest },
  { rule: 'eg-read-reply', schema: egReadReply },
  { rule: 'eg-stat-request', schema: egStatRequest },
  { rule: 'eg-stat-reply', schema: egStatReply },
  { rule: 'eg-delete-request', schema: egDeleteRequest },
  { rule: 'eg-delete-reply', schema: egDeleteReply },
  { rule: 'disk-usage', schema: diskUsage },
  { rule: 'block-location', schema: blockLocation },
  { rule: 'vdisk-row', schema: vdiskRow },
  { rule: 'extent-entry', schema: extentEntry },
  { rule: 'egroup-replica', schema: egroupReplica },
  { rule: 'egroup-entry', schema: egroupEntry },
  { rule: 'md-get-request', schema: mdGetRequest },
  { rule: 'md-get-reply', schema: mdGetReply },
  { rule: 'md-fence', schema: mdFence },
  { rule: 'md-put-request', schema: mdPutRequest },
  { rule: 'md-put-reply', schema: mdPutReply },
  { rule: 'md-delete-request', schema: mdDeleteRequest },
  { rule: 'md-delete-reply', schema: mdDeleteReply },
];

/** Closed value sets: each CDDL rule of text literals and the `as const` object it mirrors. */
const ENUMS: readonly { rule: string; values: readonly string[] }[] = [
  { rule: 'kind', values: kinds },
  { rule: 'tier', values: Object.values(Tier) },
  { rule: 'priority', values: Object.values(Priority) },
  { rule: 'transform', values: Object.values(Transform) },
  { rule: 'liveness', values: Object.values(Liveness) },
  { rule: 'event-type', values: Object.values(EventType) },
  { rule: 'error-code', values: errorCodes },
  { rule: 'md-map', values: Object.values(MdMap) },
  { rule: 'takeover-step', values: Object.values(TakeoverStep) },
];

/** Rules with no schema of their own in TypeScript, checked through the rules that use them. */
const CHECKED_THROUGH_USERS = ['positive-uint53', 'unix-ms', 'power-of-two-4k-to-1m', 'ok-reply', 'error-reply', 'kind-and-spec', 'object-kind-and-spec', 'cfg-object-members', 'selector', 'node-counts', 'block-index', 'egroup-tentative', 'egroup-extent', 'md-value', 'md-key'];

const MD_VALUE_DIFFERENCE = '$.value: CDDL has a map {blocks, egroup, vdisk, replicas, version, sizeBytes, tentative, extents}, TypeScript has any';

/**
 * Differences between a rule and its schema that are deliberate. Each line is what
 * compareShapes reports, so a new difference fails the test.
 */
const KNOWN_DIFFERENCES: Record<string, readonly string[]> = {
  // The bus reads any code so that a receiver older than its sender still works
  // (an unknown code becomes INTERNAL); senders send only the codes of error-code.
  error: ['$.code: CDDL has one of ["CHECKSUM","CONFLICT","FENCED","INTERNAL","INVALID","NOT_FOUND","NOT_OWNER","NO_SPACE","QUEUE_FULL","TIMEOUT","UNAVAILABLE"], TypeScript has text'],
  reply: ['$.error.code: CDDL has one of ["CHECKSUM","CONFLICT","FENCED","INTERNAL","INVALID","NOT_FOUND","NOT_OWNER","NO_SPACE","QUEUE_FULL","TIMEOUT","UNAVAILABLE"], TypeScript has text'],
  // XSD's \d (the CDDL .regexp dialect) matches any Unicode decimal digit, JavaScript's
  // only 0 to 9: the CDDL spells out what the zod pattern means.
  'vdisk-row': ['$.blocks{key}: CDDL pattern [0-9]+, TypeScript pattern \\d+'],
  // The value's schema depends on `map`, so the request and reply schemas take any
  // value; the shard checks a put's value against mdValue[map] (INVALID) and the
  // client a get's (INTERNAL). The CDDL names the three values a map can hold.
  'md-get-reply': [MD_VALUE_DIFFERENCE],
  'md-put-request': [MD_VALUE_DIFFERENCE],
};

// ---- Loading -----------------------------------------------------------------------------

const vectorFiles = buildVectorFiles();
const vectorText = (file: VectorFile): string => `${JSON.stringify(file, null, 2)}\n`;

if (process.env.UPDATE_VECTORS === '1') {
  fs.mkdirSync(vectorsDir, { recursive: true });
  for (const [name, file] of Object.entries(vectorFiles)) fs.writeFileSync(path.join(vectorsDir, name), vectorText(file));
}

let schema: CddlSchema;
beforeAll(() => {
  schema = CddlSchema.load(cddlFiles.map((f) => path.join(protoDir, f)));
});

const pairOf = (rule: string): Pair => {
  const pair = PAIRS.find((p) => p.rule === rule);
  if (pair === undefined) throw new Error(`no TypeScript schema is paired with CDDL rule ${rule}`);
  return pair;
};

function verdicts(rule: string, bytes: Uint8Array): Record<Checker, string | undefined> {
  const pair = pairOf(rule);
  const attempt = (f: () => string | undefined): string | undefined => {
    try {
      return f();
    } catch (err) {
      return (err as Error).message;
    }
  };
  return {
    wire: checkWire(bytes),
    cddl: attempt(() => {
      const mismatch = schema.check(rule, decodeUntyped(bytes));
      return mismatch === undefined ? undefined : `${mismatch.path}: ${mismatch.message}`;
    }),
    ts: attempt(() => {
      decode(bytes, pair.schema);
      return undefined;
    }),
  };
}

const fromHex = (hex: string): Uint8Array => Uint8Array.from(Buffer.from(hex, 'hex'));

/** The text keys of a group's members, through choices (not through inclusions). */
function memberNames(group: Group): string[] {
  return group.flatMap((e: Entry) => (e.e === 'member' ? (e.key.k === 'text' ? [e.key.name] : []) : e.e === 'choice' ? e.alts.flatMap(memberNames) : []));
}

function textLiterals(type: Type): string[] | undefined {
  if (type.t === 'lit' && typeof type.value === 'string') return [type.value];
  if (type.t !== 'choice') return undefined;
  const all = type.alts.map(textLiterals);
  return all.every((a) => a !== undefined) ? all.flat() : undefined;
}

// ---- The tests --------------------------------------------------------------------------------

describe('CDDL files', () => {
  it.each(cddlFiles)('%s parses with the cddl package', (file) => {
    const [parsed] = parseCddlFiles([path.join(protoDir, file)]);
    expect(parsed?.error).toBeUndefined();
    expect(parsed?.ast?.length).toBeGreaterThan(0);
  });

  it('link into one namespace: each rule defined once, every reference resolved, all within the subset the checker reads', () => {
    // CddlSchema.load (in beforeAll) throws on a duplicate rule, a dangling reference
    // or a construct outside the subset; here, no rule may have gone missing.
    const parsed = parseCddlFiles(cddlFiles.map((f) => path.join(protoDir, f)));
    expect(schema.rules.size).toBe(parsed.reduce((n, p) => n + (p.ast?.length ?? 0), 0));
  });

  it('give every map member a comment that starts with its name and an example', () => {
    const missing: string[] = [];
    for (const file of cddlFiles) {
      const text = fs.readFileSync(path.join(protoDir, file), 'utf8');
      for (const rule of [...schema.rules.values()].filter((r) => r.file.endsWith(file))) {
        if (rule.def.r !== 'group') continue;
        // The rule's text: from `name =` to the next rule.
        const start = text.search(new RegExp(`^${rule.name} =`, 'm'));
        const rest = text.slice(text.indexOf('\n', start) + 1);
        const next = rest.search(/^[a-z][a-z0-9-]* =/m);
        const body = next < 0 ? rest : rest.slice(0, next);
        for (const name of memberNames(rule.def.group)) {
          if (!new RegExp(`^\\s*; ${name}: \\S`, 'm').test(body)) missing.push(`${file} ${rule.name}.${name}`);
        }
      }
    }
    expect(missing).toEqual([]);
  });

  it('pair every rule with a TypeScript schema, a value set, or the rules that use it', () => {
    const accounted = new Set([...PAIRS.map((p) => p.rule), ...ENUMS.map((e) => e.rule), ...CHECKED_THROUGH_USERS]);
    expect([...schema.rules.keys()].filter((r) => !accounted.has(r))).toEqual([]);
    expect([...accounted].filter((r) => !schema.rules.has(r))).toEqual([]);
  });
});

describe('CDDL and TypeScript agree', () => {
  it.each(PAIRS.map((p) => [p.rule, p] as const))('%s has the members, optional members and defaults of its zod schema', (rule, pair) => {
    const differences = compareShapes(cddlShape(schema, rule), zodShape(pair.schema));
    expect(differences).toEqual(KNOWN_DIFFERENCES[rule] ?? []);
  });

  it.each(ENUMS.map((e) => [e.rule, e.values] as const))('%s has the values of its TypeScript set', (rule, values) => {
    const rule_ = schema.rule(rule);
    const literals = rule_.def.r === 'type' ? textLiterals(rule_.def.type) : undefined;
    expect(literals).toBeDefined();
    expect([...literals!].sort()).toEqual([...values].sort());
  });

  it('the error codes of common.cddl are errorCodes of @strata/errors', () => {
    const rule = schema.rule('error-code');
    expect(rule.def.r === 'type' ? textLiterals(rule.def.type) : undefined).toEqual([...errorCodes]);
  });

  it.each(['kind-and-spec', 'object-kind-and-spec'])('%s pairs each kind with the spec rule of specs[kind]', (name) => {
    const rule = schema.rule(name);
    if (rule.def.r !== 'group') throw new Error(`${name} is a group`);
    const choice = rule.def.group[0];
    if (rule.def.group.length !== 1 || choice?.e !== 'choice') throw new Error(`${name} is one group choice`);
    const seen: string[] = [];
    for (const alt of choice.alts) {
      const member = (key: string): Entry | undefined => alt.find((m) => m.e === 'member' && m.key.k === 'text' && m.key.name === key);
      const kind = member('kind');
      const spec = member('spec');
      if (kind?.e !== 'member' || kind.value.t !== 'lit' || spec?.e !== 'member' || spec.value.t !== 'ref') throw new Error('each alternative is (kind: "<kind>", spec: <kind>-spec, ...)');
      const k = kind.value.value as Kind;
      expect(spec.value.name).toBe(`${k}-spec`);
      expect(pairOf(spec.value.name).schema).toBe(specs[k]);
      seen.push(k);
    }
    expect(seen.sort()).toEqual([...kinds].sort());
  });

  it('the reply envelope of @strata/bus encodes to what common.cddl describes', () => {
    const replies = [
      { ok: null },
      { ok: { objects: [] } },
      { error: { code: 'NOT_OWNER' satisfies ErrorCode, message: 'vdisk 12349 is owned by node 12345', retryable: true, hint: '12345' } },
      { error: { code: 'INVALID' satisfies ErrorCode, message: 'spec.sizeBytes: must be a positive multiple of 512 bytes', retryable: false } },
    ];
    for (const reply of replies) {
      const bytes = encode(replyEnvelope.parse(reply));
      expect(checkWire(bytes)).toBeUndefined();
      expect(schema.check('reply', decodeUntyped(bytes))).toBeUndefined();
    }
    expect(schema.check('reply', decodeUntyped(encode({ ok: 1, error: replies[2]!.error })))).toBeDefined();
  });
});

describe('golden vectors', () => {
  it.each(Object.keys(vectorFiles))('proto/vectors/%s is up to date (UPDATE_VECTORS=1 rewrites it)', (name) => {
    const stored = fs.readFileSync(path.join(vectorsDir, name), 'utf8');
    expect(stored).toBe(vectorText(vectorFiles[name]!));
  });

  it('cover every paired rule with a valid example', () => {
    const covered = new Set(Object.values(vectorFiles).flatMap((f) => f.valid.map((v) => v.rule)));
    expect(PAIRS.map((p) => p.rule).filter((r) => !covered.has(r))).toEqual([]);
  });

  const valid = Object.entries(vectorFiles).flatMap(([file, f]) => f.valid.map((v) => [`${file} ${v.rule}: ${v.description}`, v] as const));
  it.each(valid)('%s is accepted by the encoding rules, the CDDL and TypeScript, and is what the codec writes', (_name, v) => {
    const bytes = fromHex(v.hex);
    expect(verdicts(v.rule, bytes)).toEqual({ wire: undefined, cddl: undefined, ts: undefined });
    expect(Buffer.from(encode(decodeUntyped(bytes))).toString('hex')).toBe(v.hex);
  });

  const invalid = Object.entries(vectorFiles).flatMap(([file, f]) => f.invalid.map((v) => [`${file} ${v.rule}: ${v.description}`, v] as const));
  it.each(invalid)('%s is refused by exactly the checks it names', (_name, v) => {
    const result = verdicts(v.rule, fromHex(v.hex));
    const refusedBy = checkers.filter((c) => result[c] !== undefined);
    expect({ refusedBy, result }).toEqual({ refusedBy: v.rejectedBy, result: expect.anything() as unknown });
    if (v.path !== undefined) expect(result.cddl).toMatch(new RegExp(`^${v.path.replace(/[$.[\]]/g, '\\$&')}: `));
  });
});

describe('PROTOCOL.md', () => {
  const text = fs.readFileSync(path.join(protoDir, 'PROTOCOL.md'), 'utf8');

  it('tables every error code with its retryable flag as libs/errors has it', () => {
    const rows = [...text.matchAll(/^\| `([A-Z_]+)` \|.*\| (yes|no) \|$/gm)].map((m) => [m[1], m[2]]);
    expect(rows).toEqual(errorCodes.map((code) => [code, isRetryableCode(code) ? 'yes' : 'no']));
  });

  it('tables every config subject', () => {
    for (const op of Object.values(CfgOp)) expect(text).toContain(`| \`strata.cfg.${op}\` |`);
  });

  it('tables every subject of the I/O path with its request rule', () => {
    for (const hop of [subjects.io, subjects.admission, subjects.controller]) expect(text).toContain(`| \`${hop('<node>', '<op>')}\` |`);
    for (const op of Object.values(IoOp)) expect(text).toContain(`| \`${op}\` | \`io-${op}-request\` |`);
    for (const op of Object.values(EstoreOp)) expect(text).toContain(`| \`${subjects.estore('<node>', op)}\` | \`eg-${op}-request\``);
    for (const op of Object.values(MdOp)) expect(text).toContain(`| \`strata.md.<partition>.${op}\` | \`md-${op}-request\``);
  });

  it('names a CDDL rule of io.cddl for every message of the I/O path it tables', () => {
    const named = [...text.matchAll(/`((?:io|oplog|eg|md)-[a-z-]*(?:request|reply|op|entry|piece|value|map|key)|vdisk-ownership|disk-usage|vdisk-row|extent-entry|egroup-entry)`/g)].map((m) => m[1]!);
    expect(named.filter((r) => !schema.rules.has(r))).toEqual([]);
  });
});
