// Routing around a hung node, as pure logic under a simulated clock: which replicas
// a read tries first, which nodes drain may write to, how long a read waits before it
// is hedged, and hedged() itself (first good answer wins, failures move on at once).
// Then ExtentGroups with a replica that never answers: a read is served by the other
// replica within the hedge delay, and drain refuses to wait on the hung node.
import type { Bus } from '@strata/bus';
import { ErrorCode, StrataError } from '@strata/errors';
import { MemoryMd } from '@strata/md-client/testing';
import { keys, type EgroupEntry } from '@strata/proto';
import { hedged, type ExtentGroups } from '../src/extent-groups';
import { testExtentGroups, testHealth } from './health';

const replicas = [
  { node: 'n3', disk: 3n },
  { node: 'n1', disk: 1n },
  { node: 'n2', disk: 2n },
];

describe('replica health', () => {
  it('reads the local replica first, then the other healthy ones, then suspect, then dead', () => {
    const { health } = testHealth();
    expect(health.order(replicas).map((r) => r.node)).toEqual(['n1', 'n3', 'n2']);
    health.setDead(['n1']);
    health.failed('n3');
    expect(health.order(replicas).map((r) => r.node)).toEqual(['n2', 'n3', 'n1']);
    expect([health.state('n1'), health.state('n2'), health.state('n3')]).toEqual(['dead', 'healthy', 'suspect']);
  });

  it('keeps a node that failed suspect for failureSuspectMs, or until it answers again', () => {
    const { health, clock } = testHealth({ failureSuspectMs: 1_000 });
    health.failed('n2');
    clock.nowMs = 999;
    expect(health.usable('n2')).toBe(false);
    clock.nowMs = 1_000;
    expect(health.usable('n2')).toBe(true);
    health.failed('n2');
    health.succeeded('n2', 1);
    expect(health.usable('n2')).toBe(true);
  });

  it('suspects a node whose heartbeat stopped moving, but only while its own heartbeat is seen moving', () => {
    const { health, clock } = testHealth({ suspectAfterMs: 3_000 });
    health.heartbeat('n1', '1.1');
    health.heartbeat('n2', '1.1');
    clock.nowMs = 2_000;
    health.heartbeat('n1', '1.3');
    health.heartbeat('n2', '1.3');
    clock.nowMs = 4_000;
    health.heartbeat('n1', '1.5');
    health.heartbeat('n2', '1.3'); // the same one again: not a sign of life
    clock.nowMs = 5_000;
    expect(health.state('n2')).toBe('suspect');
    expect(health.state('n1')).toBe('healthy');
    // Our own heartbeat stopped moving too: the watch stalled, so no verdict on anyone.
    clock.nowMs = 7_500;
    expect(health.state('n2')).toBe('healthy');
  });

  it('hedges after the smoothed latency plus four deviations, between the floor and the ceiling', () => {
    const { health } = testHealth({ hedgeFloorMs: 5, hedgeCeilingMs: 250 });
    expect(health.hedgeDelayMs()).toBe(250); // nothing measured yet
    for (let i = 0; i < 50; i++) health.succeeded('n2', 1);
    expect(health.hedgeDelayMs()).toBe(5);
    for (let i = 0; i < 50; i++) health.succeeded('n2', 20 + (i % 2) * 10);
    expect(health.hedgeDelayMs()).toBeGreaterThan(25);
    expect(health.hedgeDelayMs()).toBeLessThan(80);
    for (let i = 0; i < 50; i++) health.succeeded('n2', 2_000);
    expect(health.hedgeDelayMs()).toBe(250);
  });
});

describe('hedged', () => {
  const never = new Promise<string>(() => undefined);

  it('asks the next candidate after the delay, and the first answer wins', async () => {
    const asked: string[] = [];
    const started = Date.now();
    const got = await hedged(['hung', 'ok'], 20, (c) => {
      asked.push(c);
      return c === 'hung' ? never : Promise.resolve(c);
    });
    expect(got).toBe('ok');
    expect(asked).toEqual(['hung', 'ok']);
    expect(Date.now() - started).toBeGreaterThanOrEqual(15);
  });

  it('moves on at once after a failure, and fails with the last error when all fail', async () => {
    const asked: string[] = [];
    await expect(
      hedged(['a', 'b', 'c'], 10_000, (c) => {
        asked.push(c);
        return Promise.reject(new Error(`no ${c}`));
      }),
    ).rejects.toThrow('no c');
    expect(asked).toEqual(['a', 'b', 'c']);
  });

  it('does not ask the next candidate when the first answers in time', async () => {
    const asked: string[] = [];
    expect(await hedged(['a', 'b'], 1_000, (c) => (asked.push(c), Promise.resolve(c)))).toBe('a');
    await new Promise((r) => setTimeout(r, 20));
    expect(asked).toEqual(['a']);
  });
});

describe('extent groups with a hung replica', () => {
  const entry: EgroupEntry = { vdisk: 7n, replicas: [{ disk: 2n, node: 'n2' }, { disk: 3n, node: 'n3' }], version: 1, sizeBytes: 64, extents: [] };
  const data = Uint8Array.from({ length: 64 }, (_, i) => i);

  async function setup(): Promise<{ groups: ExtentGroups; sent: string[]; health: ReturnType<typeof testHealth>['health'] }> {
    const md = new MemoryMd();
    await md.put('egroup', keys.egroup(9n), entry, 0);
    const sent: string[] = [];
    // n2 is hung: its requests never answer (until their own timeout, which a bus would raise).
    const bus = {
      request: (subject: string, req: { disk: bigint; offset: number; length: number }) => {
        sent.push(subject);
        if (subject.includes('.n2.')) return new Promise((_, reject) => setTimeout(() => reject(new StrataError(ErrorCode.TIMEOUT, 'no reply')), 300));
        return Promise.resolve({ data: data.slice(req.offset, req.offset + req.length) });
      },
    } as unknown as Bus;
    const { health } = testHealth({ hedgeCeilingMs: 30, localNode: 'n1' });
    const groups = testExtentGroups(bus, md, { health, timeoutMs: 10_000 });
    return { groups, sent, health };
  }

  it('serves a read from the other replica within the hedge delay, then reads the hung node last', async () => {
    const { groups, sent, health } = await setup();
    const started = Date.now();
    expect(Array.from(await groups.read({ egroup: 9n, offset: 0, length: 64 }, 8, 4))).toEqual([8, 9, 10, 11]);
    expect(Date.now() - started).toBeLessThan(200);
    expect(sent.map((s) => s.split('.')[2])).toEqual(['n2', 'n3']);
    // Once the hung request times out, n2 is suspect: the next read goes to n3 first.
    await new Promise((r) => setTimeout(r, 350));
    expect(health.state('n2')).toBe('suspect');
    sent.length = 0;
    await groups.read({ egroup: 9n, offset: 0, length: 64 }, 0, 1);
    expect(sent.map((s) => s.split('.')[2])).toEqual(['n3']);
  });

  it('refuses to write an extent group with a replica on a suspect node, sending nothing, and says it is not writable', async () => {
    const { groups, sent, health } = await setup();
    health.failed('n2');
    expect(await groups.writable(9n)).toBe(false);
    await expect(groups.write(9n, [{ offset: 0, data: new Uint8Array(1) }], { added: [], freed: [] })).rejects.toThrow(/egroup 9 has replicas on n2 \(suspect\); its blocks move/);
    expect(sent).toEqual([]);
  });
});
