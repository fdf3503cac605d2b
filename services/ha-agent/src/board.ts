// What an agent has heard of the other agents' heartbeats (strata.ha.hb.*): when
// each last beat, on this process's monotonic clock, and the highest master epoch
// any of them has announced.
import type { HaHeartbeat } from '@strata/proto';

export interface Heard {
  atMs: number;
  beat: HaHeartbeat;
}

export class HeartbeatBoard {
  private readonly heard = new Map<string, Heard>();
  /** The highest master epoch seen in a heartbeat or an order. */
  highestEpoch = 0;

  constructor(
    private readonly me: string,
    private readonly now: () => number,
  ) {}

  hear(beat: HaHeartbeat): void {
    this.heard.set(beat.host, { atMs: this.now(), beat });
    if (beat.master) this.highestEpoch = Math.max(this.highestEpoch, beat.haEpoch);
  }

  get(host: string): Heard | undefined {
    return this.heard.get(host);
  }

  /** The host whose heartbeats say it is the master at `haEpoch`, if heard. */
  masterAt(haEpoch: number): string | undefined {
    for (const [host, h] of this.heard) if (h.beat.master && h.beat.haEpoch === haEpoch) return host;
    return undefined;
  }

  /** When a heartbeat of another agent last arrived, if ever. */
  lastHeardOther(): number | undefined {
    let last: number | undefined;
    for (const [host, h] of this.heard) if (host !== this.me && (last === undefined || h.atMs > last)) last = h.atMs;
    return last;
  }

  /** Other hosts heard within `withinMs`, most recently heard first. */
  reachable(withinMs: number): string[] {
    const now = this.now();
    return [...this.heard]
      .filter(([host, h]) => host !== this.me && now - h.atMs < withinMs && !h.beat.isolated)
      .sort((a, b) => b[1].atMs - a[1].atMs)
      .map(([host]) => host);
  }
}
