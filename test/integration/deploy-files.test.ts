// The deployment files of infra/ (infra/DEPLOY.md) are checked by
// infra/scripts/check-deploy.sh: the pinned nats-server accepts the NATS cluster
// config (-t), three servers started from it on loopback form one JetStream cluster
// with a meta leader whose every server fsyncs before it acknowledges, and
// systemd-analyze verify accepts the units (skipped, and said so, where it is missing).
import { freePortRun, run } from '../harness';

test('check-deploy.sh: the NATS cluster config is valid and forms a fsyncing JetStream cluster of three; the systemd units verify', async () => {
  // The script's servers use ports base + 1 to base + 23.
  const base = (await freePortRun(23)) - 1;
  const { code, stdout, stderr } = await run('bash', ['infra/scripts/check-deploy.sh'], { timeoutMs: 60_000, env: { STRATA_CHECK_PORT_BASE: String(base) } });
  expect({ code, stderr: code === 0 ? '' : stderr }).toEqual({ code: 0, stderr: '' });
  expect(stdout.match(/^ {3}strata-\d: JetStream in a cluster of 3, meta leader strata-\d, sync_always true$/gm)).toHaveLength(3);
  expect(stdout).toMatch(/^ {3}(the units verify|skipped: no systemd-analyze on this machine)$/m);
}, 90_000);
