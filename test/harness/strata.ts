// Helpers for end-to-end tests that run a whole local cluster with `strata up` and
// drive it with real NBD clients: free port runs, the processes `strata up`
// supervises (found by PID and command line), qemu-io with pattern verification, a
// writer that records exactly which writes were acknowledged, and the drain state of
// a vDisk (its `own` record against its oplog).
import { readFileSync } from 'node:fs';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { decode } from '@strata/codec';
import { clientSecurityFromEnv, freePort, portIsFree, securityOptions, type ClientSecurity } from '@strata/natsd';
import { openBucket } from '@strata/kv';
import { buckets, keys, oplogEntry, streams, subjects, vdiskOwnership, type VdiskOwnership } from '@strata/proto';
import { run } from './processes';
import { sleep, waitFor } from './util';
import { isConnectionError } from './verify';
import { envSecurityOptions } from './suite-security';

/** The first of `count` consecutive TCP ports on 127.0.0.1 that were free a moment ago (never 4222). */
export async function freePortRun(count: number): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const first = await freePort();
    const ports = Array.from({ length: count }, (_, i) => first + i);
    if (ports.includes(4222) || ports[count - 1]! > 65_535) continue;
    let free = true;
    for (const p of ports.slice(1)) free &&= await portIsFree(p);
    if (free) return first;
  }
  throw new Error(`no run of ${count} free ports found on 127.0.0.1`);
}

/** The PIDs of a process's children (the actors and nats-servers `strata up` supervises). */
export async function childPids(pid: number): Promise<number[]> {
  const { stdout } = await run('pgrep', ['-P', String(pid)], { timeoutMs: 5_000 });
  return stdout
    .split('\n')
    .filter((l) => /^\d+$/.test(l))
    .map(Number);
}

/** The children of `pid` with their command lines; one that is gone meanwhile is left out. */
export async function children(pid: number): Promise<Array<{ pid: number; args: string }>> {
  const out: Array<{ pid: number; args: string }> = [];
  for (const child of await childPids(pid)) {
    const args = commandLine(child);
    if (args !== undefined && args !== '') out.push({ pid: child, args });
  }
  return out;
}

/** A process's command line (arguments joined by spaces), or undefined once it is gone. */
export function commandLine(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim();
  } catch {
    return undefined;
  }
}

/** The child of `parent` whose command line matches `pattern`; fails unless exactly one does. */
export async function childMatching(parent: number, pattern: RegExp): Promise<number> {
  const found = (await childPids(parent)).filter((pid) => pattern.test(commandLine(pid) ?? ''));
  if (found.length !== 1) throw new Error(`expected one child of ${parent} matching ${pattern}, found ${found.length}: ${found.map((p) => `${p}: ${commandLine(p)}`).join('; ')}`);
  return found[0]!;
}

/**
 * SIGKILLs every process of `snapshot` (PID → command line) that is still running
 * the same command line (so a reused PID is left alone). Returns the PIDs killed.
 */
export function killIfUnchanged(snapshot: ReadonlyMap<number, string>): number[] {
  const killed: number[] = [];
  for (const [pid, cmd] of snapshot) {
    if (commandLine(pid) !== cmd) continue;
    try {
      process.kill(pid, 'SIGKILL');
      killed.push(pid);
    } catch {
      // gone meanwhile
    }
  }
  return killed;
}

/**
 * qemu-io's arguments that open `uri` (nbd://HOST:PORT/EXPORT): the URI as a raw
 * image, or, given a client certificate directory (ca-cert.pem, client-cert.pem,
 * client-key.pem), the same export over TLS (QEMU's tls-creds-x509, endpoint=client;
 * QEMU has no URI for NBD over TLS).
 */
export function qemuImageArgs(uri: string, tlsClientDir?: string): string[] {
  if (tlsClientDir === undefined) return ['-f', 'raw', uri];
  const u = new URL(uri);
  if (u.protocol !== 'nbd:') throw new Error(`${uri} is not an nbd:// URI`);
  const host = u.hostname.replace(/^\[(.*)\]$/, '$1');
  const exportName = decodeURIComponent(u.pathname.slice(1));
  return ['--object', `tls-creds-x509,id=tls0,endpoint=client,dir=${tlsClientDir}`, '--image-opts', `driver=nbd,server.type=inet,server.host=${host},server.port=${u.port || '10809'},export=${exportName},tls-creds=tls0`];
}

/**
 * Runs qemu-io with `-c` commands; fails on a non-zero exit, a failed command or a
 * pattern mismatch. With `tlsClientDir`, over TLS with those client certificates.
 */
