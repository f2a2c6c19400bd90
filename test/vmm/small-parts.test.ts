// The VMM's small pure parts: sizes, the I/O bus, the console tail.
import { describe, expect, test } from 'vitest';
import { ConsoleTail } from '../../cli/console-tail.ts';
import { BusConflictError, IoBus } from '../../vmm/io-bus.ts';
import { formatSize, parseSize } from '../../cli/size.ts';

describe('sizes', () => {
  test('parses the forms users write', () => {
    expect(parseSize('256M', '--mem')).toBe(256 * 2 ** 20);
    expect(parseSize('1G', '--mem')).toBe(2 ** 30);
    expect(parseSize('512', '--mem')).toBe(512 * 2 ** 20);
    expect(parseSize('64KiB', '--mem')).toBe(65536);
    expect(parseSize('1.5g', '--mem')).toBe(1.5 * 2 ** 30);
    expect(formatSize(3 * 2 ** 30)).toBe('3 GiB');
  });
  test('names the option and the expected form on bad input', () => {
    expect(() => parseSize('lots', '--mem')).toThrow(/--mem: "lots" is not a size; write it like 256M/);
    expect(() => parseSize('0.3k', '--mem')).toThrow(/not a whole number/);
  });
});

describe('I/O bus', () => {
  const recorder = (name: string) => {
    const writes: [number, number, number][] = [];
    return {
      name, writes,
      pioRead: (port: number, size: number) => port + size,
      pioWrite: (port: number, size: number, value: number) => { writes.push([port, size, value]); },
    };
  };
  test('routes by port, answers all-ones where nothing is', () => {
    const bus = new IoBus();
    const a = recorder('a');
    bus.addPio(0x3f8, 8, a);
    expect(bus.pioRead(0x3fd, 1)).toBe(0x3fe);
    bus.pioWrite(0x3f8, 1, 0x41);
    expect(a.writes).toEqual([[0x3f8, 1, 0x41]]);
    expect(bus.pioRead(0x400, 1)).toBe(0xff);
    expect(bus.pioRead(0x400, 2)).toBe(0xffff);
    expect(bus.pioRead(0x400, 4)).toBe(0xffffffff);
    expect(bus.mmioRead(0xd000_0000, 8)).toBe(0xffff_ffff_ffff_ffffn);
  });
  test('refuses overlapping devices, naming both', () => {
    const bus = new IoBus();
    bus.addPio(0x3f8, 8, recorder('uart'));
    expect(() => bus.addPio(0x3ff, 2, recorder('other'))).toThrow(BusConflictError);
    expect(() => bus.addPio(0x3ff, 2, recorder('other'))).toThrow(/other .* overlaps uart/);
  });
});

describe('console tail', () => {
  test('finds the panic banner across chunk boundaries and keeps the last lines', () => {
    const tail = new ConsoleTail();
    const text = new TextEncoder().encode('boot\r\nline 2\r\n[ 1.0] Kernel pan');
    tail.push(text);
    expect(tail.panic).toBeUndefined();
    tail.push(new TextEncoder().encode('ic - not syncing: VFS: Unable to mount root fs\r\n'));
    expect(tail.panic).toBe('[ 1.0] Kernel panic - not syncing: VFS: Unable to mount root fs');
    expect(tail.tail()).toEqual(['boot', 'line 2', '[ 1.0] Kernel panic - not syncing: VFS: Unable to mount root fs']);
    for (let i = 0; i < 40; i++) tail.push(new TextEncoder().encode(`l${i}\n`));
    expect(tail.tail()).toHaveLength(25);
    expect(tail.tail().at(-1)).toBe('l39');
  });
});

test('console tail: a banner line split mid-way reports the whole line once it completes', () => {
  const tail = new ConsoleTail();
  tail.push(new TextEncoder().encode('Kernel panic - not syncing'));
  expect(tail.panic).toBe('Kernel panic - not syncing');
  tail.push(new TextEncoder().encode(': Attempted to kill init!\n'));
  expect(tail.panic).toBe('Kernel panic - not syncing: Attempted to kill init!');
});
