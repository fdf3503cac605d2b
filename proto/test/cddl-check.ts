// A validator for the subset of CDDL (RFC 8610) that proto/*.cddl use, for tests.
// The `cddl` npm package parses the files (it has no validator for data); this
// module turns its AST into a small typed form, refusing anything outside the
// subset, and checks a decoded CBOR value against a named rule, reporting the path
// of the first mismatch.
//
// Values are what @strata/codec's decoder (cbor-x, mapsAsObjects) returns: maps are
// plain objects with text keys, integers at or above 2^32 are bigints, byte strings
// are Uint8Arrays. So this check cannot see how a value was encoded: a float with a
// whole value looks like an integer, and an integer map key like a text key. Those
// rules are checked on the bytes by wire-check.ts.
//
// The subset, and how the package's AST is read:
// - rules: `name = type` (a type), `name = { ... }` (a map), `name = ( ... )` (a
//   group to include in maps; the AST cannot tell braces from parentheses, so a
//   group rule is a map where a type is expected and an inclusion where a member is);
// - types: uint, int, nint, float, tstr/text, bstr/bytes, bool, true, false, null/nil,
//   any; text, integer and boolean literals; ranges a..b and a...b of integers;
//   choices `/`; maps; arrays of `[occ T]` items; references; controls .size, .le,
//   .lt, .ge, .gt, .eq, .ne, .regexp (anchored at both ends) and .default;
// - map members: `? name: T` (a text key), `occ T => V` (a type as the key), group
//   references, and group choices `//` whose alternatives are single members or
//   parenthesised groups. Maps are closed: a key that no member accepts is an error;
// - not supported (refused at load): tags, sockets ($name), `.and`, `.bits`,
//   `.within`, choice additions (/=), float literals, integer literals beyond 2^53.
//   Generics are not supported either.
// Traps of the package, which our files avoid because they cannot be detected here:
// a multi-member alternative of `//` must be parenthesised (`a: x, b: y // c: z`
// parses as `a: x, (b: y // c: z)`); a quoted key before `=>` reads like a type name
// (`"tstr" => x` is taken as `tstr => x`); hexadecimal and binary numbers (0x10)
// come out as text literals; a text literal inside an array (`["ssd"]`) comes out
// as a reference to a rule named ssd.
import { execFileSync } from 'node:child_process';
import path from 'node:path';

// ---- The typed form ------------------------------------------------------------------

export type Prim = 'any' | 'uint' | 'int' | 'nint' | 'float' | 'tstr' | 'bstr' | 'bool' | 'null';
export type CtlOp = 'size' | 'le' | 'lt' | 'ge' | 'gt' | 'eq' | 'ne' | 'regexp' | 'default';

export type Type =
  | { t: 'prim'; name: Prim }
  | { t: 'lit'; value: string | number | boolean }
  | { t: 'range'; min: number; max: number; inclusive: boolean }
  | { t: 'ref'; name: string }
  | { t: 'choice'; alts: Type[] }
  | { t: 'map'; group: Group }
  | { t: 'array'; group: Group }
  | { t: 'ctl'; base: Type; op: CtlOp; arg: Type };

export interface Occurrence {
  min: number;
  max: number;
}

export type Key = { k: 'text'; name: string } | { k: 'type'; type: Type };

export type Entry =
  /** A map member: `? name: T` or `* tstr => T`. */
  | { e: 'member'; occ: Occurrence; key: Key; value: Type }
  /** An array item: `* T`. */
  | { e: 'item'; occ: Occurrence; value: Type }
  /** A named group included in a map. */
  | { e: 'include'; occ: Occurrence; name: string }
  /** A group choice `//`: exactly one alternative applies. */
  | { e: 'choice'; alts: Group[] };

export type Group = Entry[];

export type RuleDef = { r: 'type'; type: Type } | { r: 'group'; group: Group };

export interface Rule {
  name: string;
  file: string;
  def: RuleDef;
}

