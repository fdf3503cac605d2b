// What this controller believes about the nodes that hold its replicas, so that no
// read or drain waits on a node that is hung or dead (a paused process, a node cut
// off): the commonest gray failure. A pure core with an injected clock; the actor
// feeds it the cluster's view (nodes declared dead, heartbeats seen) and the
// controller feeds it the outcome of every replica request.
//
// A node is
//  - dead: the config leader declared it dead;
//  - suspect: its heartbeat has not moved for `suspectAfterMs` while this node's own
//    heartbeat kept moving (so the watch itself is live), or a request to it failed
//    or timed out less than `failureSuspectMs` ago;
//  - healthy otherwise.
// Reads try healthy replicas first (the local one first among them) and suspect or
// dead ones last; drain writes only to extent groups whose replicas are all healthy.
//
// Hedging: a replica read that has not answered within hedgeDelayMs() is sent to the
// next replica as well. The delay follows recent replica latency the way TCP's
// retransmission timeout follows the round trip (smoothed mean + 4 x mean deviation),
// clamped between a floor (a read served from the page cache still gets its turn) and
// a ceiling (a hung replica costs at most that much).

export type NodeState = 'healthy' | 'suspect' | 'dead';

export interface ReplicaHealthSettings {
  /** This controller's node: its replica is read first among healthy ones. */
  localNode: string;
  /** A node whose heartbeat has not moved for this long is suspect. */
  suspectAfterMs: number;
  /** A node a request failed against stays suspect this long. */
  failureSuspectMs: number;
  hedgeFloorMs: number;
  hedgeCeilingMs: number;
}

interface HeartbeatSeen {
  /** Heartbeat sequence (with its incarnation) last seen, and when it last changed, by our clock. */
  mark: string;
  movedAtMs: number;
}

const LATENCY_GAIN = 1 / 8;
const DEVIATION_GAIN = 1 / 4;

export class ReplicaHealth {
  private dead = new Set<string>();
  private readonly heartbeats = new Map<string, HeartbeatSeen>();
  private readonly failedUntil = new Map<string, number>();
  private meanMs: number | undefined;
  private deviationMs = 0;

  constructor(
    readonly settings: ReplicaHealthSettings,
    private readonly now: () => number,
  ) {}

  /** The nodes the config leader has declared dead (replaces the previous set). */
  setDead(nodes: Iterable<string>): void {
    this.dead = new Set(nodes);
  }

  /** A heartbeat of `node` was seen: `mark` changes whenever the node renews it. */
  heartbeat(node: string, mark: string): void {
    const seen = this.heartbeats.get(node);
    if (seen !== undefined && seen.mark === mark) return;
    this.heartbeats.set(node, { mark, movedAtMs: this.now() });
  }

  /** A request to `node` answered after `latencyMs` (reads feed the hedge delay). */
  succeeded(node: string, latencyMs?: number): void {
    this.failedUntil.delete(node);
    if (latencyMs === undefined) return;
    if (this.meanMs === undefined) {
      this.meanMs = latencyMs;
      this.deviationMs = latencyMs / 2;
      return;
    }
    this.deviationMs += DEVIATION_GAIN * (Math.abs(latencyMs - this.meanMs) - this.deviationMs);
    this.meanMs += LATENCY_GAIN * (latencyMs - this.meanMs);
  }

  /** A request to `node` failed or timed out: it is suspect for a while. */
  failed(node: string): void {
    this.failedUntil.set(node, this.now() + this.settings.failureSuspectMs);
  }

  state(node: string): NodeState {
    if (this.dead.has(node)) return 'dead';
    const until = this.failedUntil.get(node);
    if (until !== undefined && until > this.now()) return 'suspect';
    if (this.heartbeatSilent(node)) return 'suspect';
    return 'healthy';
  }

  /** Whether drain may write to `node` (and placement put a new replica there). */
  usable(node: string): boolean {
    return this.state(node) === 'healthy';
  }

  /** `replicas` in the order to read them: healthy ones (the local one first), then suspect, then dead. */
  order<T extends { node: string }>(replicas: readonly T[]): T[] {
    const rank = (r: T): number => {
      const s = this.state(r.node);
      if (s === 'healthy') return r.node === this.settings.localNode ? 0 : 1;
      return s === 'suspect' ? 2 : 3;
    };
    return [...replicas].sort((a, b) => rank(a) - rank(b));
  }

  /** How long a replica read may go unanswered before the next replica is asked too. */
  hedgeDelayMs(): number {
    const { hedgeFloorMs, hedgeCeilingMs } = this.settings;
    if (this.meanMs === undefined) return hedgeCeilingMs;
    return Math.min(hedgeCeilingMs, Math.max(hedgeFloorMs, this.meanMs + 4 * this.deviationMs));
  }

  /**
   * Silent for suspectAfterMs while our own heartbeat moved within it. If ours has
   * not moved either, the watch that brings heartbeats is what stalled: no verdict.
   */
  private heartbeatSilent(node: string): boolean {
    const seen = this.heartbeats.get(node);
    const own = this.heartbeats.get(this.settings.localNode);
    if (seen === undefined || own === undefined || node === this.settings.localNode) return false;
    const now = this.now();
    const ownFresh = now - own.movedAtMs < this.settings.suspectAfterMs;
    return ownFresh && now - seen.movedAtMs >= this.settings.suspectAfterMs;
  }
}
