// Proves that the servers enforce each role's grant (PROTOCOL.md section 14): a real
// nats-server runs with TLS and the users block permissions.ts builds, and for every
// role a client connects as that role's user and is refused a subject of another
// role or another node (the server answers "Permissions Violation"), while what the
// role needs goes through: a request answered, a key written, a subject served.
// Connections without TLS, without a user or with a wrong password are refused.
//
// An admin connection answers every `strata.>` request, so an allowed request
// proves the message got through; KV writes go to real buckets.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { Kvm } from '@nats-io/kv';
import { admissionGrant, authorizationBlock, configGrant, curatorGrant, ensureTlsFiles, extentStoreGrant, gatewayGrant, haAgentGrant, ioDirectorGrant, metadataShardGrant, nodeHostGrant, randomPassword, securityOptions, vdiskControllerGrant, type ClientSecurity, type Grant, type NatsUser } from '@strata/natsd';
import { buckets } from '@strata/proto';
import { connectClient, startTopology, type NatsTopology } from '../harness';

const N1 = { node: 'n1', nodeId: 11n, diskIds: [12n] };
const N2 = { node: 'n2', nodeId: 21n, diskIds: [22n] };

const GRANTS: Record<string, Grant> = {
  'config-1': configGrant('config-1'),
  'n1-gateway': gatewayGrant(N1),
  'n1-io-director': ioDirectorGrant(N1),
  'n1-admission': admissionGrant(N1),
  'n1-vdisk-controller': vdiskControllerGrant(N1),
  'n1-extent-store': extentStoreGrant(N1),
  'n2-extent-store': extentStoreGrant(N2),
  'md-1': metadataShardGrant('md-1'),
  'n1-curator': curatorGrant(N1),
  'n1-ha-agent': haAgentGrant(N1),
  'n1-node-host': nodeHostGrant(N1, ['gateway', 'io-director', 'admission', 'vdisk-controller', 'extent-store'], 'md-1'),
};

/** One thing a client tries: a request (answered by the admin), a KV write, or serving a subject. */
type Attempt = { request: string } | { put: [bucket: string, key: string] } | { serve: string };

interface Case {
  user: string;
  allowed: Attempt[];
  refused: Attempt[];
}

const CASES: Case[] = [
  { user: 'config-1', allowed: [{ put: [buckets.cfg, 'vdisk.5'] }, { serve: 'strata.cfg.create' }], refused: [{ put: [buckets.mdEgroup, '5'] }, { request: 'strata.io.n1.write' }, { serve: 'strata.estore.n1.read' }] },
  { user: 'n1-gateway', allowed: [{ request: 'strata.io.n1.write' }, { put: [buckets.hb, 'attach.n1'] }], refused: [{ request: 'strata.io.n2.write' }, { request: 'strata.adm.n1.write' }, { put: [buckets.cfg, 'vdisk.5'] }, { put: [buckets.hb, 'attach.n2'] }, { request: '_INBOX.someone-elses-reply' }] },
  { user: 'n1-io-director', allowed: [{ serve: 'strata.io.n1.write' }, { request: 'strata.adm.n2.write' }, { request: 'strata.vdc.n2.relinquish' }, { request: 'strata.vdc.n2.snapshot' }], refused: [{ serve: 'strata.io.n2.write' }, { request: 'strata.vdc.n2.write' }] },
  { user: 'n1-admission', allowed: [{ serve: 'strata.adm.n1.read' }, { request: 'strata.vdc.n1.read' }], refused: [{ request: 'strata.vdc.n2.read' }, { serve: 'strata.adm.n2.read' }] },
  { user: 'n1-vdisk-controller', allowed: [{ put: [buckets.hb, 'node.11'] }, { serve: 'strata.vdc.n1.write' }, { request: 'strata.estore.n2.write' }], refused: [{ put: [buckets.hb, 'node.21'] }, { serve: 'strata.vdc.n2.write' }, { put: [buckets.cfg, 'node.11'] }] },
  { user: 'n1-extent-store', allowed: [{ serve: 'strata.estore.n1.read' }, { put: [buckets.hb, 'disk.12'] }], refused: [{ serve: 'strata.estore.n2.read' }, { put: [buckets.hb, 'disk.22'] }, { put: [buckets.hb, 'node.11'] }] },
  { user: 'n2-extent-store', allowed: [{ serve: 'strata.estore.n2.read' }], refused: [{ serve: 'strata.estore.n1.read' }, { put: [buckets.hb, 'disk.12'] }] },
  { user: 'md-1', allowed: [{ put: [buckets.mdEgroup, '5'] }, { serve: 'strata.md.3.get' }, { put: [buckets.own, 'md.3'] }, { put: [buckets.hb, 'shard.md-2'] }], refused: [{ put: [buckets.own, 'vdisk.5'] }, { put: [buckets.hb, 'node.12345'] }, { request: 'strata.estore.n1.read' }] },
  // The curator sweeps what a deleted vDisk left, its ownership record included; the roles' leases are not its.
  // It maps scan tasks on its own map subject only, asks the others' as master, and keeps the scan's record and outputs.
  {
    user: 'n1-curator',
    allowed: [
      { put: [buckets.own, 'curator.progress'] },
      { serve: 'strata.curator.status' },
      { put: [buckets.own, 'vdisk.5'] },
      { request: 'strata.cfg.delete' },
      { request: 'strata.events.space' },
      { serve: 'strata.curator.n1.map' },
      { request: 'strata.curator.n2.map' },
      { put: [buckets.own, 'curator.scan'] },
      { put: [buckets.own, 'curator.map.3.0'] },
    ],
    refused: [{ put: [buckets.mdEgroup, '5'] }, { put: [buckets.own, 'role.config'] }, { request: 'strata.io.n1.write' }, { request: 'strata.cfg.create' }, { serve: 'strata.curator.n2.map' }],
  },
  { user: 'n1-ha-agent', allowed: [{ request: 'strata.ha.hb.n1' }, { put: [buckets.ha, 'host.n1'] }, { serve: 'strata.ha.agent.n1.power-on' }], refused: [{ request: 'strata.ha.hb.n2' }, { put: [buckets.ha, 'host.n2'] }, { serve: 'strata.ha.agent.n2.power-on' }, { put: [buckets.cfg, 'vm.5'] }] },
  { user: 'n1-node-host', allowed: [{ request: 'strata.io.n1.write' }, { serve: 'strata.estore.n1.read' }, { put: [buckets.hb, 'node.11'] }], refused: [{ request: 'strata.io.n2.write' }, { serve: 'strata.estore.n2.read' }, { put: [buckets.hb, 'node.21'] }, { put: [buckets.cfg, 'vdisk.5'] }] },
];

