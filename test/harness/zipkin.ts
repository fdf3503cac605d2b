// A real Zipkin server for the tracing tests: the executable jar that
// infra/scripts/ensure-zipkin.sh keeps in the cache, on Java, on a free loopback port
// with in-memory storage; and a headless Chromium (Debian's, driven by playwright-core)
// to take a screenshot of a page of its UI.
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { chromium } from 'playwright-core';
import { freePort } from '@strata/natsd';
import { run, startProgram, type ActorProcess } from './processes';
import { waitFor } from './util';

export interface ZipkinServer {
  /** Its base URL, e.g. http://127.0.0.1:40123. */
  url: string;
  process: ActorProcess;
  stop(): Promise<void>;
}

/** A Zipkin span as its v2 API returns it. */
export interface ZipkinSpan {
  traceId: string;
  id: string;
  parentId?: string;
  name: string;
  localEndpoint?: { serviceName?: string };
  tags?: Record<string, string>;
}

/** Starts Zipkin (on `port`, or a free one) and resolves once it is healthy (the JVM takes 10 to 30 s on two busy cores). */
export async function startZipkin(port?: number): Promise<ZipkinServer> {
  const jar = await run('bash', ['infra/scripts/ensure-zipkin.sh'], { timeoutMs: 600_000 });
  if (jar.code !== 0) throw new Error(`ensure-zipkin.sh failed: ${jar.stderr}`);
  port ??= await freePort();
  const args = ['-Xms64m', '-Xmx384m', '-XX:TieredStopAtLevel=1', '-jar', jar.stdout.trim(), `--armeria.ports[0].port=${port}`, '--armeria.ports[0].ip=127.0.0.1', '--armeria.ports[0].protocols[0]=http', '--logging.level.root=WARN'];
  const process = startProgram('java', args, { name: 'zipkin' });
  const url = `http://127.0.0.1:${port}`;
  const stop = (): Promise<void> => process.stop(10_000);
  try {
    await waitFor('Zipkin to answer /health', 120_000, async () => (await fetch(`${url}/health`, { signal: AbortSignal.timeout(2_000) }).catch(() => undefined))?.ok === true, 500);
  } catch (err) {
    await stop();
    throw new Error(`${(err as Error).message}; its output: ${process.output().slice(-2000)}`);
  }
  return { url, process, stop };
}

/** The spans of trace `traceId` that Zipkin holds; none when it holds no such trace (yet). */
export async function zipkinTrace(server: ZipkinServer, traceId: string): Promise<ZipkinSpan[]> {
  const response = await fetch(`${server.url}/api/v2/trace/${traceId}`, { signal: AbortSignal.timeout(10_000) });
  if (response.status === 404) return [];
  if (!response.ok) throw new Error(`Zipkin /api/v2/trace/${traceId} answered ${response.status}: ${await response.text()}`);
  return (await response.json()) as ZipkinSpan[];
}

/** Screenshots the trace timeline of Zipkin page `url` in headless Chromium (Debian's /usr/bin/chromium) into `file`, once `selector` shows. */
export async function screenshot(url: string, file: string, selector: string): Promise<void> {
  mkdirSync(dirname(file), { recursive: true });
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'], timeout: 60_000 });
  try {
    const page = await browser.newPage({ viewport: { width: 1400, height: 1300 } });
    await page.goto(url, { timeout: 60_000 });
    await page.waitForSelector(selector, { timeout: 60_000 });
    // The trace's timeline only: the panel on the right shows the selected span's tags,
    // which hold this machine's host name and paths.
    await page.screenshot({ path: file, clip: { x: 0, y: 0, width: 915, height: 1300 } });
  } finally {
    await browser.close();
  }
}
