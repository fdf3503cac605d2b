// Structural comparison of a CDDL rule with a zod schema, for tests: both are
// reduced to the same small description (maps with their keys, which are optional
// and their defaults; arrays with their bounds; text sets; integers; ...) and
// compared. Refinements (a multiple of 512, no tier twice) are opaque to both
// descriptions; the golden vectors cover them.
import type { z } from 'zod';
import { bytes } from '@strata/codec';
import type { CddlSchema, Type } from './cddl-check';

export interface Field {
  optional: boolean;
  /** The value a receiver assumes when the key is absent (CDDL `.default`, zod `.default()`). */
  default?: unknown;
  shape: Shape;
}

export type Shape =
  | { s: 'int' }
  | { s: 'float' }
  | { s: 'text'; pattern?: string }
  | { s: 'bytes' }
  | { s: 'bool' }
  | { s: 'null' }
  | { s: 'any' }
  /** A closed set of text values. */
  | { s: 'enum'; values: string[] }
  | { s: 'array'; item: Shape; min: number; max: number }
  | { s: 'map'; fields: Record<string, Field> }
  | { s: 'record'; key: Shape; value: Shape }
  | { s: 'union'; alts: Shape[] };

const MAX_DEPTH = 32;

type MapShape = Extract<Shape, { s: 'map' }>;

/**
 * Merges the shapes of a choice: text literals into one enum, equal shapes into one.
 * Maps are grouped by a discriminator (a member whose value is one text literal, like
 * `kind: "node"`) and the maps of each group merged into one, so that CDDL's
 * `(id: u64 // name: object-name)` and zod's optional `id` and `name` compare equal.
 */
function merge(shapes: Shape[]): Shape {
  const flat = shapes.flatMap((s) => (s.s === 'union' ? s.alts : [s]));
  if (flat.every((s) => s.s === 'enum')) return { s: 'enum', values: [...new Set(flat.flatMap((s) => (s as { values: string[] }).values))].sort() };
  const alts: Shape[] = [];
  for (const s of flat) if (s.s !== 'map' && !alts.some((u) => JSON.stringify(u) === JSON.stringify(s))) alts.push(s);
  alts.push(...groupMaps(flat.filter((s): s is MapShape => s.s === 'map')));
  return alts.length === 1 ? alts[0]! : { s: 'union', alts };
}

/** The value of a member that holds exactly one text literal (`kind: "node"`). */
function tagOf(map: MapShape, name: string): string | undefined {
  const f = map.fields[name];
  return f !== undefined && !f.optional && f.shape.s === 'enum' && f.shape.values.length === 1 ? f.shape.values[0] : undefined;
}

function groupMaps(maps: MapShape[]): MapShape[] {
  if (maps.length <= 1) return maps;
  // The discriminator is the member that is a single literal in the most maps.
  const names = [...new Set(maps.flatMap((m) => Object.keys(m.fields)))].sort();
  let best: string | undefined;
  let bestCount = 1;
  for (const name of names) {
    const count = maps.filter((m) => tagOf(m, name) !== undefined).length;
    if (count > bestCount) [best, bestCount] = [name, count];
  }
  if (best === undefined) return [mapOfAlternatives(maps.map((m) => m.fields)) as MapShape];
  const d = best;
  const groups = new Map<string, MapShape[]>();
  for (const m of maps) {
    const tag = tagOf(m, d);
    if (tag !== undefined) groups.set(tag, [...(groups.get(tag) ?? []), m]);
  }
  const rest = maps.filter((m) => tagOf(m, d) === undefined);
  return [...[...groups.values()].map((g) => mapOfAlternatives(g.map((m) => m.fields)) as MapShape), ...(rest.length > 0 ? groupMaps(rest) : [])];
}

