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
import ts from 'typescript';
import { decode, decodeUntyped, encode } from '@strata/codec';
import { errorCodes, isRetryableCode, type ErrorCode } from '@strata/errors';
import { replyEnvelope } from '@strata/bus';
import {
  CfgOp,
  DirectorOp,
  EstoreOp,
  EventCategory,
  EventType,
  IoOp,
  Liveness,
  MdMap,
  MdOp,
  Priority,
  Tier,
  Transform,
  kinds,
  specs,
  TakeoverStep,
  mdValue,
  ioSchemas,
  subjects,
  buckets,
  keys,
  streams,
  VdcOp,
  VmDriver,
  RestartPriority,
  VmPower,
  HaService,
  RestartStep,
  HaAgentOp,
  HaMasterOp,
  CuratorOp,
  HostState,
  VmState,
  ScanKind,
  type Kind,
} from '@strata/proto';
import { CddlSchema, parseCddlFiles, type Entry, type Group, type Type } from './cddl-check';
import { compareShapes, cddlShape, zodShape } from './shape';
import { PAIRS, type Pair } from './rule-schemas';
import { buildVectorFiles, checkers, type Checker, type VectorFile } from './vectors';
import { checkWire } from './wire-check';

const protoDir = path.resolve(__dirname, '..');
const vectorsDir = path.join(protoDir, 'vectors');
const cddlFiles = fs.readdirSync(protoDir).filter((f) => f.endsWith('.cddl')).sort();

// ---- The table: each CDDL rule and the TypeScript schema that reads it --------------------


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
  { rule: 'vm-driver', values: Object.values(VmDriver) },
  { rule: 'restart-priority', values: Object.values(RestartPriority) },
  { rule: 'vm-power', values: Object.values(VmPower) },
  { rule: 'ha-service', values: Object.values(HaService) },
  { rule: 'restart-step', values: Object.values(RestartStep) },
  { rule: 'host-state', values: Object.values(HostState) },
  { rule: 'vm-state', values: Object.values(VmState) },
  { rule: 'scan-kind', values: Object.values(ScanKind) },
];

/** Rules with no schema of their own in TypeScript, checked through the rules that use them. */
const CHECKED_THROUGH_USERS = ['positive-uint53', 'unix-ms', 'power-of-two-4k-to-1m', 'ok-reply', 'error-reply', 'kind-and-spec', 'object-kind-and-spec', 'cfg-object-members', 'selector', 'node-counts', 'block-index', 'egroup-tentative', 'egroup-extent', 'gateway-attachment', 'md-value', 'md-key'];

const MD_VALUE_DIFFERENCE = '$.value: CDDL has a map {blocks, egroup, vdisk, replicas, version, sizeBytes, tentative, gen, extents}, TypeScript has any';

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

// ---- PROTOCOL.md against the names in proto/src ------------------------------------------

const srcDir = path.join(protoDir, 'src');

/** Every `export const X = { ... } as const` (also `as const satisfies T`) in proto/src, with its file. */
function constObjects(): { name: string; file: string }[] {
  const found: { name: string; file: string }[] = [];
  for (const file of fs.readdirSync(srcDir).filter((f) => f.endsWith('.ts')).sort()) {
    const source = ts.createSourceFile(file, fs.readFileSync(path.join(srcDir, file), 'utf8'), ts.ScriptTarget.Latest, true);
    for (const statement of source.statements) {
      if (!ts.isVariableStatement(statement) || !statement.modifiers?.some((m) => m.kind === ts.SyntaxKind.ExportKeyword)) continue;
      for (const decl of statement.declarationList.declarations) {
        let init = decl.initializer;
        if (init !== undefined && ts.isSatisfiesExpression(init)) init = init.expression;
        if (init !== undefined && ts.isAsExpression(init) && ts.isConstTypeReference(init.type) && ts.isObjectLiteralExpression(init.expression) && ts.isIdentifier(decl.name)) {
          found.push({ name: decl.name.text, file: `proto/src/${file}` });
        }
      }
    }
  }
  return found;
}

