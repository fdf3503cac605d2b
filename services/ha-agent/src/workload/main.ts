#!/usr/bin/env node
// The workload of a `process` VM: what a guest would do, as one small process. It
// opens its disk over NBD at its host's gateway (the export name carries its
// power-on lease: `<vdisk>@<vm>.<epoch>`), reads the counter last acknowledged,
// verifies the data blocks of the counters before it, then counts on: for each next
// counter it writes and reads back its data block, writes the counter, flushes, and
// prints `counter <n>` only once that write is acknowledged. Its output is its console.
//
// `node workload/main.js --vm web --nbd-host 127.0.0.1 --nbd-port 10809 --export db@12360.4 [--interval-ms 100]`
//
// Exit codes: 3 the disk could not be opened or read (not accessible), 4 the data
// on it is wrong, 1 an I/O error later, 2 bad arguments.
import { parseArgs } from 'node:util';
import { BLOCK_BYTES, checkData, countersToVerify, dataOffset, encodeBlock, readCounter } from './blocks';
import { NbdClient } from './nbd-client';

const EXIT_INACCESSIBLE = 3;
const EXIT_BAD_DATA = 4;

interface Options {
  vm: string;
  host: string;
  port: number;
  exportName: string;
  intervalMs: number;
  /** The NBD client certificate directory when the gateway requires TLS. */
  tlsDir: string | undefined;
}

function options(): Options {
  const { values } = parseArgs({
    options: { vm: { type: 'string' }, 'nbd-host': { type: 'string' }, 'nbd-port': { type: 'string' }, export: { type: 'string' }, 'interval-ms': { type: 'string' }, 'nbd-tls-dir': { type: 'string' } },
    strict: true,
  });
  const port = Number(values['nbd-port']);
  const intervalMs = Number(values['interval-ms'] ?? '100');
  if (values.vm === undefined || values.export === undefined || !Number.isInteger(port) || port <= 0 || !Number.isInteger(intervalMs) || intervalMs < 0) {
    process.stderr.write('usage: workload --vm NAME --nbd-host HOST --nbd-port PORT --export NAME [--interval-ms MS] [--nbd-tls-dir DIR]\n');
    process.exit(2);
  }
  return { vm: values.vm, host: values['nbd-host'] ?? '127.0.0.1', port, exportName: values.export, intervalMs, tlsDir: values['nbd-tls-dir'] };
}

const say = (line: string): void => void process.stdout.write(`${line}\n`);
const fail = (code: number, why: string): never => {
  process.stderr.write(`workload: ${why}\n`);
  process.exit(code);
};

/** Opens the disk and returns the counter on it, after verifying the data blocks behind it. */
async function start(o: Options): Promise<{ disk: NbdClient; counter: number }> {
  let disk: NbdClient;
  let header: Buffer;
  try {
    disk = await NbdClient.open(o.host, o.port, o.exportName, 30_000, o.tlsDir);
    header = await disk.read(0, BLOCK_BYTES);
  } catch (err) {
    return fail(EXIT_INACCESSIBLE, `cannot open or read ${o.exportName}: ${(err as Error).message}`);
  }
  const counter = readCounter(o.vm, header);
  if (typeof counter !== 'number') return fail(EXIT_BAD_DATA, counter.bad);
  for (const c of countersToVerify(counter)) {
    const wrong = checkData(o.vm, c, await disk.read(dataOffset(c), BLOCK_BYTES));
    if (wrong !== undefined) fail(EXIT_BAD_DATA, wrong);
  }
  return { disk, counter };
}

async function main(): Promise<void> {
  const o = options();
  // The agent that started this VM is its host: without it, the VM is off.
  const parent = process.ppid;
  setInterval(() => {
    if (process.ppid !== parent) process.exit(EXIT_INACCESSIBLE);
  }, 200).unref();
  const { disk, counter } = await start(o);
  say(`ready ${o.vm} counter ${counter}`);
  for (let c = counter + 1; ; c++) {
    try {
      await disk.write(dataOffset(c), encodeBlock({ kind: 'data', vm: o.vm, counter: c }));
      const wrong = checkData(o.vm, c, await disk.read(dataOffset(c), BLOCK_BYTES));
      if (wrong !== undefined) fail(EXIT_BAD_DATA, `read back: ${wrong}`);
      await disk.write(0, encodeBlock({ kind: 'counter', vm: o.vm, counter: c }));
      await disk.flush();
    } catch (err) {
      fail(1, `I/O error at counter ${c}: ${(err as Error).message}`);
    }
    say(`counter ${c}`);
    if (o.intervalMs > 0) await new Promise((r) => setTimeout(r, o.intervalMs));
  }
}

void main();