function mapOfAlternatives(alts: Record<string, Field>[]): Shape {
  const names = [...new Set(alts.flatMap((a) => Object.keys(a)))];
  const fields: Record<string, Field> = {};
  for (const name of names) {
    const present = alts.flatMap((a) => (a[name] === undefined ? [] : [a[name]]));
    const field: Field = { optional: present.length < alts.length || present.some((f) => f.optional), shape: merge(present.map((f) => f.shape)) };
    const withDefault = present.find((f) => 'default' in f);
    if (withDefault !== undefined) field.default = withDefault.default;
    fields[name] = field;
  }
  return { s: 'map', fields };
}

// ---- CDDL ---------------------------------------------------------------------------

export function cddlShape(schema: CddlSchema, ruleName: string): Shape {
  return shapeOfType(schema, schema.resolve(ruleName), 0);
}

function shapeOfType(schema: CddlSchema, type: Type, depth: number): Shape {
  if (depth > MAX_DEPTH) throw new Error('CDDL nesting too deep for a shape');
  switch (type.t) {
    case 'prim':
      switch (type.name) {
        case 'uint':
        case 'int':
        case 'nint':
          return { s: 'int' };
        case 'tstr':
          return { s: 'text' };
        case 'bstr':
          return { s: 'bytes' };
        default:
          return { s: type.name };
      }
    case 'lit':
      return typeof type.value === 'string' ? { s: 'enum', values: [type.value] } : typeof type.value === 'number' ? { s: 'int' } : { s: 'bool' };
    case 'range':
      return { s: 'int' };
    case 'ref':
      return shapeOfType(schema, schema.resolve(type.name), depth + 1);
    case 'choice':
      return merge(type.alts.map((a) => shapeOfType(schema, a, depth + 1)));
    case 'ctl': {
      const base = shapeOfType(schema, type.base, depth + 1);
      if (type.op === 'regexp' && base.s === 'text' && type.arg.t === 'lit') return { s: 'text', pattern: String(type.arg.value) };
      return base;
    }
    case 'array': {
      const [item, ...rest] = type.group;
      if (item === undefined || item.e !== 'item' || rest.length > 0) throw new Error('only [occ T] arrays have a shape');
      return { s: 'array', item: shapeOfType(schema, item.value, depth + 1), min: item.occ.min, max: item.occ.max };
    }
    case 'map': {
      const alts = schema.expand(type.group);
      const typed = alts.flatMap((a) => a.filter((m) => m.key.k === 'type'));
      if (typed.length > 0) {
        if (alts.length !== 1 || alts[0]!.length !== 1) throw new Error('a map mixing text keys and type keys has no shape');
        const m = typed[0]!;
        return { s: 'record', key: shapeOfType(schema, (m.key as { type: Type }).type, depth + 1), value: shapeOfType(schema, m.value, depth + 1) };
      }
      return merge(
        alts.map((alt): Shape => {
          const fields: Record<string, Field> = {};
          for (const m of alt) {
            const field: Field = { optional: m.occ.min === 0, shape: shapeOfType(schema, m.value, depth + 1) };
            const def = defaultOf(m.value);
            if (def !== undefined) field.default = def;
            fields[(m.key as { name: string }).name] = field;
          }
          return { s: 'map', fields };
        }),
      );
    }
  }
}

function defaultOf(type: Type): unknown {
  if (type.t !== 'ctl') return undefined;
  if (type.op === 'default' && type.arg.t === 'lit') return type.arg.value;
  return defaultOf(type.base);
}

// ---- zod (v4 internals: every schema has `_zod.def` with a `type`) ------------------

interface ZodDef {
  type: string;
  [key: string]: unknown;
}

function defOf(schema: unknown): ZodDef {
  return (schema as { _zod: { def: ZodDef } })._zod.def;
}

/** The wire shape of a zod schema: pipes and transforms are read at their input side. */
export function zodShape(schema: z.ZodType): Shape {
  return shapeOfZod(schema, 0);
}

