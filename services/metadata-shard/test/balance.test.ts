// The balancing rule of the metadata shards, with simulated inputs: the fair share,
// contention only for free or expired partitions and only up to the share (free ones
// first, expired ones freed by compare-and-set), availability over balance for a
// partition left unserved a whole extra TTL, releases only to peers that are short,
// and giving up a contention that another holder renews. Then a deterministic
// simulation of whole shards ticking against shared lease records proves the
// outcomes: one shard takes all 16, a second takes about half, the survivor of a
// kill takes everything back within about one TTL, a clean stop hands over at once,
// and no partition is ever held by two shards.
import { observePeer, observeRevision, livePeers, type PeerObservation } from '../src/peers';
import { decideBalance, fairShare, unservedForMs, type BalanceInput, type PartitionRecord } from '../src/balance';
import type { Observation } from '@strata/lease';
import { seededRandom } from '../../../test/harness/random';

const P = 16;
const ttlMs = 1_500;

function records(fill: (p: number) => Partial<PartitionRecord> = () => ({})): PartitionRecord[] {
  return Array.from({ length: P }, (_, p) => ({ partition: p, holder: '', revision: 0, silentMs: 0, ...fill(p) }));
}

function input(over: Partial<BalanceInput>): BalanceInput {
  return { me: 'md-1', partitionCount: P, ttlMs, peers: new Map(), held: new Set(), contending: new Set(), records: records(), ...over };
}

const range = (from: number, to: number): number[] => Array.from({ length: to - from }, (_, i) => from + i);

describe('fair share', () => {
  it('is ceil(P / live shards)', () => {
    expect(fairShare(16, 1)).toBe(16);
    expect(fairShare(16, 2)).toBe(8);
    expect(fairShare(16, 3)).toBe(6);
    expect(fairShare(16, 5)).toBe(4);
    expect(fairShare(16, 17)).toBe(1);
    expect(() => fairShare(16, 0)).toThrow(/assertion/);
  });

  it('counts a lease as unserved when free at once, and when held only after a silent TTL', () => {
    expect(unservedForMs({ partition: 0, holder: '', revision: 3, silentMs: 10 }, ttlMs)).toBe(10);
    expect(unservedForMs({ partition: 0, holder: 'x', revision: 3, silentMs: ttlMs - 1 }, ttlMs)).toBe(-1);
    expect(unservedForMs({ partition: 0, holder: 'x', revision: 3, silentMs: ttlMs + 40 }, ttlMs)).toBe(40);
  });
});

