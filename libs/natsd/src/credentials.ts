// Credentials and certificates of a local cluster (`strata up`), kept in its data
// directory so a restart finds the same ones: a password per NATS user, and a CA
// with one certificate the servers present (and use between each other on routes).
// The certificates are made by the openssl command-line tool, which Debian ships
// in the `openssl` package; only the servers' key and the passwords are secret, and
// their files are readable by their owner alone. Every file is written whole or not
// at all, and on disk before it is used (written aside, fsynced, renamed, the
// directory fsynced): a power cut right after the first start found passwords.json
// created but empty, and `strata up` could not start again.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, existsSync, fsyncSync, mkdirSync, mkdtempSync, openSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

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

function fsyncPath(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Moves the fsynced file `from` to `to` (same file system) and makes the rename durable. */
function durableRename(from: string, to: string): void {
  fsyncPath(from);
  renameSync(from, to);
  fsyncPath(dirname(to));
}

/** Writes `file` whole or not at all, durably, readable by its owner only. */
export function writeFileDurably(file: string, text: string): void {
  const aside = join(dirname(file), `.${basename(file)}.${process.pid}.tmp`);
  writeFileSync(aside, text, { mode: 0o600 });
  durableRename(aside, file);
}

/**
 * A CA and a server certificate for `hosts` (names and IP addresses) in `dir`, made
 * once: existing files are kept. The certificate serves both ends of a TLS
 * connection (serverAuth, clientAuth), as routes between servers need.
 */
export function ensureTlsFiles(dir: string, hosts: readonly string[] = ['localhost', '127.0.0.1']): TlsFiles {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const files: TlsFiles = { caFile: join(dir, 'ca.pem'), certFile: join(dir, 'server.pem'), keyFile: join(dir, 'server-key.pem') };
  const whole = (f: string): boolean => existsSync(f) && statSync(f).size > 0;
  if (whole(files.caFile) && whole(files.certFile) && whole(files.keyFile)) return files;
  // Made aside and moved in one by one, the certificate last: a cut in between leaves
  // a set that is not whole, which is made again.
  const work = mkdtempSync(join(dir, '.tls-'));
  try {
    makeCertificates(work, hosts);
    for (const name of ['ca-key.pem', 'ca.pem', 'server-key.pem', 'server.pem']) durableRename(join(work, name), join(dir, name));
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return files;
}

function makeCertificates(dir: string, hosts: readonly string[]): void {
  const san = hosts.map((h) => (/^[\d.]+$/.test(h) || h.includes(':') ? `IP:${h}` : `DNS:${h}`)).join(',');
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl(['req', '-x509', ...ec, '-keyout', 'ca-key.pem', '-out', 'ca.pem', '-days', String(CERT_DAYS), '-subj', '/CN=strata local CA'], dir);
  openssl(['req', ...ec, '-keyout', 'server-key.pem', '-out', 'server.csr', '-subj', '/CN=strata nats'], dir);
  writeFileSync(join(dir, 'server.ext'), `subjectAltName=${san}\nextendedKeyUsage=serverAuth,clientAuth\n`);
  openssl(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca-key.pem', '-CAcreateserial', '-out', 'server.pem', '-days', String(CERT_DAYS), '-extfile', 'server.ext'], dir);
  for (const key of ['ca-key.pem', 'server-key.pem']) chmodSync(join(dir, key), 0o600);
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
  const known = existsSync(file) ? readPasswords(file) : {};
  const passwords: Record<string, string> = { ...known };
  for (const user of users) passwords[user] ??= randomPassword();
  if (users.some((u) => known[u] === undefined)) writeFileDurably(file, JSON.stringify(passwords, null, 2) + '\n');
  return passwords;
}

function readPasswords(file: string): Record<string, string> {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as Record<string, string>;
  } catch (err) {
    throw new Error(`${file} is not a JSON object of passwords (${(err as Error).message}); restore it, or delete it to make new passwords for every user`);
  }
}
