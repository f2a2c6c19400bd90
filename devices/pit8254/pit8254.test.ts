// The PIT driven as Linux drives it (drivers/clocksource/i8253.c clockevent and clocksource,
// arch/x86/kernel/tsc.c PIT calibration), with guest time advanced explicitly.
import { describe, expect, test } from 'vitest';
import type { IrqLine } from '../device.ts';
import { InstructionClock, ManualClock } from '../clock.ts';
import { PicPair } from '../pic8259/pic8259.ts';
import { PIT_HZ, Pit8254, nsForTicks, ticksIn } from './pit8254.ts';

class IrqRecorder implements IrqLine {
  level = false;
  rising = 0;
  set(level: boolean): void {
    if (level === this.level) throw new Error(`IRQ 0 set to ${level} twice: set() is for level changes`);
    if (level) this.rising++;
    this.level = level;
  }
}

const LATCH_HZ100 = Math.floor((PIT_HZ + 50) / 100); // 11932, Linux's PIT_LATCH for HZ=100

function setup() {
  const clock = new ManualClock(5_000_000_000); // not at 0: offsets must not matter
  const irq = new IrqRecorder();
  const pit = new Pit8254({ clock, irq });
  const outb = (port: number, v: number) => pit.pioWrite(port, 1, v);
  const inb = (port: number) => pit.pioRead(port, 1);
  /** Advance guest time by `ticks` PIT clocks from the last programming point `t0`. */
  const at = (t0: number, ticks: number) => {
    clock.set(t0 + nsForTicks(ticks));
    pit.update();
  };
  return { clock, irq, pit, outb, inb, at };
}

describe('tick arithmetic', () => {
  test('ticksIn and nsForTicks are exact inverses at every scale', () => {
    for (const n of [1, 2, 255, 11932, 65536, PIT_HZ - 1, PIT_HZ, PIT_HZ + 1, 123_456_789, 1e12 + 7]) {
      const ns = nsForTicks(n);
      expect(ticksIn(ns)).toBeGreaterThanOrEqual(n);
      expect(ticksIn(ns - 1)).toBeLessThan(n);
    }
    expect(ticksIn(1e9)).toBe(PIT_HZ);
    expect(ticksIn(86_400e9)).toBe(86_400 * PIT_HZ);
  });
});

describe('Pit8254 channel 0 as the Linux clockevent', () => {
  test('periodic (mode 2, pit_set_periodic): one IRQ 0 edge per period, deadline announced', () => {
    const { clock, irq, pit, outb, at } = setup();
    outb(0x43, 0x34);
    outb(0x40, LATCH_HZ100 & 0xff);
    outb(0x40, LATCH_HZ100 >> 8);
    const t0 = clock.nowNs();
    const before = irq.rising;
    expect(pit.nextDeadlineNs()).toBe(t0 + nsForTicks(LATCH_HZ100));
    expect(pit.nextDeadlineNs() - t0).toBeCloseTo(10_000_000, -4); // 100 Hz
    at(t0, LATCH_HZ100 - 1);
    expect(irq.rising).toBe(before);
    for (let k = 1; k <= 10; k++) {
      at(t0, k * LATCH_HZ100);
      expect(irq.rising).toBe(before + k);
      expect(pit.nextDeadlineNs()).toBe(t0 + nsForTicks((k + 1) * LATCH_HZ100));
    }
  });

  test('periods missed between updates coalesce into one request', () => {
    const { clock, irq, outb, at } = setup();
    outb(0x43, 0x34);
    outb(0x40, 100);
    outb(0x40, 0);
    const t0 = clock.nowNs();
    const before = irq.rising;
    at(t0, 1000);
    expect(irq.rising).toBe(before + 1);
    at(t0, 1100);
    expect(irq.rising).toBe(before + 2);
  });

  test('one-shot (mode 4, pit_set_oneshot + pit_next_event): a single edge after delta + 1 clocks', () => {
    const { clock, irq, pit, outb, at } = setup();
    outb(0x43, 0x38);
    const delta = 1193;
    outb(0x40, delta & 0xff);
    outb(0x40, delta >> 8);
    const t0 = clock.nowNs();
    const before = irq.rising;
    expect(pit.nextDeadlineNs()).toBe(t0 + nsForTicks(delta + 1));
    at(t0, delta);
    expect(irq.rising).toBe(before); // OUT is in its low clock now
    expect(irq.level).toBe(false);
    at(t0, delta + 1);
    expect(irq.rising).toBe(before + 1);
    expect(pit.nextDeadlineNs()).toBe(Infinity);
    at(t0, 100_000);
    expect(irq.rising).toBe(before + 1);
    // The next event re-arms it.
    outb(0x40, 10);
    outb(0x40, 0);
    const t1 = clock.nowNs();
    at(t1, 11);
    expect(irq.rising).toBe(before + 2);
  });

  test('mode 0: OUT low when programmed, high at terminal count and stays high', () => {
    const { clock, irq, outb, at } = setup();
    outb(0x43, 0x30);
    expect(irq.level).toBe(false);
    outb(0x40, 0);
    outb(0x40, 1); // 256
    const t0 = clock.nowNs();
    const before = irq.rising;
    at(t0, 255);
    expect(irq.level).toBe(false);
    at(t0, 256);
    expect([irq.level, irq.rising]).toEqual([true, before + 1]);
    at(t0, 70_000);
    expect([irq.level, irq.rising]).toEqual([true, before + 1]);
  });

  test('an expired one-shot is delivered even if the guest reprograms before update() runs', () => {
    const { clock, irq, outb } = setup();
    outb(0x43, 0x38);
    outb(0x40, 50);
    outb(0x40, 0);
    const before = irq.rising;
    clock.advance(nsForTicks(1000));
    outb(0x40, 50); // a port write syncs first
    expect(irq.rising).toBe(before + 1);
  });

  test('an idle (halted) guest under --deterministic: time skips to the deadline', () => {
    let instructions = 0;
    const clock = new InstructionClock(() => instructions, 10);
    const irq = new IrqRecorder();
    const pit = new Pit8254({ clock, irq });
    pit.pioWrite(0x43, 1, 0x34);
    pit.pioWrite(0x40, 1, LATCH_HZ100 & 0xff);
    pit.pioWrite(0x40, 1, LATCH_HZ100 >> 8);
    const before = irq.rising;
    instructions += 1000; // then HLT
    clock.skipTo(pit.nextDeadlineNs());
    pit.update();
    expect(irq.rising).toBe(before + 1);
    expect(clock.nowNs()).toBe(nsForTicks(LATCH_HZ100));
  });
});

