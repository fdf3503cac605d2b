// The web console (`strata console`) watched in headless Chromium (Debian's, through
// playwright-core) while a node fails. A `strata up` cluster of three nodes (short
// liveness timings; a killed node is not restarted within the test), a shared vDisk
// `data` opened through n1 (its owner) and then through n3 (a volunteer). The page,
// left open, must show the three nodes alive, the vDisk's owner n1, every process up;
// then every process of n1 is killed -9, and the same page, updated by its event
// stream with no reload, must show n1 dead, its processes down, the vDisk owned by n3
// at a higher epoch, and the events with their reasons (node.dead, owner.changed
// naming n1 -> n3 and the cause). Screenshots before and after are kept in
// test/artifacts/. Bad requests get a clear answer.
import { chromium, type Browser, type Page } from 'playwright-core';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { UpClusters, freePort, qemuIo, repoRoot, startNode, type ActorProcess, type UpCluster } from '../harness';
import { HA_TEST_ENV, hostProcesses, killAll, strata } from '../harness/ha';
import { createdId, readOwnership } from '../harness/strata';

const clusters = new UpClusters('console');
const artifacts = join(repoRoot, 'test', 'artifacts');

describe('the web console shows a node failing, its vDisks moving and the reasons, live', () => {
  let cluster: UpCluster;
  let console_: ActorProcess | undefined;
  let browser: Browser | undefined;
  let url: string;

  beforeAll(async () => {
    cluster = await clusters.start({ env: { ...HA_TEST_ENV, STRATA_RESTART_DELAY_MS: '600000' } });
    const port = await freePort();
    console_ = startNode('cli/dist/main.js', ['--dir', cluster.dir, 'console', '--port', String(port)], { name: 'strata console' });
    await console_.waitForOutput(/^console: http:\/\/127\.0\.0\.1:\d+\//m, 30_000);
    url = `http://127.0.0.1:${port}`;
    browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'], timeout: 60_000 });
  }, 150_000);

  afterAll(async () => {
    await browser?.close();
    await console_?.stop(10_000);
    await clusters.stopAll();
  }, 60_000);

  it('answers bad requests clearly', async () => {
    const missing = await fetch(`${url}/nothing`);
    expect(missing.status).toBe(404);
    expect(await missing.text()).toMatch(/no page \/nothing; the console is at \//);
    expect((await fetch(`${url}/api/state`, { method: 'POST' })).status).toBe(405);
  });

  it('follows n1 failing on the open page', async () => {
    const id = createdId(await strata(cluster, ['vdisk', 'create', 'data', '--size', '64M', '--shared']));
    const at = (k: number): string => `nbd://127.0.0.1:${cluster.nbdPort + k - 1}/data`;
    await qemuIo(at(1), ['write -P 1 0 4k']);
    await qemuIo(at(3), ['write -P 3 4k 4k']);
    const before = await readOwnership(cluster.natsUrl, id);
    expect(before).toMatchObject({ owner: 'n1' });

    const page: Page = await browser!.newPage({ viewport: { width: 1500, height: 1100 } });
    await page.goto(url, { timeout: 30_000 });
    const vdiskRow = page.locator('#vdisks tr', { hasText: 'data' }).first();
    await page.locator('#nodes tr', { hasText: 'n1' }).locator('.alive').waitFor({ timeout: 30_000 });
    await expectText(vdiskRow, /data\s*n1\s*1\b/);
    // Every process of the cluster answers its metrics.
    await page.locator('#processes .up').first().waitFor({ timeout: 30_000 });
    expect(await page.locator('#processes .down').count()).toBe(0);
    const targets = JSON.parse(readFileSync(join(cluster.dir, 'metrics-targets.json'), 'utf8')) as unknown[];
    expect(await page.locator('#processes tr').count()).toBe(1 + targets.length);
    await page.screenshot({ path: join(artifacts, 'console-before.png'), fullPage: true });

    const killedAt = Date.now();
    killAll((await hostProcesses(cluster.up.pid(), 'n1')).keys());

    // The same page, no reload: n1 dead, its processes down, data on n3, and why.
    await page.locator('#nodes tr', { hasText: 'n1' }).locator('.dead').waitFor({ timeout: 30_000 });
    await expectText(vdiskRow, /data\s*n3\s*2\b/, 30_000);
    await page.locator('#events tr', { hasText: 'node.dead' }).first().waitFor({ timeout: 10_000 });
    const moved = page.locator('#events tr', { hasText: 'owner.changed' }).filter({ hasText: 'vdisk data: n1 -> n3' });
    await moved.first().waitFor({ timeout: 30_000 });
    expect(await moved.first().innerText()).toMatch(/n1 -> n3 at epoch 2 \(.*n1.*\)/);
    await page.locator('#processes tr', { hasText: 'n1-' }).locator('.down').first().waitFor({ timeout: 10_000 });
    expect(await page.locator('#processes tr', { hasText: 'n1-' }).locator('.up').count()).toBe(0);
    await page.screenshot({ path: join(artifacts, 'console-after.png'), fullPage: true });
    console.log(`the console showed the failover ${Math.round((Date.now() - killedAt) / 100) / 10} s after the kill`);
    expect(await readOwnership(cluster.natsUrl, id)).toMatchObject({ owner: 'n3', epoch: 2 });
    cluster.passed = true;
  }, 120_000);
});

/** Waits until the locator's text matches `pattern`; fails with the last text seen. */
async function expectText(locator: ReturnType<Page['locator']>, pattern: RegExp, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    last = (await locator.innerText({ timeout: 5_000 }).catch(() => '')).replace(/\s+/g, ' ');
    if (pattern.test(last)) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`expected ${pattern} within ${timeoutMs} ms; the row reads "${last}"`);
}
