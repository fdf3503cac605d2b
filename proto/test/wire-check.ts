// The encoding rules of PROTOCOL.md, checked on the bytes of a message, plus a
// printer of CBOR diagnostic notation (RFC 8949 section 8) for the golden vectors.
// A decoder such as cbor-x hides how a value was written (a float 1.0 and the
// integer 1 decode alike), so these rules need their own reading of the bytes:
// - one well-formed data item, nothing after it, nested at most MAX_DEPTH deep;
// - every integer, length and count in its shortest form; no indefinite lengths;
// - no tags at all (so no cbor-x records, no tagged byte strings, no bignums);
// - no floats and no simple values other than false, true and null;
// - map keys are text strings, each at most once; text strings are valid UTF-8.
// For tests only.

const MAX_DEPTH = 64;

type Item =
  | { mt: 'uint' | 'nint'; value: bigint }
  | { mt: 'bytes'; value: Uint8Array; indefinite: boolean }
  | { mt: 'text'; value: string; indefinite: boolean }
  | { mt: 'array'; items: Item[]; indefinite: boolean }
  | { mt: 'map'; entries: [Item, Item][]; indefinite: boolean }
  | { mt: 'tag'; tag: bigint; item: Item }
  | { mt: 'simple'; value: number }
  | { mt: 'float'; value: number; bytes: number };

class Reader {
  pos = 0;
  readonly violations: string[] = [];

  constructor(readonly bytes: Uint8Array) {}

  private byte(): number {
    if (this.pos >= this.bytes.length) throw new Error(`malformed CBOR: truncated at byte ${this.pos}`);
    return this.bytes[this.pos++]!;
  }

  private take(n: number): Uint8Array {
    if (this.pos + n > this.bytes.length) throw new Error(`malformed CBOR: truncated at byte ${this.pos}`);
    const out = this.bytes.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  private uintOf(n: number): bigint {
    let v = 0n;
    for (const b of this.take(n)) v = (v << 8n) | BigInt(b);
    return v;
  }

  /** Reads the argument of an initial byte; undefined for an indefinite length. */
  private argument(info: number, where: string): bigint | undefined {
    if (info < 24) return BigInt(info);
    if (info === 31) return undefined;
    const size = { 24: 1, 25: 2, 26: 4, 27: 8 }[info];
    if (size === undefined) throw new Error(`malformed CBOR: reserved additional information ${info} at ${where}`);
    const v = this.uintOf(size);
    const shortest = v < 24n ? 0 : v < 0x100n ? 1 : v < 0x10000n ? 2 : v < 0x100000000n ? 4 : 8;
    if (shortest < size) this.violations.push(`${where}: ${v} is written in ${size + 1} bytes, not in its shortest form`);
    return v;
  }

  read(where: string, depth: number): Item {
    if (depth > MAX_DEPTH) throw new Error(`nesting deeper than ${MAX_DEPTH} at ${where}`);
    const initial = this.byte();
    const major = initial >> 5;
    const info = initial & 0x1f;
    if (major === 7) return this.readSimple(info, where);
    const arg = this.argument(info, where);
    switch (major) {
      case 0:
      case 1:
        if (arg === undefined) throw new Error(`malformed CBOR: indefinite integer at ${where}`);
        return { mt: major === 0 ? 'uint' : 'nint', value: major === 0 ? arg : -1n - arg };
      case 2:
      case 3: {
        const indefinite = arg === undefined;
        if (indefinite) this.violations.push(`${where}: indefinite-length string`);
        const chunks: Uint8Array[] = [];
        if (arg === undefined) {
          while (this.bytes[this.pos] !== 0xff) {
            const chunk = this.read(where, depth + 1);
            if (chunk.mt !== (major === 2 ? 'bytes' : 'text')) throw new Error(`malformed CBOR: wrong chunk type at ${where}`);
            chunks.push(chunk.mt === 'bytes' ? chunk.value : new TextEncoder().encode(chunk.value));
          }
          this.pos++;
        } else {
          chunks.push(this.take(Number(arg)));
        }
        const all = Buffer.concat(chunks);
        if (major === 2) return { mt: 'bytes', value: new Uint8Array(all), indefinite };
        let text: string;
        try {
          text = new TextDecoder('utf-8', { fatal: true }).decode(all);
        } catch {
          this.violations.push(`${where}: text string is not valid UTF-8`);
          text = all.toString('latin1');
        }
        return { mt: 'text', value: text, indefinite };
      }
      case 4: {
        const indefinite = arg === undefined;
        if (indefinite) this.violations.push(`${where}: indefinite-length array`);
        const items: Item[] = [];
        for (let i = 0; arg === undefined ? this.bytes[this.pos] !== 0xff : i < Number(arg); i++) {
          items.push(this.read(`${where}[${i}]`, depth + 1));
        }
        if (arg === undefined) this.pos++;
        return { mt: 'array', items, indefinite };
      }
      case 5: {
        const indefinite = arg === undefined;
        if (indefinite) this.violations.push(`${where}: indefinite-length map`);
        const entries: [Item, Item][] = [];
        const seen = new Set<string>();
        for (let i = 0; arg === undefined ? this.bytes[this.pos] !== 0xff : i < Number(arg); i++) {
          const key = this.read(`${where}{key ${i}}`, depth + 1);
          const keyText = key.mt === 'text' ? key.value : undefined;
          if (keyText === undefined) this.violations.push(`${where}: map key ${diagnosticOf(key)} is not a text string`);
          const at = keyText !== undefined && /^[A-Za-z_][A-Za-z0-9_]*$/.test(keyText) ? `${where}.${keyText}` : `${where}[${diagnosticOf(key)}]`;
          if (keyText !== undefined) {
            if (seen.has(keyText)) this.violations.push(`${where}: key "${keyText}" appears twice`);
            seen.add(keyText);
          }
          entries.push([key, this.read(at, depth + 1)]);
        }
        if (arg === undefined) this.pos++;
        return { mt: 'map', entries, indefinite };
      }
      case 6: {
        if (arg === undefined) throw new Error(`malformed CBOR: indefinite tag at ${where}`);
        this.violations.push(`${where}: tag ${arg} (Strata messages carry no tags)`);
        return { mt: 'tag', tag: arg, item: this.read(where, depth + 1) };
      }
      default:
        throw new Error(`malformed CBOR: major type ${major} at ${where}`);
    }
  }

  private readSimple(info: number, where: string): Item {
    if (info < 24) {
      if (info < 20 || info > 22) this.violations.push(`${where}: simple value ${info} (only false, true and null are used)`);
      return { mt: 'simple', value: info };
    }
    if (info === 24) {
      const value = this.byte();
      this.violations.push(`${where}: simple value ${value} (only false, true and null are used)`);
      return { mt: 'simple', value };
    }
    const size = { 25: 2, 26: 4, 27: 8 }[info];
    if (size === undefined) throw new Error(info === 31 ? `malformed CBOR: break outside an indefinite-length item at ${where}` : `malformed CBOR: reserved value ${info} at ${where}`);
    const raw = Buffer.from(this.take(size));
    const value = size === 2 ? halfToNumber(raw.readUInt16BE(0)) : size === 4 ? raw.readFloatBE(0) : raw.readDoubleBE(0);
    this.violations.push(`${where}: float ${value} (Strata messages carry no floats; integers are CBOR integers)`);
    return { mt: 'float', value, bytes: size };
  }
}

function halfToNumber(h: number): number {
  const exp = (h >> 10) & 0x1f;
  const mant = h & 0x3ff;
  const sign = h & 0x8000 ? -1 : 1;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 31) return mant === 0 ? sign * Infinity : NaN;
  return sign * (mant + 1024) * 2 ** (exp - 25);
}

