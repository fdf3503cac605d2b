// Sizes as operators type them, and as the CLI prints them.
import { UsageError, formatSize, parseCount, parseSize, table } from '../src/units';

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
    expect(() => parseCount('3x', '--rf')).toThrow(/--rf: "3x" is not a whole number/);
  });

  it('aligns table columns', () => {
    expect(table(['NAME', 'SIZE'], [['demo', '1 GiB'], ['a-longer-name', '2 TiB']])).toBe('NAME           SIZE\ndemo           1 GiB\na-longer-name  2 TiB');
  });
});
