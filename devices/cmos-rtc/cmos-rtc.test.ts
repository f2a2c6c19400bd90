// Reads and sets the RTC the way Linux does (mc146818_get_time / mc146818_set_time): index on
// port 0x70, data on 0x71, BCD unless register B says binary.
import { describe, expect, test } from 'vitest';
import { ManualClock } from '../clock.ts';
import { CmosRtc } from './cmos-rtc.ts';

// 2026-11-21 17:30:45.000 UTC, a Saturday.
const BASE = Date.UTC(2026, 10, 21, 17, 30, 45);

function setup() {
  const clock = new ManualClock();
  const rtc = new CmosRtc({ clock, baseUnixMs: BASE });
  const read = (reg: number) => {
    rtc.pioWrite(0x70, 1, reg);
    return rtc.pioRead(0x71, 1);
  };
  const write = (reg: number, value: number) => {
    rtc.pioWrite(0x70, 1, reg);
    rtc.pioWrite(0x71, 1, value);
  };
  return { rtc, clock, read, write };
}

describe('CmosRtc', () => {
  test('shows the time and date in BCD, 24-hour mode, with the century byte', () => {
    const { read } = setup();
    expect([read(0x00), read(0x02), read(0x04)]).toEqual([0x45, 0x30, 0x17]);
    expect([read(0x06), read(0x07), read(0x08), read(0x09), read(0x32)]).toEqual([0x07, 0x21, 0x11, 0x26, 0x20]);
    expect(read(0x0b)).toBe(0x02); // 24-hour, BCD, no interrupts
    expect(read(0x0d)).toBe(0x80); // valid RAM and time
    expect(read(0x0c)).toBe(0x00);
  });

  test('follows the guest clock, not the host clock', () => {
    const { read, clock } = setup();
    clock.advance(15e9 + 2 * 60e9);
    expect([read(0x00), read(0x02)]).toEqual([0x00, 0x33]);
  });

  test('UIP is set only in the 244 µs before each second ends', () => {
    const { read, clock } = setup();
    clock.advance(999_700_000);
    expect(read(0x0a) & 0x80).toBe(0);
    clock.advance(100_000);
    expect(read(0x0a)).toBe(0x80 | 0x26);
    clock.advance(300_000);
    expect(read(0x0a)).toBe(0x26);
    expect(read(0x00)).toBe(0x46);
  });

  test('binary and 12-hour formats follow register B', () => {
    const { read, write } = setup();
    write(0x0b, 0x04); // binary, 12-hour
    expect(read(0x00)).toBe(45);
    expect(read(0x04)).toBe(0x80 | 5); // 5 PM
    expect(read(0x09)).toBe(26);
  });

  test('setting the time under B.SET (hwclock -w) moves the clock and keeps it running', () => {
    const { rtc, read, write, clock } = setup();
    write(0x0b, 0x82);
    write(0x00, 0x59);
    write(0x02, 0x59);
    write(0x04, 0x23);
    write(0x07, 0x31);
    write(0x08, 0x12);
    write(0x09, 0x99);
    write(0x32, 0x19);
    expect(read(0x09)).toBe(0x99); // under SET the registers show what was written
    write(0x0b, 0x02);
    expect(new Date(rtc.unixMs()).toISOString()).toBe('1999-12-31T23:59:59.000Z');
    clock.advance(1e9);
    expect([read(0x00), read(0x02), read(0x04), read(0x07), read(0x08), read(0x09), read(0x32)])
      .toEqual([0x00, 0x00, 0x00, 0x01, 0x01, 0x00, 0x20]);
  });

  test('NVRAM bytes keep their values; bit 7 of the index is the NMI mask', () => {
    const { rtc, read, write } = setup();
    write(0x0f, 0x00);
    write(0x40, 0xa5);
    expect(read(0x40)).toBe(0xa5);
    expect(rtc.nmiMasked()).toBe(false);
    rtc.pioWrite(0x70, 1, 0x80 | 0x40);
    expect(rtc.nmiMasked()).toBe(true);
    expect(rtc.pioRead(0x71, 1)).toBe(0xa5);
  });
});