/** A placeholder for a builder's argument; `<anything>` in the document stands for it. */
const HOLE = '\u0000';
const withHoles = (text: string): string => text.replace(/<[^>]+>/g, HOLE);
/** Calls a builder with placeholders (`<node>`) where it takes ids and numbers: only the text is looked at. */
const build = (fn: (...args: never[]) => string, ...args: string[]): string => fn(...(args as never[]));

/**
 * Each set of operations in proto/src: the table rows of PROTOCOL.md that document one
 * operation (each row starts with these cells). An operation set missing here fails
 * the test that accounts for every `as const` object.
 */
const OPERATION_SETS: Record<string, { ops: Record<string, string>; rows: (op: string) => string[] }> = {
  CfgOp: { ops: CfgOp, rows: (op) => [`| \`${build(subjects.cfg, op)}\` | \`${op}-request\``] },
  IoOp: { ops: IoOp, rows: (op) => [`| \`${op}\` | \`io-${op}-request\` |`] },
  // A snapshot request travels unchanged from the director to the owner's controller: one rule, vdc-snapshot-request.
  DirectorOp: { ops: DirectorOp, rows: (op) => [`| \`${subjects.io('<node>', op)}\` | \`${op === DirectorOp.snapshot ? 'vdc' : 'io'}-${op}-request\``] },
  VdcOp: { ops: VdcOp, rows: (op) => [`| \`${subjects.controller('<node>', op)}\` | \`vdc-${op}-request\``] },
  EstoreOp: { ops: EstoreOp, rows: (op) => [`| \`${subjects.estore('<node>', op)}\` | \`eg-${op}-request\``] },
  MdOp: { ops: MdOp, rows: (op) => [`| \`${build(subjects.md, '<partition>', op)}\` | \`md-${op}-request\``] },
  HaAgentOp: { ops: HaAgentOp, rows: (op) => [`| \`${build(subjects.haAgent, '<host>', op)}\` | \`ha-${op}-request\``] },
  HaMasterOp: { ops: HaMasterOp, rows: (op) => [`| \`${build(subjects.haMaster, op)}\` | \`ha-${op}-request\``] },
  CuratorOp: { ops: CuratorOp, rows: (op) => [`| \`${build(subjects.curator, op)}\` | \`curator-${op}-request\``] },
};

/** Closed value sets, each checked against its CDDL rule by ENUMS above. */
const VALUE_SETS: Record<string, string> = {
  Kind: 'kind',
  Tier: 'tier',
  Priority: 'priority',
  Transform: 'transform',
  Liveness: 'liveness',
  EventType: 'event-type',
  MdMap: 'md-map',
  TakeoverStep: 'takeover-step',
  VmDriver: 'vm-driver',
  RestartPriority: 'restart-priority',
  VmPower: 'vm-power',
  HaService: 'ha-service',
  RestartStep: 'restart-step',
  HostState: 'host-state',
  VmState: 'vm-state',
  ScanKind: 'scan-kind',
};
/** The names checked against this document below, and tables of schemas keyed by a set above. */
const NAME_TABLES = ['subjects', 'buckets', 'streams', 'keys', 'EventCategory'];
const SCHEMA_TABLES: Record<string, { table: object; keyedBy: readonly string[] }> = {
  mdValue: { table: mdValue, keyedBy: Object.values(MdMap) },
  ioSchemas: { table: ioSchemas, keyedBy: Object.values(IoOp) },
  specs: { table: specs, keyedBy: kinds },
};

