// Cluster-wide ids from one counter (libs/ids: each allocator reserves a block of ids
// by compare-and-set on the counter, then hands them out from memory). It proves that
// no id is handed out twice:
//  - by three processes allocating 10,000 ids each at once;
//  - across kill -9 in the middle of allocation: two allocators run at full speed
//    the whole time while a third is killed -9 and restarted, twelve times, at seeded
//    moments, then runs to the end. Some kills fall at random moments of a run; the
//    others are timed from the victim's own marker lines (test/fixtures/alloc-ids.js)
//    to land inside a block reservation (reading the counter, or with the
//    compare-and-set in flight) or while it hands out a block. From what the victim
//    printed before it died the test tells where each kill landed, and it requires
//    kills inside a reservation, with the compare-and-set in flight, and mid-block.
// The seed is printed; STRATA_IDS_SEED=<seed> replays the same kill plan.
import { seededRandom } from '../harness/random';
import { sleep, startNode, startTopology, type ActorProcess, type NatsTopology } from '../harness';

const PER_PROCESS = 10_000;
/**
 * Ids per reservation. Measured here with three allocators at full speed: a
 * reservation (a read of the counter, then a compare-and-set, fsynced by JetStream,
 * often lost to another allocator and retried after a backoff) takes about 1.3 ms,
 * and handing out 500 ids about 0.2 ms, so a run spends 87-91% of its time inside
 * reservations and a kill at a random moment lands inside one nine times in ten. The
 * steady allocators use small blocks, so they reserve often and race the victim's
 * compare-and-sets; the victim uses blocks of 5,000 (about 2 ms to hand out), so a
 * kill timed from its `block` line lands before the block is used up.
 */
const STEADY_BLOCK = 500;
const VICTIM_BLOCK = 5_000;
const SEED = Number(process.env.STRATA_IDS_SEED ?? Date.now() % 1_000_000);

/** A closed range of ids one process printed as handed out. */
interface IdRun {
  first: bigint;
  last: bigint;
  who: string;
}

/** The runs of ids `p` printed (`ids <first> <last>` lines). */
function runsOf(p: ActorProcess, who: string): IdRun[] {
  const out = p.output();
  // The harness keeps only the tail of a very long output: then ids would be missing.
  if (!out.startsWith('started\n')) throw new Error(`${who}: its output does not start with "started" (cut short?): ${out.slice(0, 200)}`);
  return [...out.matchAll(/^ids (\d+) (\d+)$/gm)].map((m) => ({ first: BigInt(m[1]!), last: BigInt(m[2]!), who }));
}

function countOf(runs: readonly IdRun[]): number {
  return runs.reduce((n, r) => n + Number(r.last - r.first + 1n), 0);
}

/** The first two runs that share an id, or undefined when every id was handed out once. */
function firstOverlap(runs: readonly IdRun[]): [IdRun, IdRun] | undefined {
  const sorted = [...runs].sort((a, b) => (a.first < b.first ? -1 : a.first > b.first ? 1 : 0));
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i]!.first <= sorted[i - 1]!.last) return [sorted[i - 1]!, sorted[i]!];
  }
  return undefined;
}

function expectNoIdTwice(runs: readonly IdRun[], context: string): void {
  const overlap = firstOverlap(runs);
  if (overlap !== undefined) {
    const [a, b] = overlap;
    throw new Error(`${context}: ids handed out twice: ${a.who} printed ${a.first}..${a.last} and ${b.who} printed ${b.first}..${b.last}`);
  }
  expect(runs.every((r) => r.first >= 1n && r.first <= r.last)).toBe(true);
}

/**
 * Where a kill landed, from the last marker line the victim printed:
 * reading the counter (`reserve`), with the compare-and-set in flight (`cas`), backing
 * off after a lost compare-and-set (`conflict`), or handing out a block (`block`).
 */
type Landing = 'reading the counter' | 'compare-and-set in flight' | 'backing off after a conflict' | 'handing out a block' | 'before its first reservation';

function landingOf(output: string): Landing {
  const marker = [...output.matchAll(/^(started|reserve|cas|conflict|block)\b/gm)].pop()?.[1];
  switch (marker) {
    case 'reserve':
      return 'reading the counter';
    case 'cas':
      return 'compare-and-set in flight';
    case 'conflict':
      return 'backing off after a conflict';
    case 'block':
      return 'handing out a block';
    default:
      return 'before its first reservation';
  }
}

const INSIDE_A_RESERVATION: readonly Landing[] = ['reading the counter', 'compare-and-set in flight', 'backing off after a conflict'];

/** How one victim incarnation is killed: after a random delay, or as it prints the n-th `marker`. */
type KillPlan = { at: 'random'; delayMs: number } | { at: 'reserve' | 'cas' | 'block'; nth: number };

/**
 * Twelve kills in a seeded order: four at random moments up to 400 ms into a run, and
 * eight timed from a marker line: two as a reservation starts, three as its
 * compare-and-set goes out (in flight for well under a millisecond, so a kill can
 * miss it), three as a block is won.
 */
function killPlan(random: () => number): KillPlan[] {
  const nth = (): number => 1 + Math.floor(random() * 6);
  const plans: KillPlan[] = [
    ...Array.from({ length: 4 }, () => ({ at: 'random' as const, delayMs: Math.floor(random() * 400) })),
    ...Array.from({ length: 2 }, () => ({ at: 'reserve' as const, nth: nth() })),
    ...Array.from({ length: 3 }, () => ({ at: 'cas' as const, nth: nth() })),
    ...Array.from({ length: 3 }, () => ({ at: 'block' as const, nth: nth() })),
  ];
  // Fisher-Yates, seeded.
  for (let i = plans.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [plans[i], plans[j]] = [plans[j]!, plans[i]!];
  }
  return plans;
}

