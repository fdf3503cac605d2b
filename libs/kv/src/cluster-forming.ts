// Creating a replicated stream or bucket while a NATS cluster is still forming (a
// cold start, a server restarting) fails for a while with "no suitable peers for
// placement": the meta group has a leader but not yet enough peers. Such failures,
// and timeouts of the request, pass once the cluster has formed, so creation is
// retried for a bounded time instead of failing the actor's start.
import { setTimeout as sleep } from 'node:timers/promises';
import { jetstreamManager, type StreamConfig } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { ErrorCode, StrataError } from '@strata/errors';

/** JetStream API codes that mean "the cluster has not formed yet". */
const NOT_FORMED_CODES = new Set([
  10005, // no suitable peers for placement
  10023, // insufficient resources
  10008, // JetStream cluster temporarily unavailable
]);

/** Whether `err` is a creation failure that passes once the cluster has formed. */
export function isClusterForming(err: unknown): boolean {
  // JetStreamApiError's code is the API's err_code.
  const e = err as { code?: unknown; name?: unknown; message?: unknown };
  if (typeof e?.code === 'number' && NOT_FORMED_CODES.has(e.code)) return true;
  return e?.name === 'TimeoutError' || (typeof e?.message === 'string' && /no suitable peers for placement|timeout/i.test(e.message));
}

export interface FormingRetry {
  /** Give up after this long (default 30 s). */
  deadlineMs?: number;
  /** Pause between attempts (default 250 ms). */
  pauseMs?: number;
}

/**
 * Runs `create` until it succeeds, fails otherwise than by a cluster still forming,
 * or `deadlineMs` has passed (then UNAVAILABLE naming `what` and the last error).
 */
export async function whileClusterForms<T>(what: string, create: () => Promise<T>, options: FormingRetry = {}): Promise<T> {
  const deadlineMs = options.deadlineMs ?? 30_000;
  const deadline = Date.now() + deadlineMs;
  for (;;) {
    try {
      return await create();
    } catch (err) {
      if (!isClusterForming(err)) throw err;
      if (Date.now() >= deadline) {
        throw new StrataError(ErrorCode.UNAVAILABLE, `${what}: the NATS cluster has not formed after ${deadlineMs} ms: ${(err as Error).message}`, { cause: err });
      }
      await sleep(options.pauseMs ?? 250);
    }
  }
}

/**
 * Creates stream `config.name` when missing (waiting for a forming cluster, above);
 * another process creating it meanwhile is fine.
 */
export async function ensureStream(nc: NatsConnection, config: Partial<StreamConfig> & { name: string }): Promise<void> {
  const jsm = await jetstreamManager(nc);
  try {
    await jsm.streams.info(config.name);
    return;
  } catch {
    // Missing (or not answering yet): create it.
  }
  try {
    await whileClusterForms(`creating stream ${config.name}`, () => jsm.streams.add(config));
  } catch (err) {
    await jsm.streams.info(config.name).catch(() => {
      throw err;
    });
  }
}

/**
 * Whether `err` is a read that failed because the stream has no leader at the moment
 * (JetStream electing one, after a server was lost or a partition healed): "JetStream
 * system temporarily unavailable" (10008), or no responder for the leader's message
 * get. Such a read succeeds once the election is over, within seconds.
 */
export function isElecting(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown };
  if (e?.code === 10008) return true;
  return typeof e?.message === 'string' && /temporarily unavailable|no responders/i.test(e.message);
}

/** Runs `read` again while it fails with isElecting, for at most `deadlineMs` (default 3 s); then its last error. */
export function whileElecting<T>(read: () => Promise<T>, deadlineMs = 3_000, pauseMs = 200): Promise<T> {
  return retryWhile(isElecting, read, deadlineMs, pauseMs);
}

/**
 * Whether `err` (or an error it wraps) says the request reached no server at all: "no
 * responders", which JetStream's publish reports as "jetstream is not enabled". It is
 * what a write to a stream just created, or electing its leader, gets while the
 * stream's subjects are not yet known to the server the client reached. Nothing was
 * stored, so the write may be sent again as it was, conditions and all.
 */
export function isUndelivered(err: unknown): boolean {
  for (let e = err as { isNoResponders?: unknown; name?: unknown; cause?: unknown } | undefined, depth = 0; e && depth < 5; e = e.cause as typeof e, depth++) {
    if (typeof e.isNoResponders === 'function' && (e.isNoResponders as () => boolean)()) return true;
    if (e.name === 'NoResponders') return true;
  }
  return false;
}

/** Sends `write` again while it fails with isUndelivered, for at most `deadlineMs` (default 3 s); then its last error. */
export function whileUndelivered<T>(write: () => Promise<T>, deadlineMs = 3_000, pauseMs = 100): Promise<T> {
  return retryWhile(isUndelivered, write, deadlineMs, pauseMs);
}

/** Runs `attempt` again, `pauseMs` apart, while it fails with an error `passing` accepts and `deadlineMs` allows; then its last error. */
async function retryWhile<T>(passing: (err: unknown) => boolean, attempt: () => Promise<T>, deadlineMs: number, pauseMs: number): Promise<T> {
  const deadline = Date.now() + deadlineMs;
  for (;;) {
    try {
      return await attempt();
    } catch (err) {
      if (!passing(err) || Date.now() + pauseMs > deadline) throw err;
      await sleep(pauseMs);
    }
  }
}