const PERMISSION = /Permissions Violation/;
const WAIT_MS = 5_000;
/** The payload of the admin's request to a subject a role serves: only the role answers it. */
const SERVE_CHECK = 'serve-check';

function describeAttempt(a: Attempt): string {
  if ('request' in a) return `publish ${a.request}`;
  if ('put' in a) return `write ${a.put[0]}/${a.put[1]}`;
  return `serve ${a.serve}`;
}

describe('bus permissions per role, over TLS', () => {
  const dir = mkdtempSync(join(tmpdir(), 'strata-auth-'));
  const passwords: Record<string, string> = { admin: randomPassword(), ...Object.fromEntries(Object.keys(GRANTS).map((u) => [u, randomPassword()])) };
  const tls = ensureTlsFiles(join(dir, 'tls'));
  const security = (user: string): ClientSecurity => ({ user, password: passwords[user], caFile: tls.caFile });
  let nats: NatsTopology;
  let admin: NatsConnection;
  const clients: NatsConnection[] = [];

  beforeAll(async () => {
    const users: NatsUser[] = [{ user: 'admin', password: passwords.admin!, grant: 'all' }, ...Object.entries(GRANTS).map(([user, grant]) => ({ user, password: passwords[user]!, grant }))];
    nats = await startTopology('single', { tls, authorization: authorizationBlock(users), probe: security('admin') });
    admin = await connectClient(nats.url, security('admin'));
    const kvm = new Kvm(admin);
    for (const b of [buckets.cfg, buckets.hb, buckets.own, buckets.mdEgroup, buckets.ha]) await kvm.create(b);
    // The admin answers every request, so an allowed one shows by its reply.
    admin.subscribe('strata.>', {
      callback: (_err, msg) => {
        // A check that a role serves a subject waits for the role's answer, not this one.
        if (new TextDecoder().decode(msg.data) !== SERVE_CHECK) msg.respond(new TextEncoder().encode('ok'));
      },
    });
    await admin.flush();
  });
  afterAll(async () => {
    for (const c of clients) await c.close();
    await admin?.close();
    await nats?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const connectAs = async (user: string): Promise<NatsConnection> => {
    const nc = await connect({ servers: nats.url, reconnect: false, timeout: WAIT_MS, ...securityOptions(security(user)) });
    clients.push(nc);
    return nc;
  };

  /** Resolves once the attempt went through; rejects with the server's refusal otherwise. */
  const attempt = async (nc: NatsConnection, a: Attempt): Promise<void> => {
    if ('request' in a) {
      await nc.request(a.request, undefined, { timeout: WAIT_MS });
    } else if ('put' in a) {
      const kv = await new Kvm(nc).open(a.put[0]);
      await kv.put(a.put[1], new TextEncoder().encode('x'));
    } else {
      const sub = nc.subscribe(a.serve, { max: 1 });
      // The server handles SUB before the PING of this flush: a refusal has arrived by now.
      await nc.flush();
      if (sub.isClosed()) throw (await sub.closed) ?? new Error(`subscription to ${a.serve} closed`);
      const served = (async () => {
        for await (const m of sub) m.respond(new TextEncoder().encode('served'));
      })();
      const reply = await admin.request(a.serve, new TextEncoder().encode(SERVE_CHECK), { timeout: WAIT_MS });
      expect(new TextDecoder().decode(reply.data)).toBe('served');
      await served;
    }
  };

  describe.each(CASES)('$user', ({ user, allowed, refused }) => {
    let nc: NatsConnection;
    beforeAll(async () => {
      nc = await connectAs(user);
    });

    it.each(allowed.map((a) => [describeAttempt(a), a] as const))('may %s', async (_what, a) => {
      await expect(attempt(nc, a)).resolves.toBeUndefined();
    });

    it.each(refused.map((a) => [describeAttempt(a), a] as const))('is refused to %s', async (_what, a) => {
      await expect(attempt(nc, a)).rejects.toThrow(PERMISSION);
    });
  });

  it('refuses a client without TLS, without a user, or with a wrong password', async () => {
    const plain = { servers: nats.url, reconnect: false, timeout: WAIT_MS } as const;
    await expect(connect({ ...plain, user: 'admin', pass: passwords.admin })).rejects.toThrow();
    await expect(connect({ ...plain, tls: { caFile: tls.caFile } })).rejects.toThrow(/Authorization Violation/);
    await expect(connect({ ...plain, tls: { caFile: tls.caFile }, user: 'n1-gateway', pass: passwords.admin })).rejects.toThrow(/Authorization Violation/);
  });
});
