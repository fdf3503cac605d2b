// The workload's disk layout, pure: block 0 holds the counter last acknowledged, and
// block 1 + (c mod DATA_BLOCKS) holds the data written for counter c. Each step c
// writes its data block first, then the counter, so after any crash the counter on
// disk names a data block that holds it, and the DATA_BLOCKS - 1 counters before it
// are in their blocks too (the block of c + 1 may already hold c + 1: written, but
// not yet counted). Each block carries the VM's name and a digest of its contents,
// so a block from another VM, a torn block or stale data is caught.
import { createHash } from 'node:crypto';

export const BLOCK_BYTES = 4096;
export const DATA_BLOCKS = 64;
const MAGIC = 'STRATAVM';

export interface Block {
  kind: 'counter' | 'data';
  vm: string;
  counter: number;
}

/** The byte offset of the data block of counter `c`. */
export function dataOffset(c: number): number {
  return BLOCK_BYTES * (1 + (c % DATA_BLOCKS));
}

/**
 * A block: magic, kind, VM name, counter, then a pattern derived from all three, and
 * a SHA-256 prefix of everything before it in the last 8 bytes.
 */
export function encodeBlock(b: Block): Buffer {
  const out = Buffer.alloc(BLOCK_BYTES);
  const head = Buffer.from(`${MAGIC} ${b.kind} ${b.vm} ${b.counter}\n`, 'utf8');
  head.copy(out, 0);
  const seed = createHash('sha256').update(head).digest();
  for (let i = head.length; i < BLOCK_BYTES - 8; i++) out[i] = seed[i % seed.length]! ^ (i & 0xff);
  digest(out).copy(out, BLOCK_BYTES - 8);
  return out;
}

/** The block's contents, `empty` for a never-written (all zero) block, or why it is wrong. */
export function decodeBlock(bytes: Buffer): Block | 'empty' | { bad: string } {
  if (bytes.length !== BLOCK_BYTES) return { bad: `${bytes.length} bytes, not ${BLOCK_BYTES}` };
  if (bytes.every((x) => x === 0)) return 'empty';
  if (!digest(bytes).equals(bytes.subarray(BLOCK_BYTES - 8))) return { bad: 'checksum mismatch' };
  const line = bytes.subarray(0, bytes.indexOf(0x0a)).toString('utf8');
  const m = /^STRATAVM (counter|data) (\S+) (\d+)$/.exec(line);
  if (m === null) return { bad: `unexpected header ${JSON.stringify(line.slice(0, 80))}` };
  const block: Block = { kind: m[1] as Block['kind'], vm: m[2]!, counter: Number(m[3]) };
  return encodeBlock(block).equals(bytes) ? block : { bad: 'pattern mismatch' };
}

function digest(bytes: Buffer): Buffer {
  return createHash('sha256').update(bytes.subarray(0, BLOCK_BYTES - 8)).digest().subarray(0, 8);
}

/** The counters whose data blocks must hold exactly them, given the counter on disk. */
export function countersToVerify(counter: number): number[] {
  const out: number[] = [];
  for (let c = Math.max(1, counter - DATA_BLOCKS + 2); c <= counter; c++) out.push(c);
  return out;
}

/** Checks a data block read back for counter `c`; a reason when it is wrong. */
export function checkData(vm: string, c: number, bytes: Buffer): string | undefined {
  const b = decodeBlock(bytes);
  if (b === 'empty') return `data block of counter ${c} is empty`;
  if ('bad' in b) return `data block of counter ${c}: ${b.bad}`;
  if (b.kind !== 'data' || b.vm !== vm || b.counter !== c) return `data block of counter ${c} holds ${b.kind} ${b.vm} ${b.counter}`;
  return undefined;
}

/** The counter stored in block 0: 0 for a fresh disk. */
export function readCounter(vm: string, bytes: Buffer): number | { bad: string } {
  const b = decodeBlock(bytes);
  if (b === 'empty') return 0;
  if ('bad' in b) return { bad: `counter block: ${b.bad}` };
  if (b.kind !== 'counter' || b.vm !== vm) return { bad: `counter block holds ${b.kind} of vm ${b.vm}` };
  return b.counter;
}
