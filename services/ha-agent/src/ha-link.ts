// The HA network as an agent sees it: requests to other agents, and which agents it
// can hear. A test can split it with a fault injector, the `haFaultsFile` setting: a
// JSON file `{"n1": ["n3"], "n3": ["n1", "n2"]}` naming, per host, the hosts it cannot
// reach over the HA network; the agent reads it every 200 ms. Heartbeats from a host
// it cannot reach are dropped, and requests to one fail with UNAVAILABLE at once.
// Storage (JetStream KV) is not affected: this is the HA network split of the VMware
// design's partition scenarios, with storage whole. Without the setting, nothing is
// dropped.
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

export class HaLink {
  private unreachable = new Set<string>();
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
      const faults = text.trim() === '' ? {} : (JSON.parse(text) as Record<string, unknown>);
      const mine = faults[this.me];
      this.unreachable = new Set(Array.isArray(mine) ? mine.filter((h): h is string => typeof h === 'string') : []);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') this.unreachable = new Set();
      else this.log.warn({ err, file: this.faultsFile }, 'could not read the HA faults file; keeping the faults as they were');
    }
  }
}
