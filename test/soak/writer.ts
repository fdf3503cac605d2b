// A verifying writer for the soak: one long-lived qemu-io session on one gateway,
// writing blocks of its own region of a vDisk over and over with a new pattern each
// generation, and reading back an earlier block after every write. It records a
// write only once qemu-io printed it done, so at the end each block must read back
// as its last acknowledged pattern. It tells apart:
//  - client-visible errors: an I/O the client saw fail (it is sent again, the same
//    block with the same pattern, until acknowledged: a retry is idempotent);
//  - wrong reads: a block that read back as anything but its last acknowledged
//    pattern (a lost or rolled-back write);
//  - connection failures: qemu-io could not connect at all (its gateway was down when
//    a new session started; no I/O was issued).
import { QemuIoSession } from './qemu-io-session';

export interface WriterSpec {
  name: string;
  /** The gateway's NBD port and the export (vDisk name). */
  port: number;
  exportName: string;
  /** Block i is `blockBytes` at base + i * strideBytes. */
  base: number;
  blocks: number;
  strideBytes: number;
  blockBytes: number;
}

export interface Finding {
  atMs: number;
  writer: string;
  what: string;
}

/** A pattern byte (1..255) per block and generation; consecutive generations differ. */
export function patternOf(block: number, generation: number): number {
  return ((block * 31 + generation * 17) % 255) + 1;
}

const COMMAND_TIMEOUT_MS = 90_000;
const RECONNECT_DELAY_S = 30;

export class VerifyingWriter {
  /** Block → the pattern of its last acknowledged write. */
  readonly acked = new Map<number, number>();
  readonly errors: Finding[] = [];
  readonly wrong: Finding[] = [];
  readonly connectFailures: Finding[] = [];
  writes = 0;
  reads = 0;
  /** The longest time between two completed commands, and when it ended. */
  longestPause = { ms: 0, endedAtMs: 0 };
  private lastDoneAtMs = 0;
  /** The longest pause of the current window (takePause). */
  private windowPauseMs = 0;
  private session: QemuIoSession | undefined;
  private stopping = false;
  private loop: Promise<void> | undefined;

  constructor(readonly spec: WriterSpec) {}

  /** The longest pause since the last call (or the start), counting the one still open; the window starts again now. */
  takePause(): number {
    const now = Date.now();
    const longest = Math.max(this.windowPauseMs, now - this.lastDoneAtMs);
    this.windowPauseMs = 0;
    return longest;
  }

  start(): void {
    this.lastDoneAtMs = Date.now();
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await this.loop;
    this.session?.close();
  }

  private offsetOf(block: number): number {
    return this.spec.base + block * this.spec.strideBytes;
  }

  private async run(): Promise<void> {
    const generation = new Array<number>(this.spec.blocks).fill(0);
    let cursor = 0;
    while (!this.stopping) {
      const block = cursor;
      cursor = (cursor + 1) % this.spec.blocks;
      const pattern = patternOf(block, ++generation[block]!);
      const { blockBytes } = this.spec;
      // Until acknowledged: the same block, the same pattern.
      while (!(await this.command(`write -P ${pattern} ${this.offsetOf(block)} ${blockBytes}`, /^wrote (\d+)\/\1 bytes at offset/m))) {
        if (this.stopping) return;
      }
      this.acked.set(block, pattern);
      this.writes++;
      // Read back an earlier block (the one before, which was written a moment ago).
      const earlier = (block + this.spec.blocks - 1) % this.spec.blocks;
      const expected = this.acked.get(earlier);
      if (expected !== undefined) await this.verify(earlier, expected);
    }
  }

  private async verify(block: number, pattern: number): Promise<void> {
    const ok = await this.command(`read -P ${pattern} ${this.offsetOf(block)} ${this.spec.blockBytes}`, /^read (\d+)\/\1 bytes at offset/m, block);
    if (ok) this.reads++;
  }

  /** Runs one command; true when its output matched `done` with no failure in it. */
  private async command(command: string, done: RegExp, readBlock?: number): Promise<boolean> {
    const session = await this.openSession();
    if (session === undefined) return false;
    let out: string;
    try {
      out = await session.run(command, COMMAND_TIMEOUT_MS);
    } catch (err) {
      this.errors.push({ atMs: Date.now(), writer: this.spec.name, what: `${command}: ${(err as Error).message}` });
      this.session = undefined;
      return false;
    }
    if (/Pattern verification failed/.test(out)) {
      this.wrong.push({ atMs: Date.now(), writer: this.spec.name, what: `block ${readBlock} (${command}) read back wrong: ${out.trim().slice(0, 200)}` });
      return true; // a finding, not something a retry may hide
    }
    if (!done.test(out) || /error|failed/i.test(out)) {
      this.errors.push({ atMs: Date.now(), writer: this.spec.name, what: `${command}: ${out.trim().replace(/\s+/g, ' ').slice(0, 200)}` });
      if (!session.alive) this.session = undefined;
      return false;
    }
    const now = Date.now();
    if (now - this.lastDoneAtMs > this.longestPause.ms) this.longestPause = { ms: now - this.lastDoneAtMs, endedAtMs: now };
    this.windowPauseMs = Math.max(this.windowPauseMs, now - this.lastDoneAtMs);
    this.lastDoneAtMs = now;
    return true;
  }

  /** The current session, or a new one; undefined (after a pause) when qemu-io cannot connect. */
  private async openSession(): Promise<QemuIoSession | undefined> {
    if (this.session?.alive === true) return this.session;
    const session = new QemuIoSession({ port: this.spec.port, exportName: this.spec.exportName, reconnectDelayS: RECONNECT_DELAY_S });
    const greeting = await session.ready(30_000).catch((err: Error) => `(${err.message})`);
    if (!session.alive || /error|failed|could not/i.test(greeting)) {
      this.connectFailures.push({ atMs: Date.now(), writer: this.spec.name, what: greeting.trim().slice(0, 200) });
      session.close();
      await new Promise((r) => setTimeout(r, 1_000));
      return undefined;
    }
    this.session = session;
    return session;
  }
}
