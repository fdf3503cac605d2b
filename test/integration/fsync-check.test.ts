// Strata refuses an existing NATS cluster (NATS_URL) whose servers do not fsync every
// JetStream write before acknowledging it, unless the operator accepts the risk.
// Real servers: one with `sync_interval: always` (as every server Strata starts) and
// one without, each with a monitoring endpoint; the check reads their `/jsz`. Then
// `strata up` itself against the lazy one: one line, exit 1, nothing started; and with
// STRATA_ALLOW_LAZY_FSYNC=1 it starts with a warning.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requireFsync, startNatsServers, type NatsServerProcess } from '@strata/natsd';
import { freePortRun, run, startNode } from '../harness';
import { plainBus } from '../harness/suite-security';

// This file's own nats-servers are plain (no TLS, no users): so are its clients.
plainBus();

describe('the fsync check of an existing cluster', () => {
  let dir: string;
  let synced: NatsServerProcess;
  let lazy: NatsServerProcess;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'strata-fsync-'));
    synced = (await startNatsServers({ baseDir: join(dir, 'synced'), count: 1, monitor: true }))[0]!;
    lazy = (await startNatsServers({ baseDir: join(dir, 'lazy'), count: 1, monitor: true, syncAlways: false }))[0]!;
  });
  afterAll(async () => {
    await synced?.stop();
    await lazy?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('accepts servers that sync every write', async () => {
    await expect(requireFsync({ STRATA_NATS_MONITOR_URL: synced.monitorUrl })).resolves.toBeNull();
  });

  it('refuses a server that does not, naming it, unless STRATA_ALLOW_LAZY_FSYNC=1', async () => {
    const env = { STRATA_NATS_MONITOR_URL: `${synced.monitorUrl},${lazy.monitorUrl}` };
    await expect(requireFsync(env)).rejects.toThrow(new RegExp(`JetStream on ${lazy.monitorUrl} does not fsync before it acknowledges.*refusing to start \\(set STRATA_ALLOW_LAZY_FSYNC=1`));
    await expect(requireFsync({ ...env, STRATA_ALLOW_LAZY_FSYNC: '1' })).resolves.toMatch(/^WARNING: JetStream on .* does not fsync/);
  });

  it('refuses when it cannot tell: no monitoring URL, or one that does not answer', async () => {
    await expect(requireFsync({})).rejects.toThrow(/cannot tell whether the NATS servers fsync every write: set STRATA_NATS_MONITOR_URL/);
    const nobody = `http://127.0.0.1:${await freePortRun(1)}`;
    await expect(requireFsync({ STRATA_NATS_MONITOR_URL: nobody })).rejects.toThrow(new RegExp(`cannot read the JetStream settings of ${nobody}`));
  });

  it('strata up against the lazy server: one line, exit 1, nothing started', async () => {
    const upDir = join(dir, 'up-refused');
    const { code, stdout, stderr } = await run(process.execPath, ['cli/dist/main.js', '--dir', upDir, 'up', '--nodes', '1', '--config-replicas', '1'], {
      env: { NATS_URL: lazy.url, STRATA_NATS_MONITOR_URL: lazy.monitorUrl!, STRATA_ALLOW_LAZY_FSYNC: '' },
      timeoutMs: 20_000,
    });
    expect(code).toBe(1);
    expect(stderr.trim().split('\n')).toEqual([expect.stringMatching(/^strata: JetStream on .* does not fsync before it acknowledges.*refusing to start/)]);
    expect(stdout).not.toMatch(/starting|ready/);
  });

  it('strata up against the lazy server with STRATA_ALLOW_LAZY_FSYNC=1: starts, with the warning', async () => {
    const up = startNode('cli/dist/main.js', ['--dir', join(dir, 'up-allowed'), 'up', '--nodes', '0', '--config-replicas', '1'], {
      name: 'strata up',
      env: { NATS_URL: lazy.url, STRATA_NATS_MONITOR_URL: lazy.monitorUrl!, STRATA_ALLOW_LAZY_FSYNC: '1' },
    });
    try {
      await up.waitForOutput(/^ready$/m, 30_000);
      expect(up.output()).toMatch(/WARNING: JetStream on .* does not fsync before it acknowledges.*starting anyway because STRATA_ALLOW_LAZY_FSYNC=1/);
    } finally {
      await up.stop(10_000);
    }
  }, 40_000);
});