describe('Pit8254 reads: latch, read-back, access modes', () => {
  test('counter latch (the i8253 clocksource read) freezes the count until both bytes are read', () => {
    const { clock, outb, inb } = setup();
    outb(0x43, 0x34);
    outb(0x40, 1000 & 0xff);
    outb(0x40, 1000 >> 8);
    const t0 = clock.nowNs();
    clock.set(t0 + nsForTicks(100));
    outb(0x43, 0x00);
    clock.set(t0 + nsForTicks(300));
    outb(0x43, 0x00); // a second latch before reading is ignored
    expect(inb(0x40) | (inb(0x40) << 8)).toBe(900);
    expect(inb(0x40) | (inb(0x40) << 8)).toBe(700); // unlatched: the live count
    clock.set(t0 + nsForTicks(1000));
    expect(inb(0x40) | (inb(0x40) << 8)).toBe(1000); // reloaded at the period's end
  });

  test('read-back latches status (OUT, NULL COUNT, access, mode, BCD) and count', () => {
    const { clock, outb, inb } = setup();
    outb(0x43, 0x34);
    outb(0x43, 0xe2); // status only, channel 0
    expect(inb(0x40)).toBe(0x80 | 0x40 | 0x34); // no count yet: NULL COUNT
    outb(0x40, 0x10);
    outb(0x40, 0x00);
    const t0 = clock.nowNs();
    clock.set(t0 + nsForTicks(4));
    outb(0x43, 0xc2); // status and count, channel 0
    expect(inb(0x40)).toBe(0x80 | 0x34);
    expect([inb(0x40), inb(0x40)]).toEqual([0x0c, 0x00]);
  });

  test('LSB-only and MSB-only access', () => {
    const { clock, outb, inb } = setup();
    outb(0x43, 0x54); // channel 1, LSB only, mode 2
    outb(0x41, 18); // DRAM refresh style
    const t0 = clock.nowNs();
    clock.set(t0 + nsForTicks(5));
    expect(inb(0x41)).toBe(13);
    outb(0x43, 0x64); // MSB only
    outb(0x41, 0x02); // count 0x200
    clock.set(clock.nowNs() + nsForTicks(256));
    expect(inb(0x41)).toBe(0x01);
  });

  test('BCD counting', () => {
    const { clock, outb, inb } = setup();
    outb(0x43, 0x35); // channel 0, lo/hi, mode 2, BCD
    outb(0x40, 0x00);
    outb(0x40, 0x10); // 1000 decimal
    const t0 = clock.nowNs();
    clock.set(t0 + nsForTicks(1));
    expect([inb(0x40), inb(0x40)]).toEqual([0x99, 0x09]);
  });
});