/** A member of a map after group inclusions and choices are expanded. */
export interface FlatMember {
  occ: Occurrence;
  key: Key;
  value: Type;
}

export interface Mismatch {
  /** `$.spec.sizeBytes`, `$.objects[0].kind`. */
  path: string;
  message: string;
}

// ---- Parsing: the `cddl` package, in a child process -----------------------------------

// `cddl` is an ES module, and jest runs our tests as CommonJS with no ESM support on
// Node 20 (it refuses require() of ESM, even through createRequire). So the parser
// runs in a child node process that prints each file's AST as JSON.
const PARSE_SCRIPT = `
import { parse } from 'cddl';
const out = process.argv.slice(1).map((file) => {
  try { return { file, ast: parse(file) }; }
  catch (err) { return { file, error: String((err && err.message) || err) }; }
});
process.stdout.write(JSON.stringify(out, (key, value) => (value === Infinity ? 'Infinity' : value)));
`;

export interface ParsedFile {
  file: string;
  ast?: unknown[];
  error?: string;
}

/** Parses CDDL files with the `cddl` package; each result has its AST or its parse error. */
export function parseCddlFiles(files: readonly string[]): ParsedFile[] {
  const repoRoot = path.resolve(__dirname, '../..');
  const stdout = execFileSync(process.execPath, ['--input-type=module', '-e', PARSE_SCRIPT, ...files], {
    cwd: repoRoot,
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
    timeout: 30_000,
  });
  return JSON.parse(stdout) as ParsedFile[];
}

// ---- From the package's AST to the typed form -------------------------------------------

type Json = Record<string, unknown>;

const PRIMS: Record<string, Prim> = {
  any: 'any',
  uint: 'uint',
  int: 'int',
  nint: 'nint',
  float: 'float',
  float16: 'float',
  float32: 'float',
  float64: 'float',
  tstr: 'tstr',
  text: 'tstr',
  bstr: 'bstr',
  bytes: 'bstr',
  bool: 'bool',
  null: 'null',
  nil: 'null',
};

const CTL_OPS: readonly string[] = ['size', 'le', 'lt', 'ge', 'gt', 'eq', 'ne', 'regexp', 'default'];

