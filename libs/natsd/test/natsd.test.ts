// What the servers Strata starts are told, and which servers it accepts: pure checks
// of the generated config (fsync before every acknowledgement unless a test turns it
// off), of version comparison, and of the verdict on an existing cluster's reports.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NATS_SERVER_MIN_VERSION, NATS_SERVER_PINNED, NatsServerProcess, fsyncVerdict, versionAtLeast } from '../src';

describe('nats-server config', () => {
  const dir = mkdtempSync(join(tmpdir(), 'strata-natsd-unit-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const configOf = (spec: Partial<ConstructorParameters<typeof NatsServerProcess>[0]>): string => {
    const name = `s${Math.random().toString(36).slice(2)}`;
    new NatsServerProcess({ name, port: 1, dir: join(dir, name), ...spec });
    return readFileSync(join(dir, name, 'nats.conf'), 'utf8');
  };

  it('fsyncs every JetStream write before acknowledging it, by default', () => {
    expect(configOf({})).toMatch(/jetstream \{[^}]*\n\s*sync_interval: always\n[^}]*\}/);
  });

  it('leaves it out only when asked (syncAlways: false), and adds a monitoring port when asked', () => {
    expect(configOf({ syncAlways: false })).not.toMatch(/sync_interval/);
    expect(configOf({ monitorPort: 8999 })).toMatch(/^http: 127\.0\.0\.1:8999$/m);
  });
});

describe('versions', () => {
  it('compares releases part by part', () => {
    expect(versionAtLeast('v2.15.3', '2.12.0')).toBe(true);
    expect(versionAtLeast('2.12.0', '2.12.0')).toBe(true);
    expect(versionAtLeast('v2.9.10', '2.12.0')).toBe(false);
    expect(versionAtLeast('v2.11.99', '2.12.0')).toBe(false);
    expect(versionAtLeast('v3.0.0', '2.12.0')).toBe(true);
    expect(versionAtLeast('garbage', '2.12.0')).toBe(false);
  });

  it('pins a release at least as new as the minimum', () => {
    expect(versionAtLeast(NATS_SERVER_PINNED, NATS_SERVER_MIN_VERSION)).toBe(true);
  });
});

describe('the fsync verdict on an existing cluster', () => {
  it('accepts only when every server named says it syncs always', () => {
    expect(fsyncVerdict([{ url: 'a', syncAlways: true }, { url: 'b', syncAlways: true }])).toEqual({ ok: true });
    expect(fsyncVerdict([{ url: 'a', syncAlways: true }, { url: 'b', syncAlways: false }])).toEqual({ ok: false, why: expect.stringMatching(/^JetStream on b does not fsync/) as string });
    expect(fsyncVerdict([{ url: 'a', syncAlways: true }, { url: 'b', error: 'refused' }])).toEqual({ ok: false, why: 'cannot read the JetStream settings of b (refused)' });
    expect(fsyncVerdict([])).toEqual({ ok: false, why: expect.stringMatching(/^cannot tell/) as string });
  });
});
