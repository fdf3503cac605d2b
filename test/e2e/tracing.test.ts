// One NBD write, traced across the actor processes of a real local cluster (`strata up
// --nodes 2 --separate`, one process per actor, every process appending its spans to
// one file through STRATA_TRACE_FILE). qemu-io writes 4 KiB once; the test waits for the drain
// of that write, stops the cluster (each process flushes its spans as it stops), reads
// the span file and proves that:
//  - the write is one trace whose root is the gateway's `nbd write` span, and that
//    trace holds, each the parent of the next (checked by parent span id):
//    nbd write → request/handle strata.io (io-director) → request/handle strata.adm
//    (admission) → admission queue wait → request/handle strata.vdc (vdisk-controller)
//    → oplog append → oplog publish, each hop's handler span in its own process (its
//    resource's service.name), over NATS (no `strata.local`), with the attributes that
//    say what the write was (vDisk, offset, length, owner, oplog sequence);
//  - the drain of that write is in the same trace: a `drain` span in the
//    vdisk-controller, the child of the write's `oplog append` span and linked to it,
//    whose descendants include the extent stores' handler spans for both replicas
//    (disk and extent group attributes) and the metadata shards' handler spans for
//    the puts of the extent-group map and the vDisk map.
// The same processes also export to a real Zipkin server (`strata up --tracing`, the
// jar `npm run tracing` runs): before the cluster stops, the test finds the write's
// trace in Zipkin's API with the same chain of spans from the gateway, io-director,
// admission and vdisk-controller processes, then the drain (naming the write's
// append in a `link.0` tag: Zipkin has no links) with the extent stores' and
// metadata shards' spans: six services and seven processes at least (the
// `process.pid` tags). Headless Chromium takes a screenshot of the write's
// trace in Zipkin's UI (test/artifacts/zipkin-write-trace.png).
// And every actor process of this secure cluster (TLS, a user per process) answers a
// scrape at the port the targets file gives.
// Then the default layout (`strata up --nodes 2`: a node's actors in one node-host
// process): one write again, whose spans the span file gives to node-host processes,
// and Zipkin shows the same chain and drain under the actors' names, six services at
// least, from both nodes' node-hosts (test/artifacts/zipkin-write-trace-colocated.png).
// Then n1's node-host is killed -9: the `owner.changed` event of the takeover that
// follows (`strata --json events`) names its trace, and Zipkin holds that trace: the
// takeover, each step, and n2's open of the vDisk below the replay.
// Every wait is bounded; afterAll stops `strata up` and Zipkin and kills by PID whatever they left.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SpanStatusCode } from '@strata/tracing';
import { readSpanFile, spanForest, type OtlpSpanRecord, type SpanForest } from '@strata/tracing/testing';
import { children, freePort, killIfUnchanged, qemuIo, repoRoot, run, screenshot, startNode, startZipkin, waitFor, zipkinTrace, type ActorProcess, type ZipkinServer, type ZipkinSpan } from '../harness';
import { HA_TEST_ENV } from '../harness/ha';
import { isLineBeingWritten } from '../harness/verify';
import { seedUpAuth } from '../harness/suite-security';

/** The one child of `parent` named `name`; fails, showing the tree, unless there is exactly one. */
function child(forest: SpanForest, parent: OtlpSpanRecord, name: string, root: OtlpSpanRecord): OtlpSpanRecord {
  const found = forest.childrenOf(parent).filter((s) => s.name === name);
  if (found.length !== 1) throw new Error(`expected one "${name}" under "${parent.name}", found ${found.length}; the trace:\n${forest.describe(root)}`);
  return found[0]!;
}

/**
 * The one successful `name` child of a request span that may have been retried: the
 * first I/O of a vDisk can meet admission before its ownership cache has seen the
 * claim, and the gateway retries that NOT_OWNER. Every other attempt must be exactly
 * that retryable refusal.
 */