describe('decideBalance', () => {
  it('a lone shard contends for every free partition', () => {
    const d = decideBalance(input({}));
    expect(d.share).toBe(16);
    expect(d.acquire.map((a) => a.partition).sort((a, b) => a - b)).toEqual(range(0, 16));
    expect(d.acquire.every((a) => a.reapRevision === undefined)).toBe(true);
    expect(d.release).toEqual([]);
  });

  it('contends only up to its share, counting what it holds and contends for', () => {
    const d = decideBalance(input({ peers: new Map([['md-2', 0]]), held: new Set([0, 1, 2]), contending: new Set([3]) }));
    expect(d.share).toBe(8);
    expect(d.acquire).toHaveLength(4);
    for (const a of d.acquire) expect([0, 1, 2, 3]).not.toContain(a.partition);
  });

  it('never contends for a partition whose holder renews it', () => {
    const d = decideBalance(input({ records: records(() => ({ holder: 'md-2', revision: 9, silentMs: ttlMs - 1 })) }));
    expect(d.acquire).toEqual([]);
  });

  it('frees an expired lease by compare-and-set on the revision it watched, free ones first', () => {
    const recs = records((p) => (p < 8 ? { holder: 'dead', revision: 100 + p, silentMs: ttlMs } : { holder: '', revision: 200 + p, silentMs: 0 }));
    const d = decideBalance(input({ peers: new Map([['md-2', 0]]), records: recs }));
    expect(d.share).toBe(8);
    // Eight free ones exist: they come first.
    expect(d.acquire.map((a) => a.partition).sort((a, b) => a - b)).toEqual(range(8, 16));
    const alone = decideBalance(input({ records: recs }));
    expect(alone.acquire).toHaveLength(16);
    expect(alone.acquire.filter((a) => a.partition < 8)).toEqual(range(0, 8).map((p) => expect.objectContaining({ partition: p, reapRevision: 100 + p })));
  });

  it('spreads two shards starting together over different partitions first', () => {
    const a = decideBalance(input({ me: 'md-1', peers: new Map([['md-2', 0]]) }));
    const b = decideBalance(input({ me: 'md-2', peers: new Map([['md-1', 0]]) }));
    expect(a.acquire[0]?.partition).not.toBe(b.acquire[0]?.partition);
  });

  it('takes a partition unserved for a further TTL even at its share: availability beats balance', () => {
    const held = new Set(range(0, 8));
    const recs = records((p) => (held.has(p) ? { holder: 'md-1', revision: p + 1, silentMs: 0 } : p === 8 ? { holder: 'stuck', revision: 50, silentMs: 2 * ttlMs } : { holder: 'md-2', revision: 60 + p, silentMs: 0 }));
    const d = decideBalance(input({ peers: new Map([['md-2', 7]]), held, records: recs }));
    expect(d.acquire).toEqual([{ partition: 8, reapRevision: 50 }]);
    // Merely expired (not yet a further TTL): left to a shard below its share.
    recs[8] = { partition: 8, holder: 'stuck', revision: 50, silentMs: ttlMs + 10 };
    expect(decideBalance(input({ peers: new Map([['md-2', 7]]), held, records: recs })).acquire).toEqual([]);
  });

  it('releases the excess only as far as live peers fall short of their share', () => {
    const held = new Set(range(0, 16));
    const mine = records(() => ({ holder: 'md-1', revision: 1 }));
    const joined = decideBalance(input({ peers: new Map([['md-2', 0]]), held, records: mine }));
    expect(joined.release).toHaveLength(8);
    const three = decideBalance(input({ peers: new Map([['md-2', 5], ['md-3', 0]]), held, records: mine }));
    expect(three.share).toBe(6);
    // Excess 10, shortfall 1 + 6 = 7.
    expect(three.release).toHaveLength(7);
  });

  it('does not hand partitions to a dead peer that is still counted live (it reports what it held)', () => {
    const held = new Set(range(0, 16));
    const d = decideBalance(input({ peers: new Map([['md-2', 8]]), held, records: records(() => ({ holder: 'md-1', revision: 1 })) }));
    expect(d.release).toEqual([]);
  });

  it('gives up a contention that another holder now renews, and keeps one that is still free', () => {
    const recs = records((p) => (p === 3 ? { holder: 'md-2', revision: 7, silentMs: 100 } : {}));
    const d = decideBalance(input({ contending: new Set([3, 4]), records: recs }));
    expect(d.abandon).toEqual([3]);
    expect(d.acquire.map((a) => a.partition)).not.toContain(4);
  });

  it('treats a record naming itself that it does not hold (an earlier incarnation) like anyone else’s', () => {
    const recs = records(() => ({ holder: 'md-1', revision: 5, silentMs: 10 }));
    expect(decideBalance(input({ records: recs })).acquire).toEqual([]);
    const expired = records(() => ({ holder: 'md-1', revision: 5, silentMs: ttlMs }));
    expect(decideBalance(input({ records: expired })).acquire).toHaveLength(16);
  });
});

// ---- A deterministic simulation of whole shards -----------------------------------------

const tickMs = 500;


interface SimShard {
  name: string;
  alive: boolean;
  held: Set<number>;
  contending: Set<number>;
  leaseObs: Map<number, Observation>;
  peerObs: Map<string, PeerObservation>;
}

class World {
  nowMs = 0;
  seq = 0;
  readonly leases: { holder: string; revision: number }[] = Array.from({ length: P }, () => ({ holder: '', revision: 0 }));
  readonly hb = new Map<string, { revision: number; partitions: number[] }>();
  readonly shards: SimShard[] = [];

  constructor(readonly random: () => number) {}

  add(name: string): SimShard {
    const s: SimShard = { name, alive: true, held: new Set(), contending: new Set(), leaseObs: new Map(), peerObs: new Map() };
    this.shards.push(s);
    return s;
  }

  write(p: number, holder: string): void {
    this.leases[p] = { holder, revision: ++this.seq };
  }

  /** The Lease of a contender takes a free record at once (a held one is freed by the balancer first). */
  resolve(s: SimShard): void {
    for (const p of [...s.contending]) {
      if (this.leases[p]!.holder === '') {
        this.write(p, s.name);
        s.contending.delete(p);
        s.held.add(p);
      }
    }
  }

