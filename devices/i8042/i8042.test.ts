// The controller sequences Linux uses: the reboot path (kb_wait + 0xFE), the A20 gate, and the
// i8042 driver's probe (self-test, command byte, AUX loopback), plus an absent keyboard.
import { describe, expect, test } from 'vitest';
import type { IrqLine } from '../device.ts';
import { I8042 } from './i8042.ts';

class IrqRecorder implements IrqLine {
  level = false;
  set(level: boolean): void {
    this.level = level;
  }
}

function setup() {
  let resets = 0;
  const kbdIrq = new IrqRecorder();
  const auxIrq = new IrqRecorder();
  const kbc = new I8042({ onReset: () => resets++, kbdIrq, auxIrq });
  const inb = (port: number) => kbc.pioRead(port, 1);
  const outb = (port: number, value: number) => kbc.pioWrite(port, 1, value);
  /** i8042_command-style: wait for IBF clear, write, then wait for OBF and read. */
  const command = (cmd: number, param?: number) => {
    expect(inb(0x64) & 0x02).toBe(0);
    outb(0x64, cmd);
    if (param !== undefined) outb(0x60, param);
  };
  return { kbc, inb, outb, command, kbdIrq, auxIrq, resets: () => resets };
}

describe('I8042', () => {
  test('command 0xFE pulses the reset line (Linux BOOT_KBD reboot)', () => {
    const { inb, outb, resets } = setup();
    for (let i = 0; i < 0x10000 && inb(0x64) & 0x02; i++) { /* kb_wait */ }
    outb(0x64, 0xfe);
    expect(resets()).toBe(1);
    outb(0x64, 0xff); // pulses nothing
    expect(resets()).toBe(1);
  });

  test('writing the output port with bit 0 clear resets; bit 1 is the A20 gate', () => {
    const { kbc, command, resets } = setup();
    command(0xd1, 0xdd); // A20 off (arch/x86/boot/a20.c writes 0xDD/0xDF)
    expect(kbc.a20Enabled()).toBe(false);
    command(0xd1, 0xdf);
    expect(kbc.a20Enabled()).toBe(true);
    expect(resets()).toBe(0);
    command(0xd1, 0xde);
    expect(resets()).toBe(1);
  });

  test('the driver probe: self-test, command byte round trip, AUX loopback', () => {
    const { inb, command, kbdIrq, auxIrq } = setup();
    expect(inb(0x64) & 0x01).toBe(0); // nothing to flush
    command(0xaa);
    expect(inb(0x64) & 0x01).toBe(1);
    expect(inb(0x60)).toBe(0x55);
    command(0x20);
    const ctr = inb(0x60);
    expect(ctr & 0x04).toBe(0x04);
    command(0x60, ctr & ~0x03); // interrupts off while probing
    command(0x20);
    expect(inb(0x60)).toBe(ctr & ~0x03);
    command(0xd3, 0x5a);
    expect(inb(0x64) & 0x21).toBe(0x21); // the byte came from the AUX channel
    expect(auxIrq.level).toBe(false); // AUX interrupt is off in the command byte
    expect(inb(0x60)).toBe(0x5a);
    command(0x60, 0x47); // keyboard interrupt on
    command(0xab);
    expect(kbdIrq.level).toBe(true);
    expect(inb(0x60)).toBe(0x00);
    expect(kbdIrq.level).toBe(false);
  });

  test('bytes for the absent keyboard come back as 0xFF with the timeout bit', () => {
    const { inb, outb } = setup();
    outb(0x60, 0xf2); // atkbd: get ID
    expect(inb(0x64) & 0x41).toBe(0x41);
    expect(inb(0x60)).toBe(0xff);
    expect(inb(0x64) & 0x41).toBe(0);
  });
});