export async function qemuIo(uri: string, commands: string[], timeoutMs = 60_000, readOnly = false, tlsClientDir?: string): Promise<string> {
  const args = [...(readOnly ? ['-r'] : []), ...qemuImageArgs(uri, tlsClientDir), ...commands.flatMap((c) => ['-c', c])];
  const { code, stdout, stderr } = await run('qemu-io', args, { timeoutMs });
  const out = stdout + stderr;
  if (code !== 0 || /Pattern verification failed|error|failed/i.test(out)) throw new Error(`qemu-io ${commands.slice(0, 4).join(' ; ')}${commands.length > 4 ? ` … (${commands.length} commands)` : ''} failed (${code}): ${out.slice(-2000)}`);
  return out;
}

/** One block of an AckedWriter: `length` bytes of `pattern` at `offset`. */
export interface WrittenBlock {
  index: number;
  offset: number;
  length: number;
  /** 1..255: never 0, which is what unwritten space reads as. */
  pattern: number;
}

export interface AckedBlock extends WrittenBlock {
  /** Date.now() when qemu-io reported the write done. */
  ackedAtMs: number;
  /** Date.now() when the qemu-io round that wrote it started: a write acknowledged after a fault may have been done before it. */
  issuedAtMs: number;
  /** Date.now() when the first qemu-io round that tried to write it started (earlier than issuedAtMs after a failed round): no attempt of it was sent before. */
  firstIssuedAtMs: number;
}

export interface AckedWriterOptions {
  /** NBD URI of the export. */
  uri: string;
  /** NBD over TLS with these client certificates (qemuImageArgs); plain when undefined. */
  tlsClientDir?: string;
  /** Offset of block 0; block i is at base + i * strideBytes. */
  base: number;
  strideBytes: number;
  blockBytes: number;
  /** Writes per qemu-io run (one round). */
  perRound: number;
  /** The writer stops after this many blocks are acknowledged. */
  blocks: number;
  /** Also read back (with -P) the previous round's blocks in each round. */
  verifyPrevious?: boolean;
  /** Bound of one qemu-io run. */
  attemptTimeoutMs?: number;
  /** The whole run's bound: past it the writer gives up with an error. */
  deadlineMs: number;
}

/** A failed round: qemu-io exited non-zero or reported a failed command. */
export interface RoundFailure {
  atMs: number;
  round: number;
  detail: string;
}

/**
 * Writes distinct patterns at distinct offsets through qemu-io, a round of
 * `perRound` writes per qemu-io run, and records each write as acknowledged only
 * when qemu-io printed it done. A failed write is retried (same block, same
 * pattern: idempotent) until it is acknowledged or the deadline passes. A read
 * that returns the wrong pattern is fatal: `finished()` rejects with it.
 */
export class AckedWriter {
  readonly acked: AckedBlock[] = [];
  readonly failures: RoundFailure[] = [];
  rounds = 0;
  private stopRequested = false;
  private loop: Promise<void> | undefined;
  private fatal: Error | undefined;

  constructor(readonly options: AckedWriterOptions) {}

  block(index: number): WrittenBlock {
    const o = this.options;
    return { index, offset: o.base + index * o.strideBytes, length: o.blockBytes, pattern: (index % 255) + 1 };
  }

  start(): this {
    if (this.loop === undefined) {
      this.loop = this.runLoop().catch((err: unknown) => {
        this.fatal = err as Error;
        throw err;
      });
      // A fatal error is reported by finished() and the waits; keep it from being unhandled meanwhile.
      this.loop.catch(() => undefined);
    }
    return this;
  }

  /** Resolves when every block is acknowledged (or stop() was called); rejects on a pattern mismatch or the deadline. */
  finished(): Promise<void> {
    return this.start().loop!;
  }

  /** Asks the writer to stop after its current round, and waits for that. */
  async stop(): Promise<void> {
    this.stopRequested = true;
    await this.loop?.catch(() => undefined);
  }

  /** Waits until at least `count` writes are acknowledged. */
  async waitForAcked(count: number, timeoutMs: number): Promise<void> {
    await this.waitFor(`${count} acknowledged writes`, timeoutMs, () => this.acked.length >= count);
  }

  /** Waits until `count` writes were acknowledged after `sinceMs` (Date.now() time); returns them. */
  /** Waits for `count` writes issued (and so also acknowledged) after `sinceMs`. */
  async waitForAckedSince(sinceMs: number, count: number, timeoutMs: number): Promise<AckedBlock[]> {
    return this.waitFor(`${count} writes issued and acknowledged after ${new Date(sinceMs).toISOString()}`, timeoutMs, () => {
      const after = this.acked.filter((b) => b.issuedAtMs > sinceMs);
      return after.length >= count ? after : false;
    });
  }

