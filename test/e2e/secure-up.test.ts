// `strata up` with its default security on three nats-servers: TLS on every client
// connection and on the routes between the servers, and every process connecting as
// its own user with only its role's permissions. It proves the grants are enough for
// the whole cluster to work: qemu-io writes through node 1 and reads back through
// node 2 (the forwarded path) and node 3, the CLI (as admin, from the data directory)
// sees every node alive, the curator master and the HA master answer, and, after all
// of that, no server logged a single permissions violation. An anonymous client and
// one without TLS are refused.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from '@nats-io/transport-node';
import { ConfigClient, UpClusters, qemuIo, run, waitFor, type UpCluster } from '../harness';

const clusters = new UpClusters('secure-up');
let cluster: UpCluster;

describe('strata up with its default security', () => {
  // In a describe block: its afterAll runs before the harness's file-level one, which
  // kills what is still tracked (strata up itself) and would orphan up's children.
  beforeAll(async () => {
    cluster = await clusters.start({ secure: true, natsServers: 3 });
  });
  afterAll(() => clusters.stopAll(), 60_000);

  const strata = (args: string[]): Promise<{ code: number | string; stdout: string; stderr: string }> => run(process.execPath, ['cli/dist/main.js', '--dir', cluster.dir, ...args], { env: { NATS_URL: '' }, timeoutMs: 30_000 });

  it('serves NBD I/O through every node and answers the CLI, with no permissions violation logged', async () => {
    const port = (k: number): string => `nbd://127.0.0.1:${cluster.nbdPort + k - 1}/demo`;
    await qemuIo(port(1), ['write -P 0x5a 0 256k', 'write -P 0xa5 1m 64k']);
    await qemuIo(port(2), ['read -P 0x5a 0 256k', 'read -P 0xa5 1m 64k']);
    await qemuIo(port(3), ['read -P 0x5a 0 256k', 'read -P 0 2m 64k']);

    const client = await ConfigClient.connect(cluster.natsUrl, undefined, cluster.security);
    try {
      await waitFor('every node alive', 20_000, async () => (await client.status()).nodes.alive === 3);
    } finally {
      await client.close();
    }
    await waitFor('the curator master to answer', 20_000, async () => (await strata(['curator', 'status'])).code === 0);
    await waitFor('the HA master to answer', 20_000, async () => (await strata(['ha', 'status'])).code === 0);
    const status = await strata(['status']);
    expect(status.stdout).toMatch(/nodes: 3 alive/);

    const logs = join(cluster.dir, 'logs');
    const natsLogs = readdirSync(logs).filter((f) => f.startsWith('nats-'));
    expect(natsLogs).toHaveLength(3);
    const violations = natsLogs.flatMap((f) => readFileSync(join(logs, f), 'utf8').split('\n').filter((l) => /Violation/.test(l)));
    expect(violations).toEqual([]);
    cluster.passed = true;
  });

  it('refuses anonymous clients and clients without TLS', async () => {
    const servers = cluster.natsUrl.split(',');
    await expect(connect({ servers, reconnect: false, timeout: 5_000, tls: { caFile: cluster.security.caFile! } })).rejects.toThrow(/Authorization Violation/);
    await expect(connect({ servers, reconnect: false, timeout: 5_000, user: 'admin', pass: cluster.security.password! })).rejects.toThrow();
  });
});