function shapeOfZod(schema: unknown, depth: number): Shape {
  if (depth > MAX_DEPTH) throw new Error('zod nesting too deep for a shape');
  const def = defOf(schema);
  switch (def.type) {
    case 'object': {
      if (defOf(def.catchall ?? { _zod: { def: { type: 'never' } } }).type !== 'never') throw new Error('only strict objects (closed maps) have a shape');
      const fields: Record<string, Field> = {};
      for (const [name, member] of Object.entries(def.shape as Record<string, unknown>)) fields[name] = fieldOfZod(member, depth + 1);
      return { s: 'map', fields };
    }
    case 'optional':
    case 'default':
    case 'nonoptional':
    case 'readonly':
      return shapeOfZod(def.innerType, depth + 1);
    case 'pipe':
      return shapeOfZod(def.in, depth + 1);
    case 'union':
      return merge((def.options as unknown[]).map((o) => shapeOfZod(o, depth + 1)));
    // A union of number and bigint is how @strata/codec reads integers; a lone
    // number in our schemas is always one half of such a union.
    case 'number':
    case 'bigint':
      return { s: 'int' };
    case 'string': {
      const regex = ((def.checks as unknown[] | undefined) ?? []).map(defOf).find((c) => c.check === 'string_format' && c.format === 'regex');
      if (regex === undefined) return { s: 'text' };
      const source = (regex.pattern as RegExp).source;
      if (!source.startsWith('^') || !source.endsWith('$')) throw new Error(`regex /${source}/ is not anchored at both ends`);
      return { s: 'text', pattern: source.slice(1, -1) };
    }
    case 'boolean':
      return { s: 'bool' };
    case 'null':
      return { s: 'null' };
    case 'unknown':
    case 'any':
      return { s: 'any' };
    case 'enum':
      return { s: 'enum', values: Object.values(def.entries as Record<string, string>).sort() };
    case 'literal':
      return merge((def.values as unknown[]).map((v): Shape => (typeof v === 'string' ? { s: 'enum', values: [v] } : typeof v === 'boolean' ? { s: 'bool' } : { s: 'int' })));
    case 'array': {
      const checks = ((def.checks as unknown[] | undefined) ?? []).map(defOf);
      const min = checks.find((c) => c.check === 'min_length')?.minimum as number | undefined;
      const max = checks.find((c) => c.check === 'max_length')?.maximum as number | undefined;
      return { s: 'array', item: shapeOfZod(def.element, depth + 1), min: min ?? 0, max: max ?? Infinity };
    }
    case 'record':
      return { s: 'record', key: shapeOfZod(def.keyType, depth + 1), value: shapeOfZod(def.valueType, depth + 1) };
    // A custom check is opaque; the one our schemas use is @strata/codec's byte string.
    case 'custom':
      if (schema === bytes) return { s: 'bytes' };
      throw new Error('a custom zod check has no shape (only @strata/codec bytes has)');
    default:
      throw new Error(`zod type ${def.type} has no shape`);
  }
}

function fieldOfZod(member: unknown, depth: number): Field {
  let optional = false;
  let value: unknown;
  let hasDefault = false;
  let inner = member;
  for (;;) {
    const def = defOf(inner);
    if (def.type === 'optional') optional = true;
    else if (def.type === 'default') {
      optional = true;
      hasDefault = true;
      value = def.defaultValue;
    } else break;
    inner = def.innerType;
  }
  const field: Field = { optional, shape: shapeOfZod(inner, depth) };
  if (hasDefault) field.default = value;
  return field;
}

// ---- Comparison -----------------------------------------------------------------------

function show(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? `${x}n` : x));
}

function isScalar(v: unknown): boolean {
  return v === null || ['string', 'number', 'boolean', 'bigint'].includes(typeof v);
}