  /** Waits (bounded) until `check` holds; fails at once when the writer has failed. */
  async waitFor<T>(what: string, timeoutMs: number, check: () => T | false): Promise<T> {
    try {
      return await waitFor(what, timeoutMs, () => {
        if (this.fatal !== undefined) throw new Error(`the writer failed: ${this.fatal.message}`);
        return check();
      });
    } catch (err) {
      if (this.fatal !== undefined) throw this.fatal;
      throw new Error(`${(err as Error).message}; ${this.acked.length} acknowledged so far, failed rounds: ${JSON.stringify(this.failures.slice(-3))}`);
    }
  }

  private async runLoop(): Promise<void> {
    const o = this.options;
    const deadline = Date.now() + o.deadlineMs;
    const pending = Array.from({ length: o.blocks }, (_, i) => this.block(i));
    let previous: WrittenBlock[] = [];
    const firstIssued = new Map<number, number>();
    while (pending.length > 0 && !this.stopRequested) {
      if (Date.now() > deadline) throw new Error(`the writer gave up after ${o.deadlineMs} ms: ${this.acked.length} of ${o.blocks} writes acknowledged; failures: ${JSON.stringify(this.failures.slice(-5))}`);
      const round = this.rounds++;
      const issuedAtMs = Date.now();
      const batch = pending.slice(0, o.perRound);
      const commands = batch.map((b) => `write -P ${b.pattern} ${b.offset} ${b.length}`);
      for (const b of batch) if (!firstIssued.has(b.index)) firstIssued.set(b.index, issuedAtMs);
      if (o.verifyPrevious === true) commands.push(...previous.map((b) => `read -P ${b.pattern} ${b.offset} ${b.length}`));
      const { code, stdout, stderr } = await run('qemu-io', [...qemuImageArgs(o.uri, o.tlsClientDir), ...commands.flatMap((c) => ['-c', c])], { timeoutMs: o.attemptTimeoutMs ?? 30_000 });
      const out = stdout + stderr;
      const mismatch = /Pattern verification failed at offset (\d+)/.exec(out);
      if (mismatch !== null) {
        throw new Error(`round ${round}: an acknowledged write read back wrong at offset ${mismatch[1]} (read-back of blocks ${previous.map((b) => b.index).join(',')}): ${out.slice(-1500)}`);
      }
      const now = Date.now();
      const done = new Set<number>();
      for (const m of out.matchAll(/^wrote (\d+)\/(\d+) bytes at offset (\d+)$/gm)) {
        if (m[1] === m[2]) done.add(Number(m[3]));
      }
      const ackedNow: WrittenBlock[] = [];
      for (const b of batch) {
        if (!done.has(b.offset)) continue;
        this.acked.push({ ...b, ackedAtMs: now, issuedAtMs, firstIssuedAtMs: firstIssued.get(b.index)! });
        ackedNow.push(b);
        pending.splice(pending.indexOf(b), 1);
      }
      if (code !== 0 || /error|failed/i.test(out) || ackedNow.length < batch.length) {
        this.failures.push({ atMs: now, round, detail: `exit ${code}; ${ackedNow.length}/${batch.length} writes acknowledged; ${out.replace(/\s+/g, ' ').slice(0, 300)}` });
        previous = previous.concat(ackedNow);
        await sleep(200);
        continue;
      }
      previous = ackedNow;
    }
  }
}

/** A vDisk's drain state: the `drained` of its `own` record, and its oplog's last message. */
/** Reads back every block with qemu-io's pattern check, in runs of 200 commands; a wrong pattern fails. */
/** qemu-io on a read-only export (a snapshot): opened with -r. Fails on a wrong pattern or an error. */
export function qemuIoReadOnly(uri: string, commands: string[], timeoutMs = 30_000): Promise<string> {
  return qemuIo(uri, commands, timeoutMs, true);
}

export async function readBackAcked(uri: string, blocks: readonly WrittenBlock[], tlsClientDir?: string): Promise<void> {
  const sorted = [...blocks].sort((a, b) => a.offset - b.offset);
  for (let i = 0; i < sorted.length; i += 200) {
    await qemuIo(
      uri,
      sorted.slice(i, i + 200).map((b) => `read -P ${b.pattern} ${b.offset} ${b.length}`),
      60_000,
      false,
      tlsClientDir,
    );
  }
}

/** The longest time between consecutive acknowledgements in `acked` (in ack order) from `fromMs` on. */
export function longestAckGap(acked: readonly AckedBlock[], fromMs: number): number {
  let gap = 0;
  let previous = fromMs;
  for (const b of acked) {
    if (b.ackedAtMs <= fromMs) continue;
    gap = Math.max(gap, b.ackedAtMs - previous);
    previous = b.ackedAtMs;
  }
  return gap;
}

export interface DrainState {
  drained: number;
  /** The last sequence on the vDisk's oplog subject (0 when none). */
  lastSeq: number;
  /** What that last message is: a batch of writes or a takeover marker. */
  lastKind: 'ops' | 'marker' | 'none';
}

