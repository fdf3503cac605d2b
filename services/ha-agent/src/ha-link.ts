// The HA network and the `ha` bucket as an agent reaches them: requests to other
// agents, which agents it can hear, and whether it can use the bucket. A test can cut
// both with a fault injector, the `haFaultsFile` setting: a JSON file
// `{"ha": {"n1": ["n3"], "n3": ["n1", "n2"]}, "storage": ["n2"]}` that the agent reads
// every 200 ms. `ha` names, per host, the hosts it cannot reach over the HA network:
// heartbeats from them are dropped, and requests to them fail with UNAVAILABLE at
// once. `storage` names the hosts whose agents cannot reach the `ha` bucket: every
// get, write and delete of theirs (protection state, restart records, power-on leases,
// host records; see guardStorage) fails with UNAVAILABLE, as if their link to
// JetStream were cut, while their HA network stays as `ha` says. What the injector
// does not cut: the agent's watches of the bucket (a real cut would leave its watched
// copies stale; a write on a stale revision fails its compare-and-set), the master
// lease `role.ha` in `own`, the configuration and events. Without the setting, nothing
// is dropped.
import { readFile } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import type { z } from 'zod';
import type { Bus, RequestOptions } from '@strata/bus';
import { ErrorCode, StrataError } from '@strata/errors';
import { subjects, type HaAgentOp } from '@strata/proto';

const POLL_MS = 200;
/**
 * How long a request to an agent keeps being resent while nobody serves its subject
 * (the bus resends "no responders" until the budget is spent): a dead agent must not
 * hold a power-on, and the master's restarts behind it, for the whole budget.
 */
const NO_RESPONDERS_GRACE_MS = 2_000;

/** What the faults file says about one host. */
export interface HostFaults {
  /** Hosts it cannot reach over the HA network. */
  unreachable: Set<string>;
  /** It cannot reach the `ha` bucket. */
  storageCut: boolean;
}

/** Reads the faults file's JSON for host `me` (pure). */
export function faultsOf(json: unknown, me: string): HostFaults {
  const file = (typeof json === 'object' && json !== null ? json : {}) as { ha?: Record<string, unknown>; storage?: unknown };
  const mine = file.ha?.[me];
  return {
    unreachable: new Set(Array.isArray(mine) ? mine.filter((h): h is string => typeof h === 'string') : []),
    storageCut: Array.isArray(file.storage) && file.storage.includes(me),
  };
}

/** The bucket operations a storage fault makes fail (not the watch, see the header). */
const STORAGE_OPS = new Set(['get', 'create', 'update', 'put', 'delete', 'keys']);

export class HaLink {
  private unreachable = new Set<string>();
  private storageCut = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly bus: Bus,
    private readonly me: string,
    private readonly faultsFile: string | undefined,
    private readonly log: { warn(obj: object, msg: string): void },
  ) {}

  async start(): Promise<void> {
    if (this.faultsFile === undefined) return;
    await this.readFaults();
    this.timer = setInterval(() => void this.readFaults(), POLL_MS);
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** Whether this agent can use the `ha` bucket (false only under an injected fault). */
  reachesStorage(): boolean {
    return !this.storageCut;
  }

  /**
   * The bucket, with every get, write and delete failing with UNAVAILABLE while an
   * injected fault cuts this agent off the `ha` bucket.
   */
  guardStorage<B extends object>(bucket: B): B {
    return new Proxy(bucket, {
      get: (target, prop, receiver) => {
        const value: unknown = Reflect.get(target, prop, receiver);
        if (typeof value !== 'function' || !STORAGE_OPS.has(String(prop))) return value;
        return (...args: unknown[]): unknown => {
          if (this.storageCut) return Promise.reject(new StrataError(ErrorCode.UNAVAILABLE, `the ha bucket is unreachable from ${this.me} (injected fault)`));
          return (value as (...a: unknown[]) => unknown).apply(target, args);
        };
      },
    });
  }

  /** Whether this agent can reach `host` over the HA network. */
  reaches(host: string): boolean {
    return !this.unreachable.has(host);
  }

  /**
   * A request to `host`'s agent; UNAVAILABLE at once when the HA network does not reach
   * it, and after NO_RESPONDERS_GRACE_MS of nobody serving it.
   */
  request<S extends z.ZodType>(host: string, op: HaAgentOp, request: unknown, reply: S, options: RequestOptions): Promise<z.output<S>> {
    if (!this.reaches(host)) return Promise.reject(new StrataError(ErrorCode.UNAVAILABLE, `the HA network does not reach ${host} from ${this.me} (injected fault)`));
    const startedAt = performance.now();
    const beforeAttempt = (): void => {
      if (performance.now() - startedAt > NO_RESPONDERS_GRACE_MS) throw new StrataError(ErrorCode.UNAVAILABLE, `the agent of ${host} does not answer (no responders for ${NO_RESPONDERS_GRACE_MS} ms)`);
    };
    return this.bus.request(subjects.haAgent(host, op), request, reply, { ...options, beforeAttempt });
  }

  private async readFaults(): Promise<void> {
    try {
      const text = await readFile(this.faultsFile!, 'utf8');
      const faults = faultsOf(text.trim() === '' ? {} : JSON.parse(text), this.me);
      this.unreachable = faults.unreachable;
      this.storageCut = faults.storageCut;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') [this.unreachable, this.storageCut] = [new Set(), false];
      else this.log.warn({ err, file: this.faultsFile }, 'could not read the HA faults file; keeping the faults as they were');
    }
  }
}