/** Differences between a CDDL shape and a zod shape, one line each (empty when they agree). */
export function compareShapes(cddl: Shape, ts: Shape, where = '$'): string[] {
  if (cddl.s !== ts.s) return [`${where}: CDDL has ${describe(cddl)}, TypeScript has ${describe(ts)}`];
  const out: string[] = [];
  switch (cddl.s) {
    case 'text': {
      const p = (ts as { pattern?: string }).pattern;
      if (cddl.pattern !== p) out.push(`${where}: CDDL pattern ${cddl.pattern ?? '(none)'}, TypeScript pattern ${p ?? '(none)'}`);
      break;
    }
    case 'enum': {
      const other = (ts as { values: string[] }).values;
      const onlyCddl = cddl.values.filter((v) => !other.includes(v));
      const onlyTs = other.filter((v) => !cddl.values.includes(v));
      if (onlyCddl.length > 0 || onlyTs.length > 0) out.push(`${where}: values only in CDDL ${show(onlyCddl)}, only in TypeScript ${show(onlyTs)}`);
      break;
    }
    case 'array': {
      const t = ts as Extract<Shape, { s: 'array' }>;
      if (cddl.min !== t.min || cddl.max !== t.max) out.push(`${where}: CDDL holds ${cddl.min} to ${cddl.max} items, TypeScript ${t.min} to ${t.max}`);
      out.push(...compareShapes(cddl.item, t.item, `${where}[]`));
      break;
    }
    case 'record': {
      const t = ts as Extract<Shape, { s: 'record' }>;
      out.push(...compareShapes(cddl.key, t.key, `${where}{key}`), ...compareShapes(cddl.value, t.value, `${where}{value}`));
      break;
    }
    case 'map': {
      const t = (ts as Extract<Shape, { s: 'map' }>).fields;
      for (const name of Object.keys(cddl.fields).filter((n) => !(n in t))) out.push(`${where}.${name}: only in CDDL`);
      for (const name of Object.keys(t).filter((n) => !(n in cddl.fields))) out.push(`${where}.${name}: only in TypeScript`);
      for (const [name, c] of Object.entries(cddl.fields)) {
        const z = t[name];
        if (z === undefined) continue;
        if (c.optional !== z.optional) out.push(`${where}.${name}: ${c.optional ? 'optional' : 'required'} in CDDL, ${z.optional ? 'optional' : 'required'} in TypeScript`);
        // Scalar defaults must agree both ways; a default array or map (tierOrder,
        // qos) is written in a CDDL comment, which the `cddl` parser cannot read.
        const cHas = 'default' in c;
        const zHas = 'default' in z;
        if (cHas && (!zHas || show(c.default) !== show(z.default))) out.push(`${where}.${name}: CDDL default ${show(c.default)}, TypeScript default ${zHas ? show(z.default) : '(none)'}`);
        if (!cHas && zHas && isScalar(z.default)) out.push(`${where}.${name}: TypeScript default ${show(z.default)} has no CDDL .default`);
        out.push(...compareShapes(c.shape, z.shape, `${where}.${name}`));
      }
      break;
    }
    case 'union': {
      // Alternatives pair up by their discriminator (`<kind=node>`), else by their shape.
      const t = (ts as Extract<Shape, { s: 'union' }>).alts;
      const cIds = cddl.alts.map(identity);
      const tIds = t.map(identity);
      cIds.forEach((id, i) => {
        const j = tIds.indexOf(id);
        if (j < 0) out.push(`${where}<${id}>: only in CDDL`);
        else out.push(...compareShapes(cddl.alts[i]!, t[j]!, `${where}<${id}>`));
      });
      for (const id of tIds.filter((id) => !cIds.includes(id))) out.push(`${where}<${id}>: only in TypeScript`);
      break;
    }
    default:
      break;
  }
  return out;
}

/** Names an alternative of a union: `kind=node` for a tagged map, its keys for another map. */
function identity(shape: Shape): string {
  if (shape.s !== 'map') return shape.s;
  const names = Object.keys(shape.fields).sort();
  const tag = names.find((n) => tagOf(shape, n) !== undefined);
  return tag !== undefined ? `${tag}=${tagOf(shape, tag)}` : `{${names.join(',')}}`;
}

function describe(shape: Shape): string {
  switch (shape.s) {
    case 'map':
      return `a map {${Object.keys(shape.fields).join(', ')}}`;
    case 'enum':
      return `one of ${show(shape.values)}`;
    case 'array':
      return 'an array';
    case 'record':
      return 'a map of any keys';
    case 'union':
      return `a choice of ${shape.alts.length}`;
    default:
      return shape.s;
  }
}
