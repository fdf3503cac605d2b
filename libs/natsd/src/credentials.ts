// Credentials and certificates of a local cluster (`strata up`), kept in its data
// directory so a restart finds the same ones: a password per NATS user, and a CA
// with one certificate the servers present (and use between each other on routes).
// The certificates are made by the openssl command-line tool, which Debian ships
// in the `openssl` package; only the servers' key and the passwords are secret, and
// their files are readable by their owner alone.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface TlsFiles {
  caFile: string;
  certFile: string;
  keyFile: string;
}

/** Certificates are valid ten years: a laptop cluster should not stop working one day. */
const CERT_DAYS = 3650;

function openssl(args: string[], cwd: string): void {
  try {
    execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: Buffer };
    if (e.code === 'ENOENT') throw new Error('openssl not found: install it (Debian: apt-get install openssl) to generate TLS certificates, or give your own');
    throw new Error(`openssl ${args[0]} failed: ${e.stderr?.toString().trim() ?? e.message}`);
  }
}

/**
 * A CA and a server certificate for `hosts` (names and IP addresses) in `dir`, made
 * once: existing files are kept. The certificate serves both ends of a TLS
 * connection (serverAuth, clientAuth), as routes between servers need.
 */
export function ensureTlsFiles(dir: string, hosts: readonly string[] = ['localhost', '127.0.0.1']): TlsFiles {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const files: TlsFiles = { caFile: join(dir, 'ca.pem'), certFile: join(dir, 'server.pem'), keyFile: join(dir, 'server-key.pem') };
  if (existsSync(files.caFile) && existsSync(files.certFile) && existsSync(files.keyFile)) return files;
  const san = hosts.map((h) => (/^[\d.]+$/.test(h) || h.includes(':') ? `IP:${h}` : `DNS:${h}`)).join(',');
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl(['req', '-x509', ...ec, '-keyout', 'ca-key.pem', '-out', 'ca.pem', '-days', String(CERT_DAYS), '-subj', '/CN=strata local CA'], dir);
  openssl(['req', ...ec, '-keyout', 'server-key.pem', '-out', 'server.csr', '-subj', '/CN=strata nats'], dir);
  writeFileSync(join(dir, 'server.ext'), `subjectAltName=${san}\nextendedKeyUsage=serverAuth,clientAuth\n`);
  openssl(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca-key.pem', '-CAcreateserial', '-out', 'server.pem', '-days', String(CERT_DAYS), '-extfile', 'server.ext'], dir);
  chmodSync(join(dir, 'ca-key.pem'), 0o600);
  chmodSync(files.keyFile, 0o600);
  return files;
}

/** A random password: 24 bytes, base64url (32 characters). */
export function randomPassword(): string {
  return randomBytes(24).toString('base64url');
}

/**
 * The passwords of `users`, from `file` (JSON, user to password) where it has them,
 * new random ones for the others; the file is rewritten with all of them (mode 600).
 */
export function ensurePasswords(file: string, users: readonly string[]): Record<string, string> {
  const known = existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as Record<string, string>) : {};
  const passwords: Record<string, string> = { ...known };
  for (const user of users) passwords[user] ??= randomPassword();
  writeFileSync(file, JSON.stringify(passwords, null, 2) + '\n', { mode: 0o600 });
  chmodSync(file, 0o600);
  return passwords;
}