function answered(forest: SpanForest, parent: OtlpSpanRecord, name: string, root: OtlpSpanRecord): OtlpSpanRecord {
  const attempts = forest.childrenOf(parent).filter((s) => s.name === name);
  const ok = attempts.filter((s) => s.attributes['strata.error.code'] === undefined);
  const refused = attempts.filter((s) => s.attributes['strata.error.code'] === 'NOT_OWNER');
  if (ok.length !== 1 || ok.length + refused.length !== attempts.length) {
    throw new Error(`expected one answered "${name}" under "${parent.name}" besides NOT_OWNER retries, found ${attempts.length}; the trace:\n${forest.describe(root)}`);
  }
  // An attempt that reached nobody (no responders yet) is retried too and has no handler span.
  expect(parent.attributes['strata.attempts']).toBeGreaterThanOrEqual(attempts.length);
  return ok[0]!;
}

/** A string attribute of `span`; fails, naming it, when it is missing or not a string. */
function text(span: OtlpSpanRecord, key: string): string {
  const value = span.attributes[key];
  if (typeof value !== 'string') throw new Error(`${span.name}: attribute ${key} is ${JSON.stringify(value)}, not a string`);
  return value;
}

/** The write's `oplog append` span, when the file has the whole trace of one `nbd write`. */
function appendOf(spans: OtlpSpanRecord[]): OtlpSpanRecord | undefined {
  const write = spans.find((s) => s.name === 'nbd write' && s.parentSpanId === undefined);
  return write === undefined ? undefined : spans.find((s) => s.traceId === write.traceId && s.name === 'oplog append');
}

/**
 * The drain spans linked to `span` that succeeded. (Right after start-up a drain may fail,
 * e.g. while the metadata partitions are still being taken; the next one links the same writes.)
 */
function drainsLinkedTo(spans: OtlpSpanRecord[], span: OtlpSpanRecord): OtlpSpanRecord[] {
  return spans.filter((s) => s.name === 'drain' && s.status.code !== SpanStatusCode.ERROR && (s.links ?? []).some((l) => l.traceId === span.traceId && l.spanId === span.spanId));
}

/** The services of a Zipkin trace's spans. */
const servicesOf = (trace: ZipkinSpan[]): Set<string> => new Set(trace.map((s) => s.localEndpoint?.serviceName ?? '?'));

/** Waits for Zipkin to hold the spans `expected` of trace `traceId` (batches arrive within a second or so); returns the trace. */
async function zipkinHolds(zipkin: ZipkinServer, traceId: string, what: string, expected: (trace: ZipkinSpan[]) => boolean): Promise<ZipkinSpan[]> {
  let last: ZipkinSpan[] = [];
  try {
    return await waitFor(what, 30_000, async () => {
      last = await zipkinTrace(zipkin, traceId);
      return expected(last) ? last : false;
    }, 250);
  } catch (err) {
    throw new Error(`${(err as Error).message}; Zipkin holds ${JSON.stringify(last.map((s) => `${s.localEndpoint?.serviceName}: ${s.name}`))}`);
  }
}

/**
 * The write's trace as Zipkin shows it: the same span ids as the span file's, the
 * write's chain across the gateway, io-director, admission and vdisk-controller, and
 * below its append the drain, naming the append in its `link.0` tag, with the extent
 * stores' and metadata shards' spans; at least `processesMin` processes (Zipkin keeps
 * each span's process in its `process.pid` tag); a screenshot.
 */
async function checkZipkin(zipkin: ZipkinServer, spans: OtlpSpanRecord[], screenshotName: string, processesMin: number): Promise<void> {
  const append = appendOf(spans)!;
  const drain = drainsLinkedTo(spans, append)[0]!;
  const chain = ['nbd write', 'handle strata.io.n1.write', 'handle strata.adm.n1.write', 'admission queue wait', 'handle strata.vdc.n1.write', 'oplog append', 'drain'];
  const write = await zipkinHolds(zipkin, append.traceId, 'the write trace, with its drain, in Zipkin', (t) => {
    const names = t.map((s) => s.name);
    return chain.every((name) => names.includes(name)) && names.some((n) => /^handle strata\.estore\./.test(n)) && names.some((n) => /^handle strata\.md\./.test(n));
  });
  // (The vDisk's first I/O also claims it: the config service's spans may be there too.)
  expect([...servicesOf(write)]).toEqual(expect.arrayContaining(['admission', 'gateway', 'io-director', 'vdisk-controller', 'extent-store', 'metadata-shard']));
  const zAppend = write.find((s) => s.name === 'oplog append')!;
  expect(zAppend.id).toBe(append.spanId);
  expect(zAppend.tags).toMatchObject({ 'strata.io.op': 'write', 'strata.io.length': '4096' });
  const zDrain = write.find((s) => s.id === drain.spanId)!;
  expect(zDrain.parentId).toBe(append.spanId);
  expect(zDrain.tags?.['link.0']).toBe(`${append.traceId}/${append.spanId}`);
  const processes = new Set(write.map((s) => s.tags?.['process.pid']));
  expect(processes.has(undefined)).toBe(false);
  expect(processes.size).toBeGreaterThanOrEqual(processesMin);

  await screenshot(`${zipkin.url}/zipkin/traces/${append.traceId}`, join(repoRoot, 'test', 'artifacts', screenshotName), 'text=oplog append');
}

