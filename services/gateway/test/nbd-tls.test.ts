// Proves FORCEDTLS on a real loopback socket with the hand-rolled client and node:tls:
// before NBD_OPT_STARTTLS every option is refused (NBD_REP_ERR_TLS_REQD) and
// NBD_OPT_EXPORT_NAME closes the connection; after it, haggling and transmission go
// over TLS; a second STARTTLS is ERR_INVALID; a client with no certificate, or one
// from another CA, is closed before it sees an export. The certificates are made by
// the cluster's own code (ensureTlsFiles, ensureNbdTlsDirs) with openssl.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureNbdTlsDirs, ensureTlsFiles } from '@strata/natsd';
import { MemoryCatalog } from '../src/memory-backend';
import type { NbdLogger } from '../src/nbd/connection';
import { NbdServer } from '../src/nbd/server';
import { RawClient, goData, optionBytes, requestBytes } from './raw-client';

const OPT = { EXPORT_NAME: 1, ABORT: 2, LIST: 3, STARTTLS: 5, INFO: 6, GO: 7 };
const REP = { ACK: 1, SERVER: 2, INFO: 3, ERR_INVALID: 0x80000003, ERR_TLS_REQD: 0x80000005 };
const CMD = { READ: 0, WRITE: 1 };

interface ClientFiles {
  ca: string;
  cert?: string;
  key?: string;
}

let dir: string;
let ours: ClientFiles;
let foreign: ClientFiles;
let server: NbdServer;
let port: number;
const warnings: string[] = [];
const clients: RawClient[] = [];

const log: NbdLogger = { debug: () => {}, info: () => {}, warn: (o: { reason?: string }, msg) => warnings.push(`${msg}: ${o.reason ?? ''}`), error: () => {} };

function clientFiles(clientDir: string): ClientFiles {
  const read = (name: string): string => readFileSync(join(clientDir, name), 'utf8');
  return { ca: read('ca-cert.pem'), cert: read('client-cert.pem'), key: read('client-key.pem') };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'strata-nbd-tls-'));
  ensureTlsFiles(join(dir, 'ours'));
  const { serverDir, clientDir } = ensureNbdTlsDirs(join(dir, 'ours'), ['127.0.0.1', 'localhost']);
  ensureTlsFiles(join(dir, 'foreign'));
  ours = clientFiles(clientDir);
  // Trusts our server, but its own certificate is signed by another CA.
  foreign = { ...clientFiles(ensureNbdTlsDirs(join(dir, 'foreign'), ['127.0.0.1']).clientDir), ca: ours.ca };
  const read = (name: string): string => readFileSync(join(serverDir, name), 'utf8');
  server = new NbdServer({ catalog: new MemoryCatalog([{ name: 'vol', sizeBytes: 1024 * 1024 }]), log, tls: { ca: read('ca-cert.pem'), cert: read('server-cert.pem'), key: read('server-key.pem') } });
  port = (await server.listenTcp(0)).port;
}, 30_000);

afterEach(() => {
  for (const c of clients.splice(0)) c.destroy();
  warnings.length = 0;
});

afterAll(async () => {
  await server?.close(100);
  rmSync(dir, { recursive: true, force: true });
});

async function handshake(): Promise<RawClient> {
  const client = await RawClient.handshake(port);
  clients.push(client);
  return client;
}

/** STARTTLS, its ACK, then the TLS handshake with `files`. */
async function secure(client: RawClient, files: ClientFiles): Promise<RawClient> {
  client.write(optionBytes(OPT.STARTTLS));
  expect(await client.readOptionReply()).toMatchObject({ option: OPT.STARTTLS, type: REP.ACK });
  const upgraded = await client.startTls({ ...files, servername: 'localhost' });
  clients.push(upgraded);
  return upgraded;
}

describe('NBD over TLS (FORCEDTLS)', () => {
  test('before STARTTLS, LIST, INFO and GO are ERR_TLS_REQD; after it, GO, WRITE and READ go over TLS', async () => {
    const plain = await handshake();
    for (const [option, data] of [[OPT.LIST, undefined], [OPT.INFO, goData('vol')], [OPT.GO, goData('vol')]] as const) {
      plain.write(optionBytes(option, data));
      const reply = await plain.readOptionReply();
      expect({ option: reply.option, type: reply.type, message: reply.data.toString() }).toEqual({ option, type: REP.ERR_TLS_REQD, message: 'this server requires TLS: send NBD_OPT_STARTTLS first' });
    }
    const client = await secure(plain, ours);
    client.write(optionBytes(OPT.GO, goData('vol')));
    expect((await client.readOptionReply()).type).toBe(REP.INFO);
    expect((await client.readOptionReply()).type).toBe(REP.INFO);
    expect((await client.readOptionReply()).type).toBe(REP.ACK);
    client.write(requestBytes(CMD.WRITE, 1n, 4096, 11, 0, Buffer.from('over-tls-ok')));
    expect(await client.readSimpleReply()).toEqual({ error: 0, handle: 1n });
    client.write(requestBytes(CMD.READ, 2n, 4096, 11));
    expect(await client.readSimpleReply()).toEqual({ error: 0, handle: 2n });
    expect((await client.read(11)).toString()).toBe('over-tls-ok');
  });

  test('a second STARTTLS, and STARTTLS with data, are ERR_INVALID; haggling goes on', async () => {
    const plain = await handshake();
    plain.write(optionBytes(OPT.STARTTLS, Buffer.from('x')));
    expect((await plain.readOptionReply()).type).toBe(REP.ERR_INVALID);
    const client = await secure(plain, ours);
    client.write(optionBytes(OPT.STARTTLS));
    expect(await client.readOptionReply()).toMatchObject({ option: OPT.STARTTLS, type: REP.ERR_INVALID });
    client.write(optionBytes(OPT.LIST));
    expect((await client.readOptionReply()).type).toBe(REP.SERVER);
  });

  test('NBD_OPT_EXPORT_NAME before STARTTLS closes the connection; ABORT is acknowledged', async () => {
    const client = await handshake();
    client.write(optionBytes(OPT.EXPORT_NAME, Buffer.from('vol')));
    expect(await client.closesWithin(2_000)).toBe(true);
    expect(client.pendingBytes).toBe(0);
    const aborting = await handshake();
    aborting.write(optionBytes(OPT.ABORT));
    expect((await aborting.readOptionReply()).type).toBe(REP.ACK);
  });

  test.each([
    ['no certificate', (): ClientFiles => ({ ca: ours.ca }), /client refused: it sent no certificate/],
    ["a certificate from another CA", (): ClientFiles => foreign, /client refused: its certificate \(strata nbd client\) does not verify against the gateway's CA/],
  ])('a client with %s is closed before any option is answered', async (_name, files, warning) => {
    const client = await secure(await handshake(), files());
    client.write(optionBytes(OPT.GO, goData('vol')));
    expect(await client.closesWithin(2_000)).toBe(true);
    expect(client.pendingBytes).toBe(0);
    expect(warnings).toEqual([expect.stringMatching(warning) as unknown]);
  });

  test('bytes sent right behind STARTTLS, before the TLS handshake, close the connection', async () => {
    const client = await handshake();
    client.write(Buffer.concat([optionBytes(OPT.STARTTLS), optionBytes(OPT.LIST)]));
    expect(await client.readOptionReply()).toMatchObject({ option: OPT.STARTTLS, type: REP.ACK });
    expect(await client.closesWithin(2_000)).toBe(true);
    expect(warnings).toEqual([expect.stringMatching(/16 bytes arrived after NBD_OPT_STARTTLS/) as unknown]);
  });
});
