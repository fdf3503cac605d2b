// The gateway's NBD listener policy: plain NBD only on loopback unless TLS is
// configured or the operator says --nbd-insecure.
import { SettingsError, isLoopbackHost, readSettings } from '@strata/actor';
import { gatewaySettings } from '../src/settings';

const read = (...flags: string[]): ReturnType<typeof gatewaySettings.parse> => readSettings(gatewaySettings, ['--node', 'n1', ...flags], {});

describe('gateway settings', () => {
  test('loopback listeners are plain by default', () => {
    expect(read()).toMatchObject({ nbdHost: '127.0.0.1', nbdInsecure: false });
    expect(read('--nbd-host', '127.0.0.2').nbdTlsDir).toBeUndefined();
    expect(read('--nbd-host', 'localhost').nbdHost).toBe('localhost');
  });

  test.each(['0.0.0.0', '::', '10.0.0.5', 'gw1.example'])('a listener on %s without TLS is refused, naming both flags', (host) => {
    expect(() => read('--nbd-host', host)).toThrow(SettingsError);
    expect(() => read('--nbd-host', host)).toThrow(/--nbd-host \(STRATA_NBD_HOST\): plain NBD has no authentication: a listener beyond loopback needs --nbd-tls-dir DIR .*, or --nbd-insecure true/);
  });

  test('a non-loopback listener starts with TLS, or with --nbd-insecure', () => {
    expect(read('--nbd-host', '10.0.0.5', '--nbd-tls-dir', '/etc/strata/nbd-server')).toMatchObject({ nbdHost: '10.0.0.5', nbdTlsDir: '/etc/strata/nbd-server' });
    expect(read('--nbd-host', '10.0.0.5', '--nbd-insecure', 'true').nbdInsecure).toBe(true);
    expect(readSettings(gatewaySettings, ['--node', 'n1'], { STRATA_NBD_HOST: '0.0.0.0', STRATA_NBD_INSECURE: '1' }).nbdInsecure).toBe(true);
  });

  test('an export open must end inside the handshake', () => {
    expect(read()).toMatchObject({ openTimeoutMs: 8_000, handshakeTimeoutMs: 10_000 });
    expect(() => read('--open-timeout-ms', '10000')).toThrow(/--open-timeout-ms \(STRATA_OPEN_TIMEOUT_MS\): openTimeoutMs must be less than handshakeTimeoutMs/);
    expect(read('--open-timeout-ms', '10000', '--handshake-timeout-ms', '12000').openTimeoutMs).toBe(10_000);
  });

  test('isLoopbackHost: 127.0.0.0/8, ::1 and localhost only', () => {
    expect(['127.0.0.1', '127.1.2.3', '::1', 'localhost'].map(isLoopbackHost)).toEqual([true, true, true, true]);
    expect(['0.0.0.0', '::', '10.0.0.1', '128.0.0.1', '127.example', '::ffff:127.0.0.1'].map(isLoopbackHost)).toEqual([false, false, false, false, false, false]);
  });
});