/**
 * kill -9 of n1's node-host, which owns `demo`: the config leader moves it to n2, and
 * the `owner.changed` event (read as the operator does, `strata --json events`) names
 * the trace it was recorded in, which Zipkin holds: the takeover, each of its steps,
 * and n2's open of the vDisk below the replay step.
 */
async function checkTakeoverTrace(zipkin: ZipkinServer, dir: string, started: Map<number, string>): Promise<void> {
  const victim = [...started].find(([, args]) => /node-host\/dist\/main\.js .*--node n1( |$)/.test(args));
  if (victim === undefined) throw new Error(`no node-host of n1 among ${JSON.stringify([...started.values()])}`);
  process.kill(victim[0], 'SIGKILL');
  const moved = await waitFor('an owner.changed event of demo, with its trace id', 30_000, async () => {
    const { code, stdout } = await run(process.execPath, ['cli/dist/main.js', '--dir', dir, '--json', 'events', '--type', 'owner.changed'], { timeoutMs: 20_000 });
    if (code !== 0) return false;
    const events = JSON.parse(stdout) as Array<{ name?: string; cause?: string; owner?: string; traceId?: string }>;
    return events.find((e) => e.name === 'demo' && e.cause === 'failover') ?? false;
  });
  expect(moved).toMatchObject({ owner: 'n2', traceId: expect.stringMatching(/^[0-9a-f]{32}$/) });
  const steps = ['takeover', 'takeover claim', 'takeover fence', 'takeover replay', 'takeover serve', 'handle strata.vdc.n2.open'];
  const takeover = await zipkinHolds(zipkin, moved.traceId!, 'the takeover trace in Zipkin', (t) => steps.every((name) => t.some((s) => s.name === name)));
  const root = takeover.find((s) => s.name === 'takeover')!;
  expect(root.parentId).toBeUndefined();
  expect(root.tags).toMatchObject({ 'strata.takeover.from': 'n1' });
  const replay = takeover.find((s) => s.name === 'takeover replay')!;
  const open = takeover.find((s) => s.name === 'handle strata.vdc.n2.open')!;
  expect(takeover.find((s) => s.id === open.parentId)?.parentId).toBe(replay.id);
}

/** Waits until the span file holds the write's trace and the drain linked to it. */
async function waitForWriteAndDrain(spanFile: string): Promise<void> {
  await waitFor(
    'the drain of the write in the span file',
    30_000,
    async () => {
      const spans = await readSpanFile(spanFile);
      const append = appendOf(spans);
      return append !== undefined && drainsLinkedTo(spans, append).length > 0;
    },
    { intervalMs: 200, retryIf: isLineBeingWritten },
  );
}

/**
 * `strata up` (extra flags `args`) in `dir` on fresh ports, every process writing its
 * spans to `spanFile` and to Zipkin; resolves once ready. The processes it started are
 * put in `started` (even when it is not ready), for the caller to kill by PID.
 */