  step(): void {
    this.nowMs += tickMs;
    const live = this.shards.filter((s) => s.alive).sort(() => this.random() - 0.5);
    for (const s of live) {
      // Lease renewals: a holder that finds another name in its record has lost it.
      for (const p of [...s.held]) {
        if (this.leases[p]!.holder === s.name) this.write(p, s.name);
        else s.held.delete(p);
      }
      this.resolve(s);
      this.hb.set(s.name, { revision: ++this.seq, partitions: [...s.held] });
      for (const [name, beat] of this.hb) s.peerObs.set(name, observePeer(s.peerObs.get(name), beat.revision, { atMs: 0, partitions: beat.partitions, intervalMs: tickMs }, this.nowMs));
      for (const name of [...s.peerObs.keys()]) if (!this.hb.has(name)) s.peerObs.delete(name);
      const recs = this.leases.map((l, p): PartitionRecord => {
        const o = observeRevision(s.leaseObs.get(p), l.revision, this.nowMs);
        s.leaseObs.set(p, o);
        return { partition: p, holder: l.holder, revision: l.revision, silentMs: this.nowMs - o.sinceMs };
      });
      const d = decideBalance({ me: s.name, partitionCount: P, ttlMs, peers: livePeers(s.peerObs, s.name, this.nowMs), held: s.held, contending: s.contending, records: recs });
      for (const p of d.abandon) s.contending.delete(p);
      for (const p of d.release) {
        s.held.delete(p);
        this.write(p, '');
      }
      for (const a of d.acquire) {
        if (a.reapRevision !== undefined) {
          if (this.leases[a.partition]!.revision !== a.reapRevision) continue;
          this.write(a.partition, '');
        }
        s.contending.add(a.partition);
      }
      this.resolve(s);
    }
    this.checkExclusive();
  }

  /** No partition is held by two shards that believe they hold it. */
  checkExclusive(): void {
    const owners = new Map<number, string>();
    for (const s of this.shards.filter((x) => x.alive)) {
      for (const p of s.held) {
        expect(owners.get(p)).toBeUndefined();
        owners.set(p, s.name);
        expect(this.leases[p]!.holder).toBe(s.name);
      }
    }
  }

  kill(s: SimShard): void {
    s.alive = false;
  }

  /** SIGTERM: leave the live count, then release everything. */
  stopCleanly(s: SimShard): void {
    s.alive = false;
    this.hb.delete(s.name);
    for (const p of s.held) this.write(p, '');
    s.held.clear();
  }

  /** Steps until `done` holds; returns the simulated ms it took. */
  until(what: string, maxMs: number, done: () => boolean): number {
    const start = this.nowMs;
    while (!done()) {
      if (this.nowMs - start > maxMs) throw new Error(`simulation: no ${what} within ${maxMs} ms`);
      this.step();
    }
    return this.nowMs - start;
  }

  served(): number {
    return this.shards.filter((s) => s.alive).reduce((n, s) => n + s.held.size, 0);
  }
}

describe.each([1, 2, 3, 42, 1234])('simulated shards (seed %i)', (seed) => {
  it('one shard takes all 16; a second takes about half; the survivor of a kill takes all back within about one TTL', () => {
    const w = new World(seededRandom(seed));
    const a = w.add('md-1');
    w.until('lone shard holding everything', 2 * tickMs, () => a.held.size === P);

    const b = w.add('md-2');
    w.until('a balanced pair', 6 * tickMs, () => a.held.size === 8 && b.held.size === 8);
    // It stays balanced, without churn.
    const before = [...a.held].sort();
    for (let i = 0; i < 10; i++) w.step();
    expect([...a.held].sort()).toEqual(before);
    expect(w.served()).toBe(P);

    w.kill(a);
    const takeoverMs = w.until('takeover by the survivor', 3 * ttlMs, () => b.held.size === P);
    expect(takeoverMs).toBeLessThanOrEqual(ttlMs + 2 * tickMs);
  });

  it('three shards split 16 as 6/5/5 or 6/6/4 and always serve all of it; a clean stop hands over within a tick or two', () => {
    const w = new World(seededRandom(seed));
    const s = [w.add('md-1'), w.add('md-2'), w.add('md-3')];
    w.until('three shards serving everything', 10 * tickMs, () => w.served() === P && s.every((x) => x.held.size >= 4 && x.held.size <= 6));
    for (let i = 0; i < 10; i++) {
      w.step();
      expect(w.served()).toBe(P);
    }
    w.stopCleanly(s[0]!);
    const handoverMs = w.until('hand-over after a clean stop', 3 * ttlMs, () => w.served() === P);
    expect(handoverMs).toBeLessThanOrEqual(2 * tickMs);
    w.until('the two left balanced', 6 * tickMs, () => s[1]!.held.size === 8 && s[2]!.held.size === 8);
  });

  it('two survivors of a kill among three take its partitions within about one TTL, then hold 8 each', () => {
    const w = new World(seededRandom(seed));
    const s = [w.add('md-1'), w.add('md-2'), w.add('md-3')];
    w.until('three shards serving everything', 10 * tickMs, () => w.served() === P && s.every((x) => x.held.size >= 4));
    w.kill(s[1]!);
    const takeoverMs = w.until('takeover by the survivors', 3 * ttlMs, () => s[0]!.held.size + s[2]!.held.size === P);
    expect(takeoverMs).toBeLessThanOrEqual(ttlMs + 2 * tickMs);
    w.until('the survivors balanced', 6 * tickMs, () => s[0]!.held.size === 8 && s[2]!.held.size === 8);
  });
});
