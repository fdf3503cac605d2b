// `strata curator status` and `strata curator scrub` as printed: the drains with what
// each has left, the scrub running and the last pass.
import type { CuratorStatusReply } from '@strata/proto';
import { formatCuratorStatus, formatScanMap, formatScrub, whileMasterHolds } from '../src/curator';

const MiB = 2 ** 20;
const T0 = 1_735_689_600_000;
const pass = { startedAtMs: T0, durationMs: 5_000, replicas: 120, bytes: 240 * MiB, damaged: 1, skipped: 0 };
const status: CuratorStatusReply = {
  master: 'n1',
  curatorEpoch: 4,
  copiesInFlight: 1,
  progress: { master: 'n1', curatorEpoch: 4, updatedAtMs: T0, rebuild: true, underReplicated: 0, bytesToCopy: 8 * MiB, bytesCopied: 0, copiesDone: 0, copiesFailed: 0, bytesPerSec: 0 },
};

describe('curator status', () => {
  it('prints a scrub pass', () => {
    expect(formatScrub(pass)).toBe('scrub at 2025-01-01T00:00:00.000Z, 5 s: 120 replicas (240 MiB) read and verified, 1 damaged, 0 skipped');
  });

  it('prints how a scan was mapped, and says so when an old record does not tell', () => {
    const scan = { scan: 3, full: false, startedAtMs: T0, durationMs: 900, egroups: 40, underReplicated: 0, lostReplicas: 0, copiesQueued: 0, unfixable: 0 };
    expect(formatScanMap({ ...scan, kind: 'partial', id: T0, tasks: 8, reassigned: 1, resumed: 2, entries: 120, sinceRevision: 77, workers: [{ node: 'n2', tasks: 4 }, { node: 'n3', tasks: 4 }] })).toBe(
      `map: partial scan ${T0}: 8 map tasks (n2 4, n3 4), 1 reassigned, 2 found done, 120 entries read (changed since revision 77)`,
    );
    expect(formatScanMap(scan)).toBe('map: not recorded (a scan from before scans were map tasks)');
  });

  it('shows the drains with what each has left, and the scrub running and the last pass', () => {
    const text = formatCuratorStatus({
      ...status,
      progress: { ...status.progress, lastScrub: pass, scrubbing: { startedAtMs: T0 + 60_000, replicasDone: 40, replicasTotal: 120 }, draining: [{ kind: 'node', name: 'n2', replicas: 12, bytes: 48 * MiB }, { kind: 'disk', name: 'n3-d2', replicas: 0, bytes: 0 }] },
    });
    expect(text).toMatch(/^scrub: running since 2025-01-01T00:01:00.000Z, 40 of 120 replicas read; last pass: scrub at .* 1 damaged, 0 skipped$/m);
    expect(text).toMatch(/^draining node n2: 12 replicas \(48 MiB\) left$/m);
    expect(text).toMatch(/^draining disk n3-d2: drained, it holds no replica$/m);
    expect(formatCuratorStatus(status)).toMatch(/^scrub: not running; last pass: none yet$/m);
    expect(formatCuratorStatus(status)).not.toMatch(/draining/);
  });

  it('shows the extent groups the sweep reclaimed and those compacted', () => {
    expect(formatCuratorStatus({ ...status, progress: { ...status.progress, egroupsReclaimed: 5, egroupsReclaimedBytes: 20 * MiB, egroupsCompacted: 2 } })).toMatch(
      /^extent groups: 5 reclaimed \(20 MiB\) as nothing live names them, 2 compacted \(their live blocks moved by their owners' drains\)$/m,
    );
    expect(formatCuratorStatus(status)).toMatch(/^extent groups: 0 reclaimed \(0 B\)/m);
  });

  it('shows the rebalance: on or off, the spread between the fullest and emptiest disks, the moves', () => {
    const rebalance = { enabled: true, thresholdPermille: 100, fullest: { disk: 101n, node: 'n1', usedPermille: 400 }, emptiest: { disk: 104n, node: 'n4', usedPermille: 25 }, spreadPermille: 375, moving: 3, movesDone: 5 };
    expect(formatCuratorStatus({ ...status, progress: { ...status.progress, rebalance } })).toMatch(
      /^rebalance: on, threshold 10 points; disks 37.5 points apart \(fullest disk 101 on n1 40%, emptiest disk 104 on n4 2.5%\); 3 moves queued or running, 5 done$/m,
    );
    expect(formatCuratorStatus({ ...status, progress: { ...status.progress, rebalance: { enabled: false, thresholdPermille: 100, moving: 0, movesDone: 0 } } })).toMatch(/^rebalance: off \(STRATA_REBALANCE=off .*\), threshold 10 points; fewer than two disks take part; 0 moves/m);
  });
});

describe('a long request to the curator master', () => {
  const n1 = { master: 'n1', curatorEpoch: 3 };
  const never = new Promise<never>(() => undefined);

  it('ends as soon as another master is elected, saying what becomes of the work', async () => {
    const terms = [n1, undefined, { master: 'n2', curatorEpoch: 4 }];
    let asked = 0;
    const current = async (): Promise<typeof n1> => {
      const t = terms[Math.min(asked++, terms.length - 1)];
      if (t === undefined) throw new Error('no responders');
      return t;
    };
    await expect(whileMasterHolds(never, current, n1, 'it resumes the scan', 5)).rejects.toThrow('curator master n1 (epoch 3) went away before it answered; n2 is the master now (epoch 4): it resumes the scan');
    expect(asked).toBe(3);
  });

  it('answers with the reply while the master stays, and stops asking once answered', async () => {
    let asked = 0;
    const reply = new Promise<string>((resolve) => setTimeout(() => resolve('summary'), 30));
    expect(await whileMasterHolds(reply, async () => (asked++, n1), n1, 'unused', 5)).toBe('summary');
    const after = asked;
    expect(after).toBeGreaterThan(0);
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect(asked).toBe(after);
  });
});