async function startUp(dir: string, spanFile: string, zipkinPort: number, args: string[], started: Map<number, string>): Promise<{ up: ActorProcess; nbdPort: number }> {
  const nbdPort = await freePort();
  const natsPort = await freePort();
  // The suite's admin, so this process's clients (and the CLI) reach the cluster.
  seedUpAuth(dir);
  const up = startNode('cli/dist/main.js', ['--dir', dir, 'up', ...args, '--nodes', '2', '--nbd-port', String(nbdPort), '--nats-port', String(natsPort), '--config-replicas', '1', '--tracing', `http://127.0.0.1:${zipkinPort}`], {
    name: 'strata up',
    // Tracing is off unless something exports: the span file turns it on in every process.
    // HA_TEST_ENV and no restart: a killed node stays down and is declared dead within seconds (the takeover case).
    env: { ...HA_TEST_ENV, STRATA_RESTART_DELAY_MS: '600000', NATS_URL: '', STRATA_TRACE_FILE: spanFile, STRATA_DRAIN_IDLE_MS: '100', OTEL_BSP_SCHEDULE_DELAY: '200' },
  });
  try {
    await up.waitForOutput(/^ready$/m, 90_000);
  } finally {
    for (const c of await children(up.pid())) started.set(c.pid, c.args);
  }
  return { up, nbdPort };
}

