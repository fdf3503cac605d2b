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

const EC_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

/** subjectAltName entries of `hosts`: IP addresses as IP, names as DNS. */
function subjectAltNames(hosts: readonly string[]): string {
  return hosts.map((h) => (/^[\d.]+$/.test(h) || h.includes(':') ? `IP:${h}` : `DNS:${h}`)).join(',');
}

/**
 * A key (`<name>-key.pem`) and a certificate (`<name>.pem`) in `dir`, signed by the CA
 * `caCert`/`caKey` (paths), for `usage` (extendedKeyUsage) and, when given, the SANs of `hosts`.
 */
function signLeaf(dir: string, name: string, commonName: string, ca: { cert: string; key: string }, usage: string, hosts?: readonly string[]): void {
  openssl(['req', ...EC_KEY, '-keyout', `${name}-key.pem`, '-out', `${name}.csr`, '-subj', `/CN=${commonName}`], dir);
  const san = hosts === undefined ? '' : `subjectAltName=${subjectAltNames(hosts)}\n`;
  writeFileSync(join(dir, `${name}.ext`), `${san}extendedKeyUsage=${usage}\n`);
  openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', ca.cert, '-CAkey', ca.key, '-set_serial', `0x${randomBytes(16).toString('hex')}`, '-out', `${name}.pem`, '-days', String(CERT_DAYS), '-extfile', `${name}.ext`], dir);
  chmodSync(join(dir, `${name}-key.pem`), 0o600);
}

function makeCertificates(dir: string, hosts: readonly string[]): void {
  openssl(['req', '-x509', ...EC_KEY, '-keyout', 'ca-key.pem', '-out', 'ca.pem', '-days', String(CERT_DAYS), '-subj', '/CN=strata local CA'], dir);
  chmodSync(join(dir, 'ca-key.pem'), 0o600);
  signLeaf(dir, 'server', 'strata nats', { cert: 'ca.pem', key: 'ca-key.pem' }, 'serverAuth,clientAuth', hosts);
}

/** The NBD certificate directories next to a cluster's CA (QEMU's file names, so qemu-nbd and libnbd read them too). */
export interface NbdTlsDirs {
  /** A gateway's: ca-cert.pem, server-cert.pem, server-key.pem. */
  serverDir: string;
  /** An NBD client's (QEMU tls-creds-x509 endpoint=client, nbdcopy tls-certificates=): ca-cert.pem, client-cert.pem, client-key.pem. */
  clientDir: string;
}

/**
 * The NBD server and client directories under `dir` (`nbd-server`, `nbd-client`),
 * signed by the CA ensureTlsFiles made in `dir`, made once: existing whole sets are
 * kept. The server certificate is valid for `hosts` (the gateways' addresses).
 */
export function ensureNbdTlsDirs(dir: string, hosts: readonly string[]): NbdTlsDirs {
  const ca = { cert: join(dir, 'ca.pem'), key: join(dir, 'ca-key.pem') };
  if (!existsSync(ca.key)) throw new Error(`${ca.key} not found: NBD certificates are signed by the cluster CA that strata auth init makes there`);
  const dirs: NbdTlsDirs = { serverDir: join(dir, 'nbd-server'), clientDir: join(dir, 'nbd-client') };
  ensureLeafDir(dirs.serverDir, ca, 'server', 'strata nbd gateway', 'serverAuth', hosts);
  ensureLeafDir(dirs.clientDir, ca, 'client', 'strata nbd client', 'clientAuth');
  return dirs;
}

/** `out` with ca-cert.pem, `<role>-cert.pem` and `<role>-key.pem`, made aside and moved in, the certificate last. */
function ensureLeafDir(out: string, ca: { cert: string; key: string }, role: 'server' | 'client', commonName: string, usage: string, hosts?: readonly string[]): void {
  const names = ['ca-cert.pem', `${role}-key.pem`, `${role}-cert.pem`];
  if (names.every((n) => existsSync(join(out, n)) && statSync(join(out, n)).size > 0)) return;
  mkdirSync(out, { recursive: true, mode: 0o700 });
  const work = mkdtempSync(join(out, '.tls-'));
  try {
    signLeaf(work, role, commonName, ca, usage, hosts);
    writeFileSync(join(work, 'ca-cert.pem'), readFileSync(ca.cert));
    renameSync(join(work, `${role}.pem`), join(work, `${role}-cert.pem`));
    for (const name of names) durableRename(join(work, name), join(out, name));
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
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
