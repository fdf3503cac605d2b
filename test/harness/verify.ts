// Reads through a real NBD client (qemu-io) and requests over NATS, with their
// failures told apart, so that a wait retries what is not there yet and never a
// wrong answer:
//  - NotReady: qemu-io could not open the device (nothing listening, a failed NBD
//    handshake, an export not offered yet): not one byte was read or written;
//  - WrongData: a read returned other bytes than the pattern it checks for;
//  - IoFailed: the device opened, but a command failed (EIO), qemu-io timed out, or
//    it exited non-zero for another reason.
// Only NotReady is retried by waitFor by default; tests that poll a NATS service pass
// isUnavailable or isConnectionError as its retryIf.
import { ErrorCode, isStrataError } from '@strata/errors';
import { run } from './processes';
import type { WrittenBlock } from './strata';
import { NotReady, isNotReady } from './util';

export { NotReady, isNotReady };

/** A read returned other bytes than the ones written: never retried. */
export class WrongData extends Error {
  override readonly name = 'WrongData';
}

/** An NBD command failed after the device opened (an I/O error, a hang, a crash of the client). */
export class IoFailed extends Error {
  override readonly name = 'IoFailed';
}

/**
 * qemu-io's lines for a device it could not open (`can't open device …: Failed to
 * connect …: Connection refused`, `… Failed to read initial magic`, `Requested export
 * not available`): the gateway is not serving yet.
 */
const CANNOT_OPEN = /can't open device|Could not open|Failed to connect/;
const WRONG_PATTERN = /Pattern verification failed at offset \d+, \d+ bytes/;

/** A short form of qemu-io's commands for an error message. */
function describe(commands: readonly string[]): string {
  return `${commands.slice(0, 3).join(' ; ')}${commands.length > 3 ? ` … (${commands.length} commands)` : ''}`;
}

/**
 * Runs qemu-io with `-c` commands against `uri`; resolves with its output when every
 * command succeeded. Throws WrongData, NotReady or IoFailed (see the top of this file).
 */
export async function qemuIoChecked(uri: string, commands: readonly string[], timeoutMs = 60_000): Promise<string> {
  const args = ['-f', 'raw', uri, ...commands.flatMap((c) => ['-c', c])];
  const { code, stdout, stderr } = await run('qemu-io', args, { timeoutMs });
  const out = stdout + stderr;
  const what = `qemu-io ${uri} ${describe(commands)}`;
  const wrong = WRONG_PATTERN.exec(out);
  if (wrong !== null) throw new WrongData(`${what}: ${wrong[0]}: ${out.slice(-1500)}`);
  if (code === 'SIGKILL') throw new IoFailed(`${what}: no answer within ${timeoutMs} ms (killed): ${out.slice(-1500)}`);
  if (code !== 0 && CANNOT_OPEN.test(out)) throw new NotReady(`${what}: ${out.trim().slice(-500)}`);
  if (code !== 0 || /error|failed/i.test(out)) throw new IoFailed(`${what} failed (${code}): ${out.slice(-1500)}`);
  return out;
}

/** The qemu-io command that checks one written block. */
export function readCommand(b: WrittenBlock): string {
  return `read -P ${b.pattern} ${b.offset} ${b.length}`;
}

/**
 * Reads back every block through `uri` with qemu-io's pattern check, `perRun`
 * commands per qemu-io run (each run bounded by `runTimeoutMs`). Throws as
 * qemuIoChecked does: a wrong pattern is WrongData, an EIO IoFailed.
 */
export async function readBack(uri: string, blocks: readonly WrittenBlock[], runTimeoutMs = 60_000, perRun = 200): Promise<void> {
  const sorted = [...blocks].sort((a, b) => a.offset - b.offset);
  for (let i = 0; i < sorted.length; i += perRun) {
    await qemuIoChecked(uri, sorted.slice(i, i + perRun).map(readCommand), runTimeoutMs);
  }
}

/** A request over the bus or to KV that nobody could answer yet: UNAVAILABLE (no responder, no leader) or TIMEOUT. */
export function isUnavailable(err: unknown): boolean {
  return isStrataError(err, ErrorCode.UNAVAILABLE) || isStrataError(err, ErrorCode.TIMEOUT);
}

/** nats.js's errors for a server that cannot be reached or did not answer (by name: a test may load two copies of the library). */
const NATS_TRANSPORT_ERRORS = new Set(['ConnectionError', 'ClosedConnectionError', 'TimeoutError', 'NoResponders', 'RequestError']);

/**
 * A connection-type failure: NotReady, a bus or KV request nobody answered yet, a
 * NATS connection refused or lost, a JetStream API answering 503 (no leader or no
 * quorum yet, as right after a server restart), a TCP connection refused or reset.
 */
export function isConnectionError(err: unknown): boolean {
  if (isNotReady(err) || isUnavailable(err)) return true;
  const e = err as { name?: unknown; status?: unknown; code?: unknown } | null;
  if (e === null || typeof e !== 'object') return false;
  if (typeof e.name === 'string' && NATS_TRANSPORT_ERRORS.has(e.name)) return true;
  if (e.name === 'JetStreamApiError' && e.status === 503) return true;
  return e.code === 'ECONNREFUSED' || e.code === 'ECONNRESET';
}

/**
 * readSpanFile's error for a line that does not parse. The processes append one line
 * per write(2), but a read racing an append may see the last line half written:
 * that is "not yet". A file that stays broken still fails the wait, at its timeout.
 */
export function isLineBeingWritten(err: unknown): boolean {
  return err instanceof Error && /: not valid JSON \(/.test(err.message);
}