/** Kills `p` with SIGKILL from inside its stdout handler, as soon as it prints the n-th `marker` line. */
function killAtMarker(p: ActorProcess, marker: string, nth: number): void {
  let seen = 0;
  let partial = '';
  const onData = (chunk: Buffer): void => {
    const lines = (partial + chunk.toString()).split('\n');
    partial = lines.pop()!;
    for (const line of lines) {
      if ((line === marker || line.startsWith(`${marker} `)) && ++seen === nth) {
        p.child.stdout?.off('data', onData);
        p.signal('SIGKILL');
        return;
      }
    }
  };
  p.child.stdout?.on('data', onData);
}

/** `p`'s exit code or signal, or 'still running' after `timeoutMs`. */
async function exitWithin(p: ActorProcess, timeoutMs: number): Promise<number | string> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<string>((r) => (timer = setTimeout(() => r(`still running after ${timeoutMs} ms`), timeoutMs)));
  try {
    return await Promise.race([p.exited(), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

describe('64-bit id allocation across processes', () => {
  let nats: NatsTopology;
  beforeAll(async () => {
    nats = await startTopology('single');
  });
  afterAll(async () => {
    await nats?.stop();
  });

  const allocator = (count: number | 'forever', blockSize = STEADY_BLOCK): ActorProcess =>
    startNode('test/fixtures/alloc-ids.js', [nats.url, String(count), String(blockSize)], { name: 'alloc-ids' });

  /** Waits (bounded) for `p` to exit 0 after printing `done`. */
  async function finish(p: ActorProcess): Promise<void> {
    expect(await exitWithin(p, 60_000)).toBe(0);
    expect(p.output()).toMatch(/^done\n$/m);
  }

  it('hands out 30,000 distinct ids to three concurrent processes', async () => {
    const procs = [allocator(PER_PROCESS), allocator(PER_PROCESS), allocator(PER_PROCESS)];
    await Promise.all(procs.map(finish));
    const runs = procs.flatMap((p, i) => runsOf(p, `allocator ${i + 1}`));
    expect(countOf(runs)).toBe(3 * PER_PROCESS);
    expectNoIdTwice(runs, 'three concurrent allocators');
  });

  it('never repeats an id when an allocator is killed -9 mid-allocation, inside block reservations and mid-block, and restarted', async () => {
    console.info(`ids: seed ${SEED} (STRATA_IDS_SEED=${SEED} replays this kill plan)`);
    const random = seededRandom(SEED);
    const plans = killPlan(random);
    // Two allocators at full speed the whole time: the victim's reservations race theirs.
    const steady = [allocator('forever'), allocator('forever')];
    const victims: Array<{ p: ActorProcess; plan: KillPlan | 'to the end'; landing?: Landing }> = [];
    try {
      await Promise.all(steady.map((p) => p.waitForOutput(/^block /m, 20_000)));
      for (const plan of plans) {
        const p = allocator('forever', VICTIM_BLOCK);
        victims.push({ p, plan });
        if (plan.at === 'random') {
          await p.waitForOutput(/^started$/m, 20_000);
          await sleep(plan.delayMs);
          p.signal('SIGKILL');
        } else {
          killAtMarker(p, plan.at, plan.nth);
        }
        expect(await exitWithin(p, 20_000)).toBe('SIGKILL');
        // It died mid-allocation: connected, never finished.
        expect(p.output()).toMatch(/^started$/m);
        expect(p.output()).not.toMatch(/^done$/m);
        victims[victims.length - 1]!.landing = landingOf(p.output());
      }
      // The last incarnation runs to the end, while the steady ones still allocate.
      const last = allocator(PER_PROCESS, VICTIM_BLOCK);
      victims.push({ p: last, plan: 'to the end' });
      await finish(last);
      expect(countOf(runsOf(last, 'the last victim'))).toBe(PER_PROCESS);
    } finally {
      for (const p of steady) p.signal('SIGTERM');
    }
    await Promise.all(steady.map(finish));

    const landings = victims.filter((v) => v.landing !== undefined).map((v) => `${v.plan === 'to the end' ? '' : v.plan.at === 'random' ? `random ${v.plan.delayMs} ms` : `${v.plan.at} #${v.plan.nth}`}: ${v.landing}`);
    console.info(`ids: seed ${SEED}: kills landed ${landings.join('; ')}`);
    const landed = new Set(victims.map((v) => v.landing));
    const context = `seed ${SEED}, kills: ${landings.join('; ')}`;
    // The kills covered what they are for: the middle of a reservation (the
    // compare-and-set in flight among them) and the middle of a block.
    const missed = [
      ...(INSIDE_A_RESERVATION.some((l) => landed.has(l)) ? [] : ['inside a reservation']),
      ...(landed.has('compare-and-set in flight') ? [] : ['with the compare-and-set in flight']),
      ...(landed.has('handing out a block') ? [] : ['while handing out a block']),
    ];
    if (missed.length > 0) throw new Error(`no kill landed ${missed.join(', or ')} (${context})`);

    const runs = [...steady.flatMap((p, i) => runsOf(p, `steady allocator ${i + 1}`)), ...victims.flatMap((v, i) => runsOf(v.p, `victim incarnation ${i + 1}`))];
    console.info(`ids: ${countOf(runs)} ids handed out by ${steady.length} steady allocators and ${victims.length} victim incarnations`);
    expectNoIdTwice(runs, context);
  }, 120_000);
});