function scan(bytes: Uint8Array): { item: Item; violations: string[] } {
  const reader = new Reader(bytes);
  const item = reader.read('$', 0);
  if (reader.pos !== bytes.length) reader.violations.push(`$: ${bytes.length - reader.pos} bytes after the end of the message`);
  return { item, violations: reader.violations };
}

/** The first broken encoding rule, or undefined when the bytes follow them all. */
export function checkWire(bytes: Uint8Array): string | undefined {
  try {
    return scan(bytes).violations[0];
  } catch (err) {
    return (err as Error).message;
  }
}

/**
 * CBOR diagnostic notation: `{"kind": "vdisk", "id": 12349}`, `h'0102'`, `1.5_3`.
 * Bytes that are not one well-formed data item have no notation of their own: they
 * get a comment (`/ ... /`) saying why, after the item when only extra bytes follow it.
 */
export function diagnostic(bytes: Uint8Array): string {
  const reader = new Reader(bytes);
  let item: Item;
  try {
    item = reader.read('$', 0);
  } catch (err) {
    return `/ not well-formed: ${(err as Error).message} /`;
  }
  const rest = bytes.length - reader.pos;
  if (rest === 0) return diagnosticOf(item);
  return `${diagnosticOf(item)} / followed by ${rest} more byte${rest === 1 ? '' : 's'}: h'${Buffer.from(bytes.subarray(reader.pos)).toString('hex')}' /`;
}

function diagnosticOf(item: Item): string {
  switch (item.mt) {
    case 'uint':
    case 'nint':
      return String(item.value);
    case 'bytes':
      return `${item.indefinite ? '(_ ' : ''}h'${Buffer.from(item.value).toString('hex')}'${item.indefinite ? ')' : ''}`;
    case 'text':
      return JSON.stringify(item.value);
    case 'array':
      return `[${item.indefinite ? '_ ' : ''}${item.items.map(diagnosticOf).join(', ')}]`;
    case 'map':
      return `{${item.indefinite ? '_ ' : ''}${item.entries.map(([k, v]) => `${diagnosticOf(k)}: ${diagnosticOf(v)}`).join(', ')}}`;
    case 'tag':
      return `${item.tag}(${diagnosticOf(item.item)})`;
    case 'simple':
      return item.value === 20 ? 'false' : item.value === 21 ? 'true' : item.value === 22 ? 'null' : item.value === 23 ? 'undefined' : `simple(${item.value})`;
    case 'float': {
      const text = Number.isFinite(item.value) ? (Number.isInteger(item.value) ? item.value.toFixed(1) : String(item.value)) : Number.isNaN(item.value) ? 'NaN' : item.value > 0 ? 'Infinity' : '-Infinity';
      return `${text}_${{ 2: 1, 4: 2, 8: 3 }[item.bytes]}`;
    }
  }
}
