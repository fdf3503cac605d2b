// Users, passwords and certificates of a cluster `strata up` runs on its own
// nats-servers, kept under <dir>/auth so a restart finds the same ones: every process
// connects as the user named after it (config-1, n1-node-host, n2-gateway) with the
// grant of its role (permissions.ts in @strata/natsd), the CLI as `admin`, and every
// connection is TLS, verified against the cluster's own CA (auth/ca.pem). The NBD
// TLS directories are made there too (auth/nbd-server, auth/nbd-client), for a
// gateway run with --nbd-tls-dir and its clients; `up`'s own gateways serve plain NBD
// on loopback.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { authorizationBlock, ensureNbdTlsDirs, ensurePasswords, ensureTlsFiles, type ClientSecurity, type Grant, type NatsUser, type TlsFiles } from '@strata/natsd';

export const AUTH_DIR = 'auth';
const PASSWORDS_FILE = 'passwords.json';
/** The operator's user: the CLI and `strata up` itself. */
export const ADMIN_USER = 'admin';

export interface LocalAuth {
  tls: TlsFiles;
  /** Every user's password, by user name. */
  passwords: Record<string, string>;
}

/** The auth directory of data directory `dir`, its certificates made and the passwords of `users` ensured. */
export function ensureLocalAuth(dir: string, users: readonly string[]): LocalAuth {
  const authDir = join(dir, AUTH_DIR);
  const tls = ensureTlsFiles(authDir);
  // The NBD directories are signed by the CA's key; a CA given without it signs nothing.
  if (existsSync(join(authDir, 'ca-key.pem'))) ensureNbdTlsDirs(authDir, ['localhost', '127.0.0.1']);
  return { tls, passwords: ensurePasswords(join(authDir, PASSWORDS_FILE), [ADMIN_USER, ...users]) };
}

/** How user `user` connects: its password and the CA. */
export function securityOf(auth: LocalAuth, user: string): ClientSecurity {
  const password = auth.passwords[user];
  if (password === undefined) throw new Error(`no password for NATS user ${user}`);
  return { user, password, caFile: auth.tls.caFile };
}

/** The servers' users block: admin with every permission, the others with their grants. */
export function localAuthorization(auth: LocalAuth, grants: Record<string, Grant>): string {
  const users: NatsUser[] = [{ user: ADMIN_USER, password: securityOf(auth, ADMIN_USER).password!, grant: 'all' }];
  for (const [user, grant] of Object.entries(grants)) users.push({ user, password: securityOf(auth, user).password!, grant });
  return authorizationBlock(users);
}

/**
 * The admin credentials of the cluster whose data directory is `dir`, when `strata
 * up` made some there (a cluster started with --insecure has none).
 */
export function adminSecurity(dir: string): ClientSecurity | undefined {
  const file = join(dir, AUTH_DIR, PASSWORDS_FILE);
  if (!existsSync(file)) return undefined;
  const password = (JSON.parse(readFileSync(file, 'utf8')) as Record<string, string>)[ADMIN_USER];
  if (password === undefined) return undefined;
  return { user: ADMIN_USER, password, caFile: join(dir, AUTH_DIR, 'ca.pem') };
}
