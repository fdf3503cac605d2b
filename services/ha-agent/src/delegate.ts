// Writes the master cannot make itself (PROTOCOL.md section 12, "Protection state: SET
// and GET"): when its write of the `ha` bucket fails with UNAVAILABLE (its host cannot
// reach the bucket: a storage split), it asks the agents of other hosts, one after
// another, and the first that can make the write does, for the master.
import { ErrorCode, StrataError } from '@strata/errors';

export interface ThroughAgents<T> {
  /** The hosts whose agents may write for the master, best first. */
  helpers: readonly string[];
  /** What is written, for messages: `the protection state of vm 12360`. */
  what: string;
  /** The master's own failure. */
  cause: unknown;
  ask: (host: string) => Promise<T>;
  log?: { warn(obj: object, msg: string): void };
}

/** Asks the helpers in turn; the first answer wins. UNAVAILABLE naming them all when none could. */
export async function throughAgents<T>(o: ThroughAgents<T>): Promise<T> {
  let last: unknown = o.cause;
  for (const host of o.helpers) {
    try {
      return await o.ask(host);
    } catch (err) {
      o.log?.warn({ err, host, what: o.what }, 'an agent could not write for the master');
      last = err;
    }
  }
  const tried = o.helpers.length === 0 ? ' and no other host is alive' : ` and from ${o.helpers.join(', ')}`;
  throw new StrataError(ErrorCode.UNAVAILABLE, `cannot write ${o.what}: the ha bucket is unreachable here${tried}`, { cause: last });
}
