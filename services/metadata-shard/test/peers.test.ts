// Counting live shards from their heartbeats, on this shard's own clock: a record's
// silence is measured from when its revision was first seen here (never from the
// sender's timestamps), a peer is live for three of its own intervals after its last
// new revision, and this shard never counts itself among its peers.
import { livePeers, observePeer, observeRevision, shardHeartbeat, type PeerObservation } from '../src/peers';

const beat = (partitions: number[], intervalMs = 500) => ({ atMs: 1_700_000_000_000, partitions, intervalMs });

describe('shard liveness', () => {
  it('keeps the first-seen time while the revision stays, and restarts it when the revision moves', () => {
    const first = observeRevision(undefined, 7, 100);
    expect(first).toEqual({ revision: 7, sinceMs: 100 });
    expect(observeRevision(first, 7, 900)).toBe(first);
    expect(observeRevision(first, 8, 900)).toEqual({ revision: 8, sinceMs: 900 });
  });

  it('counts a peer live for three of its intervals after its last new revision, whatever its wall clock says', () => {
    const obs = new Map<string, PeerObservation>();
    obs.set('md-2', observePeer(undefined, 10, beat([1, 2, 3]), 1_000));
    // A far-future atMs changes nothing: only our own clock counts.
    obs.set('md-3', observePeer(undefined, 11, { ...beat([]), atMs: 9_999_999_999_999 }, 0));
    expect(livePeers(obs, 'md-1', 2_500)).toEqual(new Map([['md-2', 3]]));
    expect(livePeers(obs, 'md-1', 2_501)).toEqual(new Map());
    obs.set('md-2', observePeer(obs.get('md-2'), 12, beat([1, 2]), 2_400));
    expect(livePeers(obs, 'md-1', 3_000)).toEqual(new Map([['md-2', 2]]));
  });

  it('uses the sender’s own interval, and never counts itself', () => {
    const obs = new Map<string, PeerObservation>([
      ['md-1', observePeer(undefined, 1, beat([0]), 0)],
      ['slow', observePeer(undefined, 2, beat([], 5_000), 0)],
    ]);
    expect([...livePeers(obs, 'md-1', 14_000).keys()]).toEqual(['slow']);
  });

  it('validates the heartbeat record: partitions within range, a bounded interval', () => {
    expect(shardHeartbeat.safeParse(beat([0, 15])).success).toBe(true);
    expect(shardHeartbeat.safeParse(beat([16])).success).toBe(false);
    expect(shardHeartbeat.safeParse(beat([], 0)).success).toBe(false);
    expect(shardHeartbeat.safeParse(beat([], 3_600_000)).success).toBe(false);
    expect(shardHeartbeat.safeParse({ ...beat([]), extra: 1 }).success).toBe(false);
  });
});