/** What each subject builder looks like in the document. */
const SUBJECT_FORMS: Record<keyof typeof subjects, string> = {
  cfg: build(subjects.cfg, '<op>'),
  cfgAll: subjects.cfgAll,
  events: build(subjects.events, '<category>'),
  eventsAll: subjects.eventsAll,
  io: subjects.io('<node>', '<op>'),
  admission: subjects.admission('<node>', '<op>'),
  controller: subjects.controller('<node>', '<op>'),
  estore: subjects.estore('<node>', '<op>'),
  md: build(subjects.md, '<partition>', '<op>'),
  oplog: build(subjects.oplog, '<vdisk>'),
  haHeartbeat: build(subjects.haHeartbeat, '<host>'),
  haHeartbeatAll: subjects.haHeartbeatAll,
  haAgent: build(subjects.haAgent, '<host>', '<op>'),
  haMaster: build(subjects.haMaster, '<op>'),
  curator: build(subjects.curator, '<op>'),
  curatorMap: subjects.curatorMap('<node>'),
  health: subjects.health('<actor>', '<instance>'),
};

/** The subjects of each stream, as the stream table of section 1 gives them. */
const STREAM_SUBJECTS: Record<keyof typeof streams, string> = {
  events: subjects.eventsAll,
  oplog: build(subjects.oplog, '>'),
};