type Jsm = Awaited<ReturnType<typeof jetstreamManager>>;
type OwnBucket = Awaited<ReturnType<typeof openBucket<typeof vdiskOwnership>>>;

/** The drain state read over an open connection: the vDisk's oplog's last message and its `own` record. */
async function drainStateOver(jsm: Jsm, own: OwnBucket, vdiskId: bigint): Promise<DrainState> {
  const last = await jsm.streams.getMessage(streams.oplog, { last_by_subj: subjects.oplog(vdiskId) }).catch((err: unknown) => {
    if (/no message found/i.test((err as Error).message ?? '')) return null;
    throw err;
  });
  const entry = await own.get(keys.vdiskOwnership(vdiskId));
  return {
    drained: entry?.value.drained ?? 0,
    lastSeq: last?.seq ?? 0,
    lastKind: last === null ? 'none' : decode(last.data, oplogEntry).kind,
  };
}

export async function readDrainState(natsUrl: string, vdiskId: bigint, security: ClientSecurity = clientSecurityFromEnv(process.env)): Promise<DrainState> {
  const nc = await connect({ servers: natsUrl.split(','), timeout: 5_000, ...securityOptions(security) });
  try {
    // No account check up front: it fails outright while JetStream re-elects after a fault.
    const jsm = await jetstreamManager(nc, { timeout: 5_000, checkAPI: false });
    return await drainStateOver(jsm, await openBucket(nc, buckets.own, vdiskOwnership), vdiskId);
  } finally {
    await nc.close();
  }
}

/** Drain state samples taken in the background, each with the Date.now() time it was read. */
export interface DrainSampler {
  readonly samples: Array<DrainState & { atMs: number }>;
  /** Stops sampling; resolves once the last read has ended and the connection is closed. */
  stop(): Promise<void>;
}

/** Reads the vDisk's drain state every `intervalMs` over one connection, until stopped. */
export async function sampleDrain(natsUrl: string, vdiskId: bigint, intervalMs = 200): Promise<DrainSampler> {
  const nc = await connect({ servers: natsUrl.split(','), timeout: 5_000, maxReconnectAttempts: -1, reconnectTimeWait: 200, ...envSecurityOptions() });
  const jsm = await jetstreamManager(nc, { timeout: 2_000, checkAPI: false });
  const own = await openBucket(nc, buckets.own, vdiskOwnership);
  const samples: Array<DrainState & { atMs: number }> = [];
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      try {
        samples.push({ atMs: Date.now(), ...(await drainStateOver(jsm, own, vdiskId)) });
      } catch {
        // a sample lost (e.g. while the connection moves to another server)
      }
      await sleep(intervalMs);
    }
  })();
  return {
    samples,
    stop: async () => {
      stopped = true;
      await loop;
      await nc.close();
    },
  };
}

/**
 * Waits until everything written to the vDisk is drained: `drained` reaches the
 * oplog's last sequence, or the one before it when the last message is a takeover
 * marker (drain never needs to cover a marker). Returns the state it saw. It
 * connects as `security` (a secure cluster's admin; anonymous by default).
 */
export async function waitForDrained(natsUrl: string, vdiskId: bigint, timeoutMs: number, security: ClientSecurity = clientSecurityFromEnv(process.env)): Promise<DrainState> {
  let seen: DrainState | undefined;
  try {
    return await waitFor(
      `vdisk ${vdiskId} to drain its oplog`,
      timeoutMs,
      async () => {
        seen = await readDrainState(natsUrl, vdiskId, security);
        const needed = seen.lastKind === 'marker' ? seen.lastSeq - 1 : seen.lastSeq;
        return seen.lastSeq > 0 && seen.drained >= needed ? seen : false;
      },
      // A server of a cluster under a fault may refuse the look for a moment.
      { intervalMs: 250, retryIf: isConnectionError },
    );
  } catch (err) {
    throw new Error(`${(err as Error).message} (last seen: ${JSON.stringify(seen)})`);
  }
}

/** The ownership record of a vDisk (`own`, `vdisk.<id>`), or undefined before its first I/O. */
export async function readOwnership(natsUrl: string, vdiskId: bigint, security: ClientSecurity = clientSecurityFromEnv(process.env)): Promise<VdiskOwnership | undefined> {
  const nc = await connect({ servers: natsUrl.split(','), timeout: 5_000, ...securityOptions(security) });
  try {
    const own = await openBucket(nc, buckets.own, vdiskOwnership);
    return (await own.get(keys.vdiskOwnership(vdiskId)))?.value;
  } finally {
    await nc.close();
  }
}

/** The id in `strata vdisk create`'s answer: `vdisk bench created (id 123, …)`. */
export function createdId(text: string): bigint {
  const id = /\(id (\d+)/.exec(text)?.[1];
  if (id === undefined) throw new Error(`could not read the id from: ${text}`);
  return BigInt(id);
}
