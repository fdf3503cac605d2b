// The failure detector's pure core. The config leader feeds it the heartbeats it
// sees (with its own monotonic time) and the nodes' recorded liveness, and asks it
// for verdicts; it never reads a clock or does I/O, so its rules are unit-tested
// with a simulated clock.
//
// Rules:
//  - A node is declared dead when no new heartbeat has been seen for deadTimeoutMs
//    of the leader's own clock. A newly elected leader starts every node's silence
//    count at its election, since it cannot know how long they were silent before.
//  - A dead node is alive again only with a higher incarnation than the one it was
//    declared dead with: a process that was paused and resumes with its old
//    incarnation stays dead until it rejoins.
//  - An alive node whose incarnation grew has restarted; the record is updated.

export interface SeenHeartbeat {
  incarnation: number;
  seq: number;
}

export interface RecordedNode {
  id: bigint;
  liveness: 'unknown' | 'alive' | 'dead';
  incarnation: number;
}

export type Verdict =
  | { kind: 'dead'; id: bigint; incarnation: number; silentMs: number }
  | { kind: 'alive'; id: bigint; incarnation: number; previous: RecordedNode['liveness'] }
  | { kind: 'restarted'; id: bigint; incarnation: number; previousIncarnation: number };

interface Track {
  last: SeenHeartbeat | undefined;
  /** Leader's monotonic time when the last new heartbeat (or the start) was seen. */
  sinceMs: number;
}

export class FailureDetector {
  private readonly tracks = new Map<bigint, Track>();

  constructor(
    private readonly deadTimeoutMs: number,
    private readonly startedAtMs: number,
  ) {}

  /** Records a heartbeat seen at `nowMs`; repeats of the same one do not count. */
  observe(id: bigint, hb: SeenHeartbeat, nowMs: number): void {
    const last = this.tracks.get(id)?.last;
    if (last !== undefined) {
      if (last.incarnation === hb.incarnation && last.seq === hb.seq) return;
      // A lower incarnation is a paused twin of a restarted node: not a sign of life.
      if (hb.incarnation < last.incarnation) return;
    }
    this.tracks.set(id, { last: hb, sinceMs: nowMs });
  }

  /** Forgets a node that was removed from the configuration. */
  forget(id: bigint): void {
    this.tracks.delete(id);
  }

  /** The verdicts that change what is recorded, at time `nowMs`. */
  evaluate(nodes: readonly RecordedNode[], nowMs: number): Verdict[] {
    const verdicts: Verdict[] = [];
    for (const node of nodes) {
      const track = this.tracks.get(node.id) ?? { last: undefined, sinceMs: this.startedAtMs };
      const hb = track.last;
      const silentMs = nowMs - track.sinceMs;
      const fresh = silentMs < this.deadTimeoutMs;
      if (node.liveness === 'dead') {
        if (hb !== undefined && fresh && hb.incarnation > node.incarnation) {
          verdicts.push({ kind: 'alive', id: node.id, incarnation: hb.incarnation, previous: 'dead' });
        }
        continue;
      }
      if (!fresh) {
        // A registered node that has never sent a heartbeat stays 'unknown': it was
        // never alive, so there is nothing to fail over and nothing to announce.
        if (node.liveness === 'alive' || hb !== undefined) {
          verdicts.push({ kind: 'dead', id: node.id, incarnation: Math.max(node.incarnation, hb?.incarnation ?? 0), silentMs });
        }
        continue;
      }
      if (hb === undefined) continue;
      if (node.liveness === 'unknown') verdicts.push({ kind: 'alive', id: node.id, incarnation: hb.incarnation, previous: 'unknown' });
      else if (hb.incarnation > node.incarnation) {
        verdicts.push({ kind: 'restarted', id: node.id, incarnation: hb.incarnation, previousIncarnation: node.incarnation });
      }
    }
    return verdicts;
  }
}