describe('tracing: one NBD write is one trace across the actor processes, its drain included', () => {
  let dir: string;
  let spanFile: string;
  let nbdPort: number;
  let up: ActorProcess | undefined;
  let zipkin: ZipkinServer | undefined;
  const started = new Map<number, string>();
  let zipkinPort: number;

  beforeAll(async () => {
    // Zipkin's JVM starts while the cluster does; the write comes once both are up.
    zipkinPort = await freePort();
    const zipkinStarting = startZipkin(zipkinPort).then((z) => (zipkin = z));
    dir = mkdtempSync(join(tmpdir(), 'strata-e2e-tracing-'));
    spanFile = join(dir, 'spans.jsonl');
    // One process per actor: each hop's spans must come from its own process, over NATS.
    // Whatever started, even if not ready: afterAll kills these by PID.
    ({ up, nbdPort } = await startUp(dir, spanFile, zipkinPort, ['--separate'], started));
    await zipkinStarting;
  }, 150_000);

  afterAll(async () => {
    await up?.stop(20_000);
    killIfUnchanged(started);
    await zipkin?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('links the gateway, director, admission, controller and oplog spans in one trace, with the drain below the append and linked to it', async () => {
    await qemuIo(`nbd://127.0.0.1:${nbdPort}/demo`, ['write -P 0x5a 0 4k']);
    // Each span is in the file as soon as it ends; the drain runs 100 ms after the write.
    await waitForWriteAndDrain(spanFile);
    // Seven processes: gateway, io-director, admission, vdisk-controller, both nodes' extent stores, a metadata shard.
    await checkZipkin(zipkin!, await readSpanFile(spanFile), 'zipkin-write-trace.png', 7);
    // With TLS and a user per process on the bus, every actor process still answers a scrape.
    const targets = JSON.parse(readFileSync(join(dir, 'metrics-targets.json'), 'utf8')) as Array<{ targets: string[] }>;
    expect(targets).toHaveLength([...started.values()].filter((args) => !args.includes('nats-server')).length);
    for (const t of targets) expect({ target: t.targets[0], status: (await fetch(`http://${t.targets[0]}/metrics`)).status }).toEqual({ target: t.targets[0], status: 200 });
    // A clean stop: every process ends and flushes its spans before it exits.
    const stopping = up!.exited();
    await up!.stop(20_000);
    expect(await stopping).toBe(0);

    const spans = await readSpanFile(spanFile);
    const forest = spanForest(spans);

    // The write: one root span in the gateway.
    const writes = spans.filter((s) => s.name === 'nbd write');
    expect(writes).toHaveLength(1);
    const nbd = writes[0]!;
    expect(nbd.parentSpanId).toBeUndefined();
    expect(nbd.serviceName).toBe('gateway');
    expect(nbd.attributes).toMatchObject({ 'strata.vdisk.name': 'demo', 'strata.io.op': 'write', 'strata.io.offset': 0, 'strata.io.length': 4096, 'nbd.errno': 0 });
    const vdisk = text(nbd, 'strata.vdisk');
    expect(vdisk).toMatch(/^\d+$/);

    // The chain, each span the parent of the next (child() looks them up by parent id).
    const ioRequest = child(forest, nbd, 'request strata.io.n1.write', nbd);
    const ioHandle = answered(forest, ioRequest, 'handle strata.io.n1.write', nbd);
    // The first I/O claims the vDisk for the node it entered.
    expect(ioHandle.attributes).toMatchObject({ 'strata.vdisk': vdisk, 'strata.io.offset': 0, 'strata.io.length': 4096, 'strata.owner': 'n1' });
    const admRequest = child(forest, ioHandle, 'request strata.adm.n1.write', nbd);
    const admHandle = child(forest, admRequest, 'handle strata.adm.n1.write', nbd);
    expect(admHandle.attributes).toMatchObject({ 'strata.vdisk': vdisk, 'strata.io.op': 'write' });
    const wait = child(forest, admHandle, 'admission queue wait', nbd);
    expect(wait.attributes).toMatchObject({ 'strata.vdisk': vdisk, 'strata.admission.queue_depth': 1 });
    const vdcRequest = child(forest, wait, 'request strata.vdc.n1.write', nbd);
    // The wait ends when the request leaves the queue: before the request to the controller starts.
    expect(BigInt(wait.endTimeUnixNano) <= BigInt(vdcRequest.startTimeUnixNano)).toBe(true);
    const vdcHandle = child(forest, vdcRequest, 'handle strata.vdc.n1.write', nbd);
    expect(vdcHandle.attributes).toMatchObject({ 'strata.vdisk': vdisk, 'strata.io.offset': 0, 'strata.io.length': 4096 });
    const append = child(forest, vdcHandle, 'oplog append', nbd);
    expect(append.attributes).toMatchObject({ 'strata.vdisk': vdisk, 'strata.io.op': 'write', 'strata.io.offset': 0, 'strata.io.length': 4096, 'strata.oplog.ops': 1 });
    const seq = append.attributes['strata.oplog.seq'];
    expect(typeof seq === 'number' && seq > 0).toBe(true);
    const publish = child(forest, append, 'oplog publish', nbd);
    expect(publish.attributes).toMatchObject({ 'strata.oplog.seq': seq, 'strata.oplog.kind': 'ops', 'strata.oplog.ops': 1, 'messaging.destination.name': `oplog.${vdisk}` });

    // All in the write's trace; each hop's handler in its own process, reached over NATS.
    for (const s of [ioRequest, ioHandle, admRequest, admHandle, wait, vdcRequest, vdcHandle, append, publish]) expect(s.traceId).toBe(nbd.traceId);
    expect([nbd, ioHandle, admHandle, wait, vdcHandle, append, publish].map((s) => s.serviceName)).toEqual([
      'gateway',
      'io-director',
      'admission',
      'admission',
      'vdisk-controller',
      'vdisk-controller',
      'vdisk-controller',
    ]);
    expect([ioRequest, admRequest, vdcRequest].map((s) => s.serviceName)).toEqual(['gateway', 'io-director', 'admission']);
    for (const s of [ioHandle, admHandle, vdcHandle]) expect(s.attributes['strata.local']).toBeUndefined();

    // The drain: in the write's trace, the child of its append, and linked to it.
    const drains = drainsLinkedTo(spans, append);
    expect(drains).toHaveLength(1);
    const drain = drains[0]!;
    expect(drain.parentSpanId).toBe(append.spanId);
    expect(drain.traceId).toBe(nbd.traceId);
    expect(drain.serviceName).toBe('vdisk-controller');
    expect(drain.attributes).toMatchObject({ 'strata.vdisk': vdisk, 'strata.drain.links': 1 });
    expect(Number(drain.attributes['strata.drain.from_seq'])).toBeLessThanOrEqual(seq as number);
    expect(Number(drain.attributes['strata.drain.to_seq'])).toBeGreaterThanOrEqual(seq as number);
    const below = forest.descendantsOf(drain);
    const tree = forest.describe(drain);

    // The extent-group write, and under it both replicas' writes, each handled by its node's extent store.
    const egroupWrites = below.filter((s) => s.name === 'egroup write');
    expect(egroupWrites).toHaveLength(1);
    const egroupWrite = egroupWrites[0]!;
    const egroup = text(egroupWrite, 'strata.egroup');
    expect(egroup).toMatch(/^\d+$/);
    const estore = below.filter((s) => /^handle strata\.estore\.n\d\.write$/.test(s.name));
    if (estore.length < 2) throw new Error(`expected the two replicas' writes under the drain; the drain:\n${tree}`);
    expect([...new Set(estore.map((s) => s.name))].sort()).toEqual(['handle strata.estore.n1.write', 'handle strata.estore.n2.write']);
    for (const s of estore) {
      expect(s.serviceName).toBe('extent-store');
      expect(s.attributes).toMatchObject({ 'strata.egroup': egroup, 'strata.vdisk': vdisk, 'strata.bytes': 4096 });
      expect(s.attributes['strata.disk']).toMatch(/^\d+$/);
      // Its parent is the controller's request, under the extent-group write, under the drain.
      const request = forest.parentOf(s)!;
      expect(request.name).toBe(s.name.replace(/^handle/, 'request'));
      expect(request.serviceName).toBe('vdisk-controller');
      expect(forest.ancestorsOf(s)).toEqual(expect.arrayContaining([egroupWrite, drain]));
    }
    expect(new Set(estore.map((s) => s.attributes['strata.disk'])).size).toBe(2);

    // The metadata puts: the extent-group map (created, then the write recorded) and the vDisk map row.
    const mdPuts = below.filter((s) => /^handle strata\.md\.\d+\.put$/.test(s.name));
    for (const s of mdPuts) {
      expect(s.serviceName).toBe('metadata-shard');
      expect(forest.parentOf(s)?.name).toBe(s.name.replace(/^handle/, 'request'));
      expect(forest.ancestorsOf(s)).toContain(drain);
      expect(s.attributes['strata.md.partition']).toBe(Number(/^handle strata\.md\.(\d+)\.put$/.exec(s.name)![1]));
    }
    const putMaps = mdPuts.map((s) => `${text(s, 'strata.md.map')} ${text(s, 'strata.md.key')}`);
    if (!putMaps.some((p) => p.startsWith('egroup ')) || !putMaps.some((p) => p.startsWith('vdisk '))) throw new Error(`expected egroup and vdisk map puts under the drain, got ${JSON.stringify(putMaps)}; the drain:\n${tree}`);
    expect(putMaps.filter((p) => p.startsWith('egroup '))).toContain(`egroup ${egroup}`);
  });

  it("in the default layout (a node's actors in one process) Zipkin names each span after its actor: the same services in the write's trace, drain included; a takeover's event names its trace", async () => {
    // After the first case, which stopped its cluster; Zipkin keeps running.
    const colocated = mkdtempSync(join(tmpdir(), 'strata-e2e-tracing-colocated-'));
    const file = join(colocated, 'spans.jsonl');
    const startedHere = new Map<number, string>();
    let second: Awaited<ReturnType<typeof startUp>> | undefined;
    try {
      second = await startUp(colocated, file, zipkinPort, [], startedHere);
      await qemuIo(`nbd://127.0.0.1:${second.nbdPort}/demo`, ['write -P 0x5b 0 4k']);
      await waitForWriteAndDrain(file);
      const spans = await readSpanFile(file);
      // The span file names the processes: the write's hops are all in node 1's node-host
      // (the config service may claim the vDisk), its drain's in the node-hosts (a node's metadata shard runs there too).
      const trace = spans.filter((s) => s.traceId === appendOf(spans)!.traceId);
      const hops = ['nbd write', 'handle strata.io.n1.write', 'handle strata.adm.n1.write', 'handle strata.vdc.n1.write', 'oplog append', 'drain'];
      expect([...new Set(trace.filter((s) => hops.includes(s.name)).map((s) => s.serviceName))]).toEqual(['node-host']);
      expect([...new Set(trace.map((s) => s.serviceName))].filter((p) => p !== 'node-host' && p !== 'config')).toEqual([]);
      // Two processes at least: both nodes' node-hosts, each holding a replica.
      await checkZipkin(zipkin!, spans, 'zipkin-write-trace-colocated.png', 2);
      await checkTakeoverTrace(zipkin!, colocated, startedHere);
    } finally {
      await second?.up.stop(20_000);
      killIfUnchanged(startedHere);
      rmSync(colocated, { recursive: true, force: true });
    }
  }, 150_000);
});