function isObject(x: unknown): x is Json {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

class Unsupported extends Error {
  constructor(what: string, node: unknown) {
    super(`${what}: ${JSON.stringify(node)?.slice(0, 300)}`);
  }
}

function occurrenceOf(node: Json): Occurrence {
  const occ = node.Occurrence as { n: number; m: number | 'Infinity' } | undefined;
  if (occ === undefined) return { min: 1, max: 1 };
  return { min: occ.n, max: occ.m === 'Infinity' ? Infinity : occ.m };
}

function numberBound(node: unknown): number {
  if (isObject(node) && node.Type === 'literal' && typeof node.Value === 'number' && Number.isInteger(node.Value) && node.IsFloat !== true) return node.Value;
  throw new Unsupported('range bounds must be integer literals', node);
}

/** Converts a type position: a choice (array), a predefined type name (string) or a node. */
function convertTypes(node: unknown): Type {
  if (Array.isArray(node)) {
    if (node.length === 0) throw new Unsupported('empty type', node);
    const alts = node.map(convertType);
    return alts.length === 1 ? alts[0]! : { t: 'choice', alts };
  }
  return convertType(node);
}

function withOperator(base: Type, operator: unknown): Type {
  if (!isObject(operator) || typeof operator.Type !== 'string' || !CTL_OPS.includes(operator.Type)) {
    throw new Unsupported('control operator', operator);
  }
  return { t: 'ctl', base, op: operator.Type as CtlOp, arg: convertType(operator.Value) };
}

function convertType(node: unknown): Type {
  if (typeof node === 'string') {
    const prim = PRIMS[node];
    if (prim === undefined) throw new Unsupported('predefined type', node);
    return { t: 'prim', name: prim };
  }
  if (!isObject(node)) throw new Unsupported('type', node);
  if ('Value' in node) {
    // A property reference: literal, named reference, range or tag.
    if (node.Unwrapped === true) throw new Unsupported('unwrap operator ~', node);
    let type: Type;
    switch (node.Type) {
      case 'literal': {
        const v = node.Value;
        if (node.IsFloat === true) throw new Unsupported('float literal', node);
        // The package leaves hexadecimal and binary numbers (0x10, 0b1) as strings,
        // indistinguishable from text literals; our files use neither.
        if (typeof v === 'number' && !Number.isSafeInteger(v)) throw new Unsupported('integer literal beyond 2^53 (the package parses it with parseInt)', node);
        if (typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean') throw new Unsupported('literal', node);
        type = { t: 'lit', value: v };
        break;
      }
      case 'group':
        if (typeof node.Value !== 'string') throw new Unsupported('reference', node);
        if (node.Value.startsWith('$')) throw new Unsupported('socket', node);
        type = { t: 'ref', name: node.Value };
        break;
      case 'range': {
        const r = node.Value as Json;
        type = { t: 'range', min: numberBound(r.Min), max: numberBound(r.Max), inclusive: r.Inclusive === true };
        break;
      }
      default:
        throw new Unsupported('type', node);
    }
    return node.Operator === undefined ? type : withOperator(type, node.Operator);
  }
  if (node.Type === 'group' && Array.isArray(node.Properties)) return { t: 'map', group: convertGroup(node.Properties, 'map') };
  if (node.Type === 'array' && Array.isArray(node.Values)) return { t: 'array', group: convertGroup(node.Values, 'array') };
  if ('Type' in node && (typeof node.Type === 'string' || isObject(node.Type))) {
    // A type with an operator (`uint .size 8`), or a parenthesised type (`(1..5)`).
    const base = convertType(node.Type);
    return node.Operator === undefined ? base : withOperator(base, node.Operator);
  }
  throw new Unsupported('type', node);
}

/** Converts the members of a map or group (`Properties`) or the items of an array (`Values`). */
function convertGroup(props: unknown[], context: 'map' | 'array'): Group {
  const group: Group = [];
  for (const prop of props) {
    if (Array.isArray(prop)) {
      // A group choice: each alternative is one member or one parenthesised group.
      if (context !== 'map') throw new Unsupported('group choice in an array', prop);
      group.push({ e: 'choice', alts: prop.map((alt) => convertGroup([alt], context)) });
      continue;
    }
    if (!isObject(prop)) throw new Unsupported('member', prop);
    if (prop.HasCut === undefined || typeof prop.Name !== 'string') throw new Unsupported('member', prop);
    const occ = occurrenceOf(prop);
    const name = prop.Name;
    if (name !== '') {
      if (context === 'array') throw new Unsupported('named array item', prop);
      // `name: T` sets HasCut (the colon implies a cut); `T => V` does not, and then
      // Name holds the key's type.
      const key: Key = prop.HasCut === true ? { k: 'text', name } : { k: 'type', type: convertType(PRIMS[name] === undefined ? { Type: 'group', Value: name } : name) };
      let value = convertTypes(prop.Type);
      if (prop.Operator !== undefined) value = withOperator(value, prop.Operator);
      group.push({ e: 'member', occ, key, value });
      continue;
    }
    if (prop.Operator !== undefined) throw new Unsupported('operator on an unnamed member (.and, .within)', prop);
    const t = prop.Type;
    if (isObject(t) && t.Type === 'group' && Array.isArray(t.Properties) && context === 'map') {
      // A parenthesised group inside a group (an alternative of a choice).
      const inner = convertGroup(t.Properties, 'map');
      if (occ.min === 1 && occ.max === 1) group.push(...inner);
      else if (occ.min === 0 && occ.max === 1) group.push({ e: 'choice', alts: [inner, []] });
      else throw new Unsupported('repeated group', prop);
      continue;
    }
    if (context === 'map') {
      const ref = Array.isArray(t) && t.length === 1 ? t[0] : undefined;
      if (isObject(ref) && ref.Type === 'group' && typeof ref.Value === 'string' && ref.Unwrapped !== true) {
        if (occ.max !== 1) throw new Unsupported('repeated group inclusion', prop);
        group.push({ e: 'include', occ, name: ref.Value });
        continue;
      }
      throw new Unsupported('map member without a key', prop);
    }
    group.push({ e: 'item', occ, value: convertTypes(t) });
  }
  return group;
}

function convertRule(node: unknown, file: string): Rule {
  if (!isObject(node) || typeof node.Name !== 'string') throw new Unsupported('rule', node);
  if (node.IsChoiceAddition === true) throw new Unsupported('choice addition (/= or //=)', node);
  const name = node.Name;
  switch (node.Type) {
    case 'variable': {
      let type = convertTypes(node.PropertyType);
      if (node.Operator !== undefined) type = withOperator(type, node.Operator);
      return { name, file, def: { r: 'type', type } };
    }
    case 'group':
      return { name, file, def: { r: 'group', group: convertGroup(node.Properties as unknown[], 'map') } };
    case 'array':
      return { name, file, def: { r: 'type', type: { t: 'array', group: convertGroup(node.Values as unknown[], 'array') } } };
    default:
      throw new Unsupported('rule', node);
  }
}

// ---- The schema: rules of several files, linked and checked ---------------------------

/** Upper bound on the alternatives one map expands to (choices multiply). */
const MAX_ALTERNATIVES = 4096;
/** Upper bound on nesting while checking a value. */
const MAX_DEPTH = 64;

function isInteger(v: unknown): v is number | bigint {
  return typeof v === 'bigint' || (typeof v === 'number' && Number.isInteger(v));
}

function toBig(v: number | bigint): bigint {
  return typeof v === 'bigint' ? v : BigInt(v);
}

function isPlainMap(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v) || v instanceof Uint8Array) return false;
  const proto: unknown = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (v instanceof Uint8Array) return 'a byte string';
  if (typeof v === 'bigint') return `the integer ${v}`;
  if (typeof v === 'number') return `the number ${v}`;
  if (typeof v === 'string') return `the text ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...` : v)}`;
  if (typeof v === 'boolean') return String(v);
  if (isPlainMap(v)) return 'a map';
  return typeof v;
}

function formatPath(segments: readonly (string | number)[]): string {
  return `$${segments.map((s) => (typeof s === 'number' ? `[${s}]` : /^[A-Za-z_][A-Za-z0-9_]*$/.test(s) ? `.${s}` : `[${JSON.stringify(s)}]`)).join('')}`;
}

interface Fail {
  at: (string | number)[];
  message: string;
  /** For merging the failures of a choice: what was expected and what was found. */
  expected?: string;
  found?: string;
}

function expected(at: (string | number)[], what: string, value: unknown): Fail {
  const found = typeName(value);
  return { at, message: `expected ${what}, found ${found}`, expected: what, found };
}

export class CddlSchema {
  private readonly expanded = new WeakMap<Group, FlatMember[][]>();
  private readonly regexps = new Map<string, RegExp>();

  private constructor(readonly rules: ReadonlyMap<string, Rule>) {}

  /** Parses and links CDDL files as one namespace (as if concatenated). Throws on any error. */
  static load(files: readonly string[]): CddlSchema {
    const rules = new Map<string, Rule>();
    for (const parsed of parseCddlFiles(files)) {
      if (parsed.error !== undefined || parsed.ast === undefined) throw new Error(`${parsed.file}: ${parsed.error ?? 'no AST'}`);
      for (const node of parsed.ast) {
        const rule = convertRule(node, parsed.file);
        const previous = rules.get(rule.name);
        if (previous !== undefined) throw new Error(`rule ${rule.name} is defined twice (${previous.file} and ${rule.file})`);
        rules.set(rule.name, rule);
      }
    }
    const schema = new CddlSchema(rules);
    schema.link();
    return schema;
  }

  rule(name: string): Rule {
    const rule = this.rules.get(name);
    if (rule === undefined) throw new Error(`no CDDL rule named ${name}`);
    return rule;
  }

  /** Checks `value` against rule `name`; undefined when it conforms. */
  check(name: string, value: unknown): Mismatch | undefined {
    const rule = this.rule(name);
    const fail = rule.def.r === 'type' ? this.checkType(rule.def.type, value, [], 0) : this.checkMap(rule.def.group, value, [], 0);
    return fail === undefined ? undefined : { path: formatPath(fail.at), message: fail.message };
  }

  /** The type a reference stands for: a type rule's type, or a group rule as a map. */
  resolve(name: string): Type {
    const rule = this.rule(name);
    return rule.def.r === 'type' ? rule.def.type : { t: 'map', group: rule.def.group };
  }

  /** Every way a map's group can be spelled out, as flat member lists. */
  expand(group: Group): FlatMember[][] {
    const cached = this.expanded.get(group);
    if (cached !== undefined) return cached;
    let alts: FlatMember[][] = [[]];
    const product = (options: FlatMember[][]): void => {
      const next: FlatMember[][] = [];
      for (const a of alts) for (const o of options) next.push([...a, ...o]);
      if (next.length > MAX_ALTERNATIVES) throw new Error(`a map expands to more than ${MAX_ALTERNATIVES} alternatives`);
      alts = next;
    };
    for (const entry of group) {
      switch (entry.e) {
        case 'member':
          alts = alts.map((a) => [...a, { occ: entry.occ, key: entry.key, value: entry.value }]);
          break;
        case 'include': {
          const rule = this.rule(entry.name);
          if (rule.def.r !== 'group') throw new Error(`${entry.name} is included in a map but is not a group`);
          const inner = this.expand(rule.def.group);
          product(entry.occ.min === 0 ? [...inner, []] : inner);
          break;
        }
        case 'choice':
          product(entry.alts.flatMap((alt) => this.expand(alt)));
          break;
        case 'item':
          throw new Error('an array item inside a map');
      }
    }
    for (const alt of alts) {
      const names = alt.flatMap((m) => (m.key.k === 'text' ? [m.key.name] : []));
      const twice = names.find((n, i) => names.indexOf(n) !== i);
      if (twice !== undefined) throw new Error(`key "${twice}" appears twice in one alternative of a map`);
    }
    this.expanded.set(group, alts);
    return alts;
  }

  // ---- Linking: every reference resolves, every control has a sensible argument ----

  private link(): void {
    for (const rule of this.rules.values()) {
      try {
        if (rule.def.r === 'type') this.linkType(rule.def.type, [rule.name]);
        else this.linkGroup(rule.def.group, [rule.name]);
      } catch (err) {
        throw new Error(`${rule.file}: rule ${rule.name}: ${(err as Error).message}`);
      }
    }
  }

  /** `chain` holds the references followed without passing through a map or array (cycle guard). */
  private linkType(type: Type, chain: string[]): void {
    switch (type.t) {
      case 'ref': {
        if (chain.includes(type.name)) throw new Error(`reference cycle ${[...chain, type.name].join(' -> ')}`);
        const rule = this.rule(type.name);
        if (rule.def.r === 'type') this.linkType(rule.def.type, [...chain, type.name]);
        break;
      }
      case 'choice':
        for (const alt of type.alts) this.linkType(alt, chain);
        break;
      case 'map':
      case 'array':
        this.linkGroup(type.group, []);
        break;
      case 'ctl':
        this.linkType(type.base, chain);
        this.linkControl(type);
        break;
      case 'range':
        if (type.min > type.max) throw new Error(`empty range ${type.min}..${type.max}`);
        break;
      default:
        break;
    }
  }

  private linkGroup(group: Group, chain: string[]): void {
    for (const entry of group) {
      if (entry.e === 'member') {
        if (entry.key.k === 'type') this.linkType(entry.key.type, chain);
        this.linkType(entry.value, chain);
      } else if (entry.e === 'item') {
        this.linkType(entry.value, chain);
      } else if (entry.e === 'include') {
        if (this.rule(entry.name).def.r !== 'group') throw new Error(`${entry.name} is included in a map but is not a group`);
      } else {
        for (const alt of entry.alts) this.linkGroup(alt, chain);
      }
    }
    this.expandIfMap(group);
  }

  private expandIfMap(group: Group): void {
    if (group.some((e) => e.e === 'member' || e.e === 'include' || e.e === 'choice')) this.expand(group);
  }

  private linkControl(type: Extract<Type, { t: 'ctl' }>): void {
    const arg = type.arg;
    switch (type.op) {
      case 'size':
        if (!(arg.t === 'lit' && typeof arg.value === 'number') && arg.t !== 'range') throw new Error('.size needs an integer or a range');
        break;
      case 'le':
      case 'lt':
      case 'ge':
      case 'gt':
        if (!(arg.t === 'lit' && typeof arg.value === 'number')) throw new Error(`.${type.op} needs an integer`);
        break;
      case 'eq':
      case 'ne':
        if (arg.t !== 'lit') throw new Error(`.${type.op} needs a literal`);
        break;
      case 'regexp':
        if (!(arg.t === 'lit' && typeof arg.value === 'string')) throw new Error('.regexp needs a text literal');
        this.regexp(arg.value);
        break;
      case 'default': {
        if (arg.t !== 'lit') throw new Error('.default needs a literal');
        const bad = this.checkType(type.base, arg.value, [], 0);
        if (bad !== undefined) throw new Error(`.default ${JSON.stringify(arg.value)} does not fit its own type: ${bad.message}`);
        break;
      }
    }
  }

  private regexp(source: string): RegExp {
    let re = this.regexps.get(source);
    if (re === undefined) {
      // CDDL's .regexp is an XSD regular expression, matched against the whole text.
      re = new RegExp(`^(?:${source})$`, 'u');
      this.regexps.set(source, re);
    }
    return re;
  }

  // ---- Checking values ------------------------------------------------------------

  private checkType(type: Type, value: unknown, at: (string | number)[], depth: number): Fail | undefined {
    if (depth > MAX_DEPTH) return { at, message: `nesting deeper than ${MAX_DEPTH}` };
    switch (type.t) {
      case 'prim':
        return this.checkPrim(type.name, value, at);
      case 'lit': {
        const ok =
          typeof type.value === 'number' ? isInteger(value) && toBig(value) === BigInt(type.value) : value === type.value;
        return ok ? undefined : expected(at, JSON.stringify(type.value), value);
      }
      case 'range': {
        const describe = `${type.min}${type.inclusive ? '..' : '...'}${type.max}`;
        if (!isInteger(value)) return expected(at, `an integer in ${describe}`, value);
        const v = toBig(value);
        const ok = v >= BigInt(type.min) && (type.inclusive ? v <= BigInt(type.max) : v < BigInt(type.max));
        return ok ? undefined : expected(at, `an integer in ${describe}`, value);
      }
      case 'ref': {
        const rule = this.rule(type.name);
        return rule.def.r === 'type' ? this.checkType(rule.def.type, value, at, depth + 1) : this.checkMap(rule.def.group, value, at, depth + 1);
      }
      case 'choice': {
        const fails: Fail[] = [];
        for (const alt of type.alts) {
          const fail = this.checkType(alt, value, at, depth + 1);
          if (fail === undefined) return undefined;
          fails.push(fail);
        }
        return this.bestOf(fails);
      }
      case 'map':
        return this.checkMap(type.group, value, at, depth + 1);
      case 'array':
        return this.checkArray(type.group, value, at, depth + 1);
      case 'ctl':
        return this.checkType(type.base, value, at, depth + 1) ?? this.checkControl(type, value, at);
    }
  }

  private checkPrim(name: Prim, value: unknown, at: (string | number)[]): Fail | undefined {
    let ok: boolean;
    switch (name) {
      case 'any':
        ok = true;
        break;
      case 'uint':
        ok = isInteger(value) && toBig(value) >= 0n;
        break;
      case 'nint':
        ok = isInteger(value) && toBig(value) < 0n;
        break;
      case 'int':
        ok = isInteger(value);
        break;
      case 'float':
        ok = typeof value === 'number';
        break;
      case 'tstr':
        ok = typeof value === 'string';
        break;
      case 'bstr':
        ok = value instanceof Uint8Array;
        break;
      case 'bool':
        ok = typeof value === 'boolean';
        break;
      case 'null':
        ok = value === null;
        break;
    }
    return ok ? undefined : expected(at, name, value);
  }

  private checkControl(type: Extract<Type, { t: 'ctl' }>, value: unknown, at: (string | number)[]): Fail | undefined {
    const arg = type.arg;
    switch (type.op) {
      case 'default':
        return undefined;
      case 'regexp': {
        const source = (arg as { value: string }).value;
        if (typeof value !== 'string' || !this.regexp(source).test(value)) return { at, message: `${typeName(value)} does not match /${source}/` };
        return undefined;
      }
      case 'size': {
        let size: bigint;
        if (typeof value === 'string') size = BigInt(Buffer.byteLength(value, 'utf8'));
        else if (value instanceof Uint8Array) size = BigInt(value.length);
        else if (isInteger(value) && toBig(value) >= 0n) {
          // An unsigned integer "of size n" fits in n bytes.
          if (arg.t !== 'lit') return { at, message: '.size on an integer needs a literal size' };
          const ok = toBig(value) < 256n ** BigInt(arg.value as number);
          return ok ? undefined : { at, message: `${toBig(value)} does not fit in ${arg.value as number} bytes` };
        } else return { at, message: `.size does not apply to ${typeName(value)}` };
        const fail = this.checkType(arg, size, at, 0);
        return fail === undefined ? undefined : { at, message: `size ${size} is not ${describeType(arg)}` };
      }
      default: {
        if (arg.t !== 'lit') return { at, message: `.${type.op} needs a literal` };
        if (typeof arg.value === 'number') {
          if (!isInteger(value)) return { at, message: `.${type.op} needs an integer, found ${typeName(value)}` };
          const v = toBig(value);
          const a = BigInt(arg.value);
          const ok = { le: v <= a, lt: v < a, ge: v >= a, gt: v > a, eq: v === a, ne: v !== a }[type.op];
          return ok ? undefined : { at, message: `${v} is not .${type.op} ${arg.value}` };
        }
        const equal = value === arg.value;
        const ok = type.op === 'eq' ? equal : type.op === 'ne' ? !equal : false;
        return ok ? undefined : { at, message: `${typeName(value)} is not .${type.op} ${JSON.stringify(arg.value)}` };
      }
    }
  }

  private checkMap(group: Group, value: unknown, at: (string | number)[], depth: number): Fail | undefined {
    if (!isPlainMap(value)) return expected(at, 'a map', value);
    // Of the alternatives, the one that matched the most members before failing is
    // the one the sender meant (the kind-and-spec alternative whose kind matched).
    let best: Fail[] = [];
    let bestMatched = -1;
    for (const alt of this.expand(group)) {
      const { fail, matched } = this.checkMembers(alt, value, at, depth);
      if (fail === undefined) return undefined;
      if (matched > bestMatched) {
        best = [fail];
        bestMatched = matched;
      } else if (matched === bestMatched) {
        best.push(fail);
      }
    }
    return this.bestOf(best);
  }

  /** Checks a map against one alternative; `matched` counts the members that fit before a failure. */
  private checkMembers(members: FlatMember[], map: Record<string, unknown>, at: (string | number)[], depth: number): { fail?: Fail; matched: number } {
    const used = new Set<string>();
    let matched = 0;
    for (const m of members) {
      if (m.key.k !== 'text') continue;
      const name = m.key.name;
      if (Object.prototype.hasOwnProperty.call(map, name)) {
        used.add(name);
        const fail = this.checkType(m.value, map[name], [...at, name], depth + 1);
        if (fail !== undefined) return { fail, matched };
        matched++;
      } else if (m.occ.min >= 1) {
        return { fail: { at, message: `missing key "${name}"` }, matched };
      }
    }
    const typed = members.filter((m) => m.key.k === 'type');
    const counts = typed.map(() => 0);
    for (const key of Object.keys(map)) {
      if (used.has(key)) continue;
      const index = typed.findIndex((m, i) => counts[i]! < m.occ.max && this.checkType((m.key as { type: Type }).type, key, [], depth + 1) === undefined);
      if (index < 0) return { fail: { at: [...at, key], message: `unknown key "${key}" (maps are closed)` }, matched };
      counts[index]! += 1;
      const fail = this.checkType(typed[index]!.value, map[key], [...at, key], depth + 1);
      if (fail !== undefined) return { fail, matched };
      matched++;
    }
    const short = typed.findIndex((m, i) => counts[i]! < m.occ.min);
    if (short >= 0) return { fail: { at, message: `expected at least ${typed[short]!.occ.min} keys of type ${describeType((typed[short]!.key as { type: Type }).type)}` }, matched };
    return { matched };
  }

  private checkArray(group: Group, value: unknown, at: (string | number)[], depth: number): Fail | undefined {
    if (!Array.isArray(value)) return expected(at, 'an array', value);
    // Items are matched greedily, which is exact for the `[occ T]` arrays our files use.
    let i = 0;
    let stoppedBy: Fail | undefined;
    for (const entry of group) {
      if (entry.e !== 'item') return { at, message: 'unsupported array group' };
      let count = 0;
      stoppedBy = undefined;
      while (count < entry.occ.max && i < value.length) {
        stoppedBy = this.checkType(entry.value, value[i], [...at, i], depth + 1);
        if (stoppedBy !== undefined) break;
        count++;
        i++;
      }
      if (count < entry.occ.min) return stoppedBy ?? { at, message: `expected at least ${entry.occ.min} items of ${describeType(entry.value)}, found ${count}` };
    }
    if (i < value.length) return stoppedBy ?? { at: [...at, i], message: `too many items: at most ${i} fit here, found ${value.length}` };
    return undefined;
  }

  /**
   * Of the alternatives' failures, the one that got deepest into the value says the
   * most; failures at the same place are merged (`expected "node" / "host"`).
   */
  private bestOf(fails: Fail[]): Fail {
    const deepest = Math.max(...fails.map((f) => f.at.length));
    const top = fails.filter((f) => f.at.length === deepest);
    const where = formatPath(top[0]!.at);
    const here = top.filter((f) => formatPath(f.at) === where);
    if (here.length === 1) return here[0]!;
    const found = here[0]!.found;
    if (here.every((f) => f.expected !== undefined && f.found === found)) {
      const wanted = [...new Set(here.map((f) => f.expected!))].join(' / ');
      return { at: here[0]!.at, message: `expected ${wanted}, found ${found}`, expected: wanted, found };
    }
    return { at: here[0]!.at, message: [...new Set(here.map((f) => f.message))].join('; or ') };
  }
}

/** A short text for a type, for messages: `uint`, `"ssd"`, `1..5`, `node-spec`. */
export function describeType(type: Type): string {
  switch (type.t) {
    case 'prim':
      return type.name;
    case 'lit':
      return JSON.stringify(type.value);
    case 'range':
      return `${type.min}${type.inclusive ? '..' : '...'}${type.max}`;
    case 'ref':
      return type.name;
    case 'choice':
      return type.alts.map(describeType).join(' / ');
    case 'map':
      return '{...}';
    case 'array':
      return '[...]';
    case 'ctl':
      return `${describeType(type.base)} .${type.op} ${describeType(type.arg)}`;
  }
}