describe('PROTOCOL.md', () => {
  const text = fs.readFileSync(path.join(protoDir, 'PROTOCOL.md'), 'utf8');
  const lines = text.split('\n');
  /** The text of section `n` (`## n. ...`), up to the next section. */
  const section = (n: number): string => {
    const start = text.search(new RegExp(`^## ${n}\\. `, 'm'));
    if (start < 0) throw new Error(`PROTOCOL.md has no section ${n}`);
    const rest = text.slice(start + 1);
    const next = rest.search(/^## \d+\. /m);
    return next < 0 ? rest : rest.slice(0, next);
  };
  const rowsOf = (t: string): string[] => t.split('\n').filter((l) => l.startsWith('| '));
  const spans = (t: string): string[] => [...t.matchAll(/`([^`]+)`/g)].map((m) => m[1]!);

  it('tables every error code with its retryable flag as libs/errors has it', () => {
    const rows = [...text.matchAll(/^\| `([A-Z_]+)` \|.*\| (yes|no) \|$/gm)].map((m) => [m[1], m[2]]);
    expect(rows).toEqual(errorCodes.map((code) => [code, isRetryableCode(code) ? 'yes' : 'no']));
  });

  it('accounts for every `as const` object in proto/src: an operation set, a value set, a table of names or of schemas', () => {
    const known = new Set([...Object.keys(OPERATION_SETS), ...Object.keys(VALUE_SETS), ...NAME_TABLES, ...Object.keys(SCHEMA_TABLES)]);
    const found = constObjects();
    const unknown = found
      .filter((c) => !known.has(c.name))
      .map((c) =>
        /Op$/.test(c.name)
          ? `${c.file}: ${c.name} is a set of operations this test does not know: table its subjects in PROTOCOL.md and add it to OPERATION_SETS`
          : `${c.file}: ${c.name} is an \`as const\` object this test does not know: document it in PROTOCOL.md and add it to the right list here`,
      );
    expect(unknown).toEqual([]);
    // And nothing listed here is gone from proto/src.
    expect([...known].filter((name) => !found.some((c) => c.name === name))).toEqual([]);
    // Each value set is paired with its CDDL rule, and each table of schemas has a schema for each member of its set.
    expect(Object.values(VALUE_SETS).filter((rule) => !ENUMS.some((e) => e.rule === rule))).toEqual([]);
    for (const [name, { table, keyedBy }] of Object.entries(SCHEMA_TABLES)) expect({ name, keys: Object.keys(table).sort() }).toEqual({ name, keys: [...keyedBy].sort() });
  });

  it('tables every operation of every operation set, with its request rule', () => {
    const missing: string[] = [];
    for (const [name, { ops, rows }] of Object.entries(OPERATION_SETS)) {
      for (const op of Object.values(ops)) {
        for (const row of rows(op)) if (!lines.some((l) => l.startsWith(row))) missing.push(`${name}.${op}: no row starting ${row}`);
      }
    }
    expect(missing).toEqual([]);
  });

  it('tables the three hops of vDisk I/O', () => {
    for (const hop of [subjects.io, subjects.admission, subjects.controller]) expect(text).toContain(`| \`${hop('<node>', '<op>')}\` |`);
  });

  it('names every subject builder of proto/src/names.ts in the form it builds', () => {
    expect(Object.keys(subjects).filter((k) => !(k in SUBJECT_FORMS)).map((k) => `subjects.${k} has no entry in SUBJECT_FORMS: document its subject in PROTOCOL.md and add it`)).toEqual([]);
    const documented = new Set(lines.flatMap(spans));
    expect(Object.entries(SUBJECT_FORMS).filter(([, form]) => !documented.has(form)).map(([k, form]) => `subjects.${k}: \`${form}\` is not in PROTOCOL.md`)).toEqual([]);
  });

  it('tables every key builder (keys.*) in section 8 with the key it builds, and names no builder that is gone', () => {
    const rows = rowsOf(section(8));
    const problems: string[] = [];
    for (const [name, key] of Object.entries(keys)) {
      const pattern = typeof key === 'string' ? key : (key as (...a: string[]) => string)(...Array<string>(key.length).fill(HOLE));
      const row = rows.find((r) => r.includes(`\`keys.${name}\``));
      if (row === undefined) problems.push(`keys.${name} (${pattern.replaceAll(HOLE, '<…>')}) has no row in the bucket table of section 8`);
      else if (!spans(row).some((sp) => withHoles(sp) === pattern)) problems.push(`keys.${name}: its row does not show the key it builds, ${pattern.replaceAll(HOLE, '<…>')}`);
    }
    for (const m of section(8).matchAll(/`keys\.(\w+)`/g)) if (!(m[1]! in keys)) problems.push(`section 8 names keys.${m[1]}, which proto/src/names.ts does not have`);
    expect(problems).toEqual([]);
  });

  it('tables every bucket in section 8, and no other', () => {
    const tabled = new Set(rowsOf(section(8)).map((r) => /^\| `([a-z-]+)` \|/.exec(r)?.[1]).filter((b) => b !== undefined));
    expect([...tabled].sort()).toEqual(Object.values(buckets).sort());
  });

  it('tables every stream with its subjects in section 1, and no other', () => {
    expect(Object.keys(streams).filter((k) => !(k in STREAM_SUBJECTS)).map((k) => `streams.${k} has no entry in STREAM_SUBJECTS: table it in section 1 and add it`)).toEqual([]);
    const rows = rowsOf(section(1));
    for (const [k, subject] of Object.entries(STREAM_SUBJECTS)) {
      expect({ stream: k, row: rows.some((r) => r.startsWith(`| \`${streams[k as keyof typeof streams]}\` | \`${subject}\``)) }).toEqual({ stream: k, row: true });
    }
    expect(rows.filter((r) => /^\| `[A-Z]+` \|/.test(r)).length).toBe(Object.keys(streams).length);
  });

  it('tables every event category and event type in section 9', () => {
    const rows = rowsOf(section(9));
    const missing = [
      ...Object.values(EventCategory)
        .filter((c) => !rows.some((r) => r.startsWith(`| \`${subjects.events(c)}\` |`)))
        .map((c) => `category ${c}: no row for ${subjects.events(c)}`),
      ...Object.values(EventType)
        .filter((t) => !rows.some((r) => spans(r).includes(t)))
        .map((t) => `event type ${t} is in no row`),
    ];
    expect(missing).toEqual([]);
  });

  it('names only CDDL rules where it names a message', () => {
    const suffixes = 'request|reply|entry|op|piece|ownership|usage|row|record|marker|event|counter|spec|fence|step|map|value|heartbeat|protection|status';
    const named = [...text.matchAll(new RegExp(`\`([a-z]+(?:-[a-z0-9]+)*-(?:${suffixes}))\``, 'g'))].map((m) => m[1]!);
    expect(named.length).toBeGreaterThan(40);
    expect([...new Set(named.filter((r) => !schema.rules.has(r)))]).toEqual([]);
  });
});
