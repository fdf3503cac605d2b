// `strata auth init`: credentials and certificates for a cluster an operator runs
// host by host (infra/DEPLOY.md). It writes, in one directory: a CA and a certificate
// for the NATS servers (valid for the names given), a random password per user, the
// servers' `authorization` block (users.conf, to include from nats.conf) and one env
// file per user (<user>.env: STRATA_NATS_USER, STRATA_NATS_PASSWORD, STRATA_NATS_CA)
// for the systemd unit of that role. Users: `admin` (the operator's CLI), each config
// replica, each node (everything `strata node run` starts, in one environment: its
// actors, its HA agent, its curator and, with --shard, its metadata shard) and each
// shard run on its own. Existing passwords and certificates are kept, so running it
// again with one more node adds that node only. It also writes, signed by the same CA,
// the NBD TLS directories (QEMU's file names): nbd-server/ (ca-cert.pem,
// server-cert.pem, server-key.pem; valid for --nbd-address and loopback) for each
// gateway's --nbd-tls-dir, and nbd-client/ (ca-cert.pem, client-cert.pem,
// client-key.pem) for the HA agents' VMs and any QEMU or libnbd client.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { authorizationBlock, configGrant, curatorGrant, ensureNbdTlsDirs, ensurePasswords, ensureTlsFiles, haAgentGrant, metadataShardGrant, nodeHostGrant, securityEnv, type Grant, type NatsUser } from '@strata/natsd';
import { CfgOp, subjects } from '@strata/proto';
import { ADMIN_USER } from './local-auth';
import { NODE_ACTORS } from './roles';
import { UsageError } from './units';

export interface AuthInitOptions {
  out: string;
  /** Node names, each optionally with the shard it runs: `n1`, `n1:md-1`. */
  nodes: string[];
  configReplicas: string[];
  /** Shards run on their own (`strata shard run`). */
  shards: string[];
  /** Names and addresses the servers' certificate is valid for. */
  serverNames: string[];
  /** Names and addresses the gateways listen on: the NBD server certificate is valid for them. */
  nbdAddresses: string[];
}

const NAME = /^[a-z0-9][a-z0-9-]{0,62}$/;

function checkName(name: string, flag: string): string {
  if (!NAME.test(name)) throw new UsageError(`${flag}: "${name}" is not a name (lower-case letters, digits and dashes)`);
  return name;
}

/**
 * What `strata node run` starts, in one environment and so as one user: the node's
 * actors (one node-host), its HA agent, its curator, and its shard when it runs one;
 * and `node run` itself, which registers the node, its disks and its host at its
 * first start (config create and update requests: the config service checks what
 * they ask, not who asks). Node ids are not known before registration: its
 * heartbeat keys are any node's.
 */
export function nodeRunGrant(node: string, shard: string | undefined): Grant {
  const scope = { node };
  const io = NODE_ACTORS.filter((a) => a !== 'metadata-shard');
  const registration: Grant = { publish: [subjects.cfg(CfgOp.create), subjects.cfg(CfgOp.update)], subscribe: [], respond: false };
  const parts = [nodeHostGrant(scope, io, shard), haAgentGrant(scope), curatorGrant(scope), registration];
  return { publish: [...new Set(parts.flatMap((g) => g.publish))].sort(), subscribe: [...new Set(parts.flatMap((g) => g.subscribe))].sort(), respond: true };
}

/** Every user of the cluster and its grant (pure). */
export function operatorGrants(o: Pick<AuthInitOptions, 'nodes' | 'configReplicas' | 'shards'>): Record<string, Grant> {
  const grants: Record<string, Grant> = {};
  const add = (user: string, grant: Grant): void => {
    if (user === ADMIN_USER || user in grants) throw new UsageError(`the name ${user} is given twice`);
    grants[user] = grant;
  };
  for (const r of o.configReplicas) add(checkName(r, '--config'), configGrant(r));
  for (const spec of o.nodes) {
    const [node, shard, extra] = spec.split(':');
    if (node === undefined || extra !== undefined) throw new UsageError(`--nodes: "${spec}" is not NODE or NODE:SHARD`);
    add(checkName(node, '--nodes'), nodeRunGrant(node, shard === undefined ? undefined : checkName(shard, '--nodes')));
  }
  for (const s of o.shards) add(checkName(s, '--shards'), metadataShardGrant(s));
  return grants;
}

/** Writes the directory; returns the lines to print. */
export function authInit(o: AuthInitOptions): string[] {
  if (o.nodes.length + o.configReplicas.length + o.shards.length === 0) throw new UsageError('name the users to make: --nodes, --config, --shards');
  const grants = operatorGrants(o);
  mkdirSync(o.out, { recursive: true, mode: 0o700 });
  const tls = ensureTlsFiles(o.out, [...o.serverNames, 'localhost', '127.0.0.1']);
  ensureNbdTlsDirs(o.out, [...new Set([...o.nbdAddresses, 'localhost', '127.0.0.1'])]);
  const passwords = ensurePasswords(join(o.out, 'passwords.json'), [ADMIN_USER, ...Object.keys(grants)]);
  const users: NatsUser[] = [{ user: ADMIN_USER, password: passwords[ADMIN_USER]!, grant: 'all' }, ...Object.entries(grants).map(([user, grant]) => ({ user, password: passwords[user]!, grant }))];
  writeFileSync(join(o.out, 'users.conf'), authorizationBlock(users), { mode: 0o600 });
  for (const user of [ADMIN_USER, ...Object.keys(grants)]) {
    const env = securityEnv({ user, password: passwords[user]!, caFile: tls.caFile });
    writeFileSync(join(o.out, `${user}.env`), Object.entries(env).map(([k, v]) => `${k}=${v}\n`).join(''), { mode: 0o600 });
  }
  return [
    `wrote ${o.out}: ca.pem, server.pem, server-key.pem, users.conf and an env file per user (${[ADMIN_USER, ...Object.keys(grants)].join(', ')})`,
    'include users.conf and a tls block in each nats-server config (infra/DEPLOY.md)',
    `NBD over TLS: nbd-server/ for each gateway (strata node run --nbd-tls-dir), nbd-client/ for its clients (QEMU tls-creds-x509 endpoint=client, nbds://...?tls-certificates=)`,
  ];
}