describe('Pit8254 channel 2 and port 0x61 (TSC calibration)', () => {
  test('pit_calibrate_tsc: gate on, mode 0, poll OUT2 in port 0x61 bit 5', () => {
    const { clock, outb, inb } = setup();
    outb(0x61, (inb(0x61) & ~0x02) | 0x01);
    outb(0x43, 0xb0);
    const latch = Math.floor(PIT_HZ / 100); // 10 ms
    outb(0x42, latch & 0xff);
    outb(0x42, latch >> 8);
    const t0 = clock.nowNs();
    expect(inb(0x61) & 0x20).toBe(0);
    clock.set(t0 + nsForTicks(latch) - 1);
    expect(inb(0x61) & 0x20).toBe(0);
    clock.set(t0 + nsForTicks(latch));
    expect(inb(0x61) & 0x20).toBe(0x20);
    expect(inb(0x61) & 0x0f).toBe(0x01); // gate on, speaker off
  });

  test('quick_pit_calibrate: the MSB of a free-running 0xFFFF count steps every 256 clocks', () => {
    const { clock, outb, inb } = setup();
    outb(0x61, (inb(0x61) & ~0x02) | 0x01);
    outb(0x43, 0xb0);
    outb(0x42, 0xff);
    outb(0x42, 0xff);
    const t0 = clock.nowNs();
    const msb = () => (inb(0x42), inb(0x42)); // pit_verify_msb: LSB, then MSB
    expect(msb()).toBe(0xff);
    clock.set(t0 + nsForTicks(255));
    expect(msb()).toBe(0xff);
    clock.set(t0 + nsForTicks(256));
    expect(msb()).toBe(0xfe);
    clock.set(t0 + nsForTicks(256 * 10 + 3));
    expect(msb()).toBe(0xf5);
  });

  test('the gate pauses mode 0 counting and resumes it', () => {
    const { clock, outb, inb } = setup();
    outb(0x61, 0x01);
    outb(0x43, 0xb0);
    outb(0x42, 0x00);
    outb(0x42, 0x10); // 4096
    const t0 = clock.nowNs();
    clock.set(t0 + nsForTicks(96));
    outb(0x61, 0x00); // gate low
    clock.set(t0 + nsForTicks(5000));
    expect(inb(0x42) | (inb(0x42) << 8)).toBe(4000);
    expect(inb(0x61) & 0x20).toBe(0);
    const t1 = clock.nowNs();
    outb(0x61, 0x01);
    clock.set(t1 + nsForTicks(4000));
    expect(inb(0x61) & 0x20).toBe(0x20);
  });

  test('mode 3 square wave on channel 2: OUT2 high for the first half of each period', () => {
    const { clock, outb, inb } = setup();
    outb(0x61, 0x03); // gate and speaker on: a beep
    outb(0x43, 0xb6);
    outb(0x42, 100);
    outb(0x42, 0);
    const t0 = clock.nowNs();
    const out2At = (ticks: number) => {
      clock.set(t0 + nsForTicks(ticks));
      return (inb(0x61) & 0x20) !== 0;
    };
    expect([out2At(0), out2At(49), out2At(50), out2At(99), out2At(100), out2At(150)]).toEqual([true, true, false, false, true, false]);
  });

  test('the refresh bit toggles with guest time', () => {
    const { clock, inb } = setup();
    const a = inb(0x61) & 0x10;
    clock.advance(15_085);
    expect(inb(0x61) & 0x10).toBe(a ^ 0x10);
  });
});

describe('Pit8254 through the real 8259 pair', () => {
  test('every period of a mode 2 tick reaches the CPU as vector 0x30 once it is EOIed', () => {
    const pic = new PicPair();
    const clock = new ManualClock();
    const pit = new Pit8254({ clock, irq: pic.irqLine(0) });
    // Linux: init the PIC pair, unmask IRQ 0, then program the periodic tick.
    for (const [port, v] of [[0x20, 0x11], [0x21, 0x30], [0x21, 0x04], [0x21, 0x01], [0xa0, 0x11], [0xa1, 0x38], [0xa1, 0x02], [0xa1, 0x01], [0x21, 0xfe], [0xa1, 0xff]] as const) {
      pic.pioWrite(port, 1, v);
    }
    pit.pioWrite(0x43, 1, 0x34);
    pit.pioWrite(0x40, 1, LATCH_HZ100 & 0xff);
    pit.pioWrite(0x40, 1, LATCH_HZ100 >> 8);
    expect(pic.hasInterrupt()).toBe(false); // OUT0 stayed high: no edge until the first period ends
    let ticks = 0;
    for (let k = 0; k < 50; k++) {
      clock.set(pit.nextDeadlineNs());
      pit.update();
      expect(pic.hasInterrupt()).toBe(true);
      expect(pic.acknowledge()).toBe(0x30);
      pic.pioWrite(0x20, 1, 0x60); // specific EOI, IRQ 0
      ticks++;
    }
    expect(ticks).toBe(50);
    expect(clock.nowNs()).toBe(nsForTicks(50 * LATCH_HZ100));
    expect(pic.hasInterrupt()).toBe(false);
  });
});
