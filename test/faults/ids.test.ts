// Three processes allocate 10,000 ids each at once from one counter: no id is handed
// out twice. Then the same with one of them killed -9 half way and restarted: the
// ids it printed before dying and after restarting collide with nobody's.
import { startNode, startTopology, waitFor, type ActorProcess, type NatsTopology } from '../harness';

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

  const allocator = (count: number): ActorProcess => startNode('test/fixtures/alloc-ids.js', [nats.url, String(count)], { name: 'alloc-ids' });

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
    const victim = allocator(PER_PROCESS);
    await waitFor('the victim to hand out half its ids', 60_000, () => idsOf(victim).length >= PER_PROCESS / 2, 5);
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
