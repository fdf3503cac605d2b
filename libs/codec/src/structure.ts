// A walk over the first CBOR item of a message that builds nothing: it refuses what
// messages never contain before cbor-x spends any time on it.
//
// Messages are plain data: integers, floats, strings, byte strings, arrays, maps,
// true, false and null. cbor-x gives tags meanings of its own (a Date from tags 0 and
// 1, a RegExp or Error from 27, a Set from 258, a Map from 259, typed arrays from
// 64-87, shared references from 28 and 29, which can make a value that contains
// itself or a few bytes that expand exponentially), and decoding thousands of nested
// tags took about a second per 50 KB (found by the CBOR fuzz target). `undefined`
// (simple value 23) decodes but cannot be written back. So no tag, no simple value
// other than false, true and null, and no nesting deeper than NESTING_DEPTH_MAX: each
// is refused here, in time linear in the message's size.

/**
 * How deep a message may nest. The deepest message in proto/vectors nests 4 levels (a
 * metadata value inside a put request); a bound keeps a hostile message from costing a
 * deep walk in every reader.
 */
export const NESTING_DEPTH_MAX = 32;

export type StructureProblem = { kind: 'malformed' | 'unsupported'; why: string };

/** A container being walked: items left to read (Infinity when indefinite, until a break). */
interface Open {
  left: number;
  indefinite: boolean;
}

class Reader {
  pos = 0;
  constructor(readonly bytes: Uint8Array) {}

  /** The argument of the head at `pos` (after its initial byte), or undefined when it runs past the end. */
  argument(ai: number): number | undefined {
    if (ai < 24) return ai;
    const size = ai === 24 ? 1 : ai === 25 ? 2 : ai === 26 ? 4 : 8;
    if (this.pos + size > this.bytes.length) return undefined;
    let value = 0;
    for (let i = 0; i < size; i++) value = value * 256 + this.bytes[this.pos + i]!;
    this.pos += size;
    return value;
  }
}

/** Why `bytes` does not start with a CBOR item made of what messages use, or undefined if it does. */
export function structureProblem(bytes: Uint8Array): StructureProblem | undefined {
  const r = new Reader(bytes);
  const stack: Open[] = [];
  do {
    if (r.pos >= bytes.length) return { kind: 'malformed', why: 'unexpected end of the message' };
    const at = r.pos;
    const initial = bytes[r.pos++]!;
    const major = initial >> 5;
    const ai = initial & 31;
    const top = stack[stack.length - 1];
    if (initial === 0xff) {
      if (top?.indefinite !== true) return { kind: 'malformed', why: `a break code outside an indefinite-length item at byte ${at}` };
      stack.pop();
      itemDone(stack);
      continue;
    }
    if (ai >= 28 && ai <= 30) return { kind: 'malformed', why: `reserved additional information ${ai} at byte ${at}` };
    const problem = item(r, major, ai, at, stack);
    if (problem !== undefined) return problem;
  } while (stack.length > 0);
  return undefined;
}

/** Reads one item's head (and a string's bytes); opens containers on `stack`. */
function item(r: Reader, major: number, ai: number, at: number, stack: Open[]): StructureProblem | undefined {
  if (major === 6) return { kind: 'unsupported', why: `a tag (${r.argument(ai) ?? '?'}) at byte ${at}: messages use none` };
  if (major === 7) return simple(r, ai, at, stack);
  if (ai === 31) {
    if (major === 0 || major === 1) return { kind: 'malformed', why: `an indefinite-length integer at byte ${at}` };
    return open(stack, { left: Infinity, indefinite: true }, at);
  }
  const n = r.argument(ai);
  if (n === undefined) return { kind: 'malformed', why: `unexpected end of the message in the head at byte ${at}` };
  if (major === 2 || major === 3) {
    if (r.pos + n > r.bytes.length) return { kind: 'malformed', why: `a string of ${n} bytes at byte ${at} runs past the end` };
    r.pos += n;
  }
  if (major === 4 || major === 5) {
    const left = major === 4 ? n : 2 * n;
    if (left > 0) return open(stack, { left, indefinite: false }, at);
  }
  itemDone(stack);
  return undefined;
}

function simple(r: Reader, ai: number, at: number, stack: Open[]): StructureProblem | undefined {
  // false, true, null; half, single and double floats.
  if (ai === 20 || ai === 21 || ai === 22) {
    itemDone(stack);
    return undefined;
  }
  if (ai === 25 || ai === 26 || ai === 27) {
    if (r.argument(ai) === undefined) return { kind: 'malformed', why: `unexpected end of the message in the float at byte ${at}` };
    itemDone(stack);
    return undefined;
  }
  return { kind: 'unsupported', why: `${ai === 23 ? 'undefined' : 'a simple value'} at byte ${at}: messages use only false, true and null` };
}

function open(stack: Open[], container: Open, at: number): StructureProblem | undefined {
  if (stack.length >= NESTING_DEPTH_MAX) return { kind: 'unsupported', why: `nested deeper than ${NESTING_DEPTH_MAX} levels at byte ${at}` };
  stack.push(container);
  return undefined;
}

/** One item of the innermost open container is complete; closes the definite ones it completes. */
function itemDone(stack: Open[]): void {
  for (;;) {
    const top = stack[stack.length - 1];
    if (top === undefined || top.indefinite) return;
    top.left -= 1;
    if (top.left > 0) return;
    stack.pop();
  }
}
