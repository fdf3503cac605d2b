// The gateway's report of open vDisks (hb, attach.<node>), which `strata vdisk rm`
// reads: counts per vDisk as connections open and close, one write at a time with the
// newest counts last, and the report deleted when the gateway stops.
import type { GatewayAttachments } from '@strata/proto';
import { Attachments } from '../src/attachments';

function setup() {
  const written: GatewayAttachments[] = [];
  let removed = 0;
  let release: (() => void) | undefined;
  const attachments = new Attachments({
    node: 'n1',
    intervalMs: 60_000,
    put: async (report) => {
      written.push(report);
      // The first write is slow: later changes wait for it and are coalesced.
      if (written.length === 1) await new Promise<void>((resolve) => (release = resolve));
    },
    remove: async () => void removed++,
    warn: () => undefined,
  });
  return { attachments, written, removed: () => removed, release: () => release?.() };
}

const settle = () => new Promise((resolve) => setImmediate(resolve));

it('counts connections per vDisk, writes one report at a time with the newest counts last, and deletes it on stop', async () => {
  const { attachments, written, removed, release } = setup();
  const a = attachments.add(7n);
  const b = attachments.add(7n);
  const c = attachments.add(8n);
  c();
  c(); // a second release changes nothing
  await settle();
  // Only the initial (empty) report has been written; the changes wait for it.
  expect(written.map((r) => r.vdisks)).toEqual([[]]);
  release();
  await settle();
  await settle();
  expect(written.at(-1)?.vdisks).toEqual([{ vdisk: 7n, connections: 2 }]);
  expect(written.length).toBe(2);
  a();
  b();
  await settle();
  await settle();
  expect(written.at(-1)).toMatchObject({ node: 'n1', vdisks: [], intervalMs: 60_000 });
  await attachments.stop();
  expect(removed()).toBe(1);
  attachments.add(9n);
  await settle();
  expect(written.at(-1)?.vdisks).toEqual([]);
});
