// Three processes allocate 10,000 ids each at once from one counter: no id is handed
// out twice. Then the same with one of them killed -9 half way and restarted: the
// ids it printed before dying and after restarting collide with nobody's.
import { startNode, startTopology, type ActorProcess, type NatsTopology } from '../harness';

const PER_PROCESS = 10_000;

function idsOf(p: ActorProcess): bigint[] {
  return p
    .output()
    .split('\n')
    .filter((l) => /^\d+$/.test(l))
    .map((l) => BigInt(l));
}

describe('64-bit id allocation across processes', () => {
  let nats: NatsTopology;
  beforeAll(async () => {
    nats = await startTopology('single');
  });
  afterAll(async () => {
    await nats?.stop();
  });

  const allocator = (count: number, stopAt?: number): ActorProcess =>
    startNode('test/fixtures/alloc-ids.js', [nats.url, String(count), ...(stopAt === undefined ? [] : [String(stopAt)])], { name: 'alloc-ids' });

  async function finish(p: ActorProcess): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise((r) => (timer = setTimeout(() => r('timeout'), 60_000)));
    try {
      expect(await Promise.race([p.exited(), timeout])).toBe(0);
    } finally {
      clearTimeout(timer);
    }
    expect(p.output()).toMatch(/done\n$/);
  }

  it('hands out 30,000 distinct ids to three concurrent processes', async () => {
    const procs = [allocator(PER_PROCESS), allocator(PER_PROCESS), allocator(PER_PROCESS)];
    await Promise.all(procs.map(finish));
    const all = procs.flatMap(idsOf);
    expect(all.length).toBe(3 * PER_PROCESS);
    expect(new Set(all).size).toBe(all.length);
    expect(all.every((id) => id >= 1n)).toBe(true);
  });

  it('never repeats an id when an allocator is killed -9 half way and restarted', async () => {
    const steady = [allocator(PER_PROCESS), allocator(PER_PROCESS)];
    // The victim stops half way and waits there: a whole run is over in milliseconds,
    // faster than a poll of its output could catch it running.
    const victim = allocator(PER_PROCESS, PER_PROCESS / 2);
    await victim.waitForOutput(/^stopped$/m, 60_000);
    victim.signal('SIGKILL');
    await victim.exited();
    const before = idsOf(victim);
    expect(before.length).toBeLessThan(PER_PROCESS);
    const restarted = allocator(PER_PROCESS - before.length);
    await Promise.all([...steady, restarted].map(finish));
    const all = [...steady.flatMap(idsOf), ...before, ...idsOf(restarted)];
    expect(all.length).toBe(3 * PER_PROCESS);
    expect(new Set(all).size).toBe(all.length);
  });
});
