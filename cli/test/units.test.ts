// Sizes, counts and choices as operators type them, values checked against the
// config schemas before anything is sent, and sizes as the CLI prints them.
import { containerSpec } from '@strata/proto';
import { UsageError, checkValue, formatSize, parseChoice, parseCount, parseSize, table } from '../src/units';

describe('sizes', () => {
  it.each([
    ['512', 512],
    ['4K', 4096],
    ['4k', 4096],
    ['4KiB', 4096],
    ['512M', 512 * 2 ** 20],
    ['10G', 10 * 2 ** 30],
    ['1.5G', 1.5 * 2 ** 30],
    ['1T', 2 ** 40],
    [' 2 GB ', 2 * 2 ** 30],
  ])('parses %j as %d bytes', (text, bytes) => {
    expect(parseSize(text, '--size')).toBe(bytes);
  });

  it.each(['', 'ten', '10Q', '-5G', '1.3', '1e9', '10 G G'])('refuses %j with a usage error naming the option', (text) => {
    expect(() => parseSize(text, '--size')).toThrow(UsageError);
    expect(() => parseSize(text, '--size')).toThrow(/^--size: /);
  });

  it('prints binary units', () => {
    expect(formatSize(512)).toBe('512 B');
    expect(formatSize(1536)).toBe('1.5 KiB');
    expect(formatSize(2 ** 30)).toBe('1 GiB');
    expect(formatSize(3 * 2 ** 40)).toBe('3 TiB');
  });

  it('parses counts strictly', () => {
    expect(parseCount('3', '--rf')).toBe(3);
    expect(parseCount('0', '--nodes')).toBe(0);
    expect(() => parseCount('3x', '--rf')).toThrow(/--rf: "3x" is not a whole number/);
    expect(() => parseCount('-1', '--rf')).toThrow(/--rf: "-1" is not a whole number/);
    expect(() => parseCount('0', '--limit', 1)).toThrow(new UsageError('--limit: "0" must be at least 1'));
    expect(() => parseCount('99999999999999999999', '--limit')).toThrow(new UsageError('--limit: "99999999999999999999" is too large'));
  });

  it('parses choices among a closed set, listing them when the value is not one', () => {
    expect(parseChoice('hdd', ['ssd', 'hdd'], '--tier')).toBe('hdd');
    expect(() => parseChoice('HDD', ['ssd', 'hdd'], '--tier')).toThrow(new UsageError('--tier: "HDD" is not one of ssd, hdd'));
  });

  it("checks a value with the config schema's rule and words", () => {
    expect(checkValue(containerSpec.shape.replicationFactor, 3, '--rf', '3')).toBe(3);
    expect(() => checkValue(containerSpec.shape.replicationFactor, 6, '--rf', '6')).toThrow(new UsageError('--rf: "6" must be between 1 and 5'));
  });

  it('aligns table columns', () => {
    expect(table(['NAME', 'SIZE'], [['demo', '1 GiB'], ['a-longer-name', '2 TiB']])).toBe('NAME           SIZE\ndemo           1 GiB\na-longer-name  2 TiB');
  });
});
