// The 8259 pair driven as Linux's arch/x86/kernel/i8259.c drives it: probe, init_8259A,
// mask_and_ack_8259A with specific EOIs, the spurious-IRQ check through ISR reads, plus the
// datasheet's priority, cascade, trigger and EOI modes.
import { describe, expect, test } from 'vitest';
import { PicPair } from './pic8259.ts';

const MASTER_CMD = 0x20, MASTER_IMR = 0x21, SLAVE_CMD = 0xa0, SLAVE_IMR = 0xa1;
const VECTOR_BASE = 0x30; // ISA_IRQ_VECTOR(0) in Linux

function linuxInit(autoEoi = false) {
  const pic = new PicPair();
  const outb = (port: number, v: number) => pic.pioWrite(port, 1, v);
  const inb = (port: number) => pic.pioRead(port, 1);
  // probe_8259A: mask all but the cascade and read it back.
  outb(SLAVE_IMR, 0xff);
  outb(MASTER_IMR, 0xfb);
  expect(inb(MASTER_IMR)).toBe(0xfb);
  // init_8259A
  outb(MASTER_IMR, 0xff);
  outb(MASTER_CMD, 0x11); // ICW1: edge, cascade, ICW4 needed
  outb(MASTER_IMR, VECTOR_BASE); // ICW2
  outb(MASTER_IMR, 1 << 2); // ICW3: slave on IR2
  outb(MASTER_IMR, autoEoi ? 0x03 : 0x01); // ICW4: 8086 mode (+ auto-EOI)
  outb(SLAVE_CMD, 0x11);
  outb(SLAVE_IMR, VECTOR_BASE + 8);
  outb(SLAVE_IMR, 2); // ICW3: slave id
  outb(SLAVE_IMR, 0x01);
  outb(MASTER_IMR, 0xfb); // cached masks: everything masked except the cascade
  outb(SLAVE_IMR, 0xff);
  const unmask = (irq: number) => {
    if (irq < 8) outb(MASTER_IMR, inb(MASTER_IMR) & ~(1 << irq));
    else outb(SLAVE_IMR, inb(SLAVE_IMR) & ~(1 << (irq - 8)));
  };
  /** mask_and_ack_8259A's EOI part (without the masking, which the tests do not need). */
  const eoi = (irq: number) => {
    if (irq & 8) {
      outb(SLAVE_CMD, 0x60 + (irq & 7));
      outb(MASTER_CMD, 0x60 + 2);
    } else {
      outb(MASTER_CMD, 0x60 + irq);
    }
  };
  /** i8259A_irq_real: is the IRQ really in service? (OCW3 read-ISR, then back to IRR). */
  const inService = (irq: number) => {
    const cmd = irq < 8 ? MASTER_CMD : SLAVE_CMD;
    outb(cmd, 0x0b);
    const value = inb(cmd) & (1 << (irq & 7));
    outb(cmd, 0x0a);
    return value !== 0;
  };
  const pulse = (irq: number) => {
    pic.setIrq(irq, true);
    pic.setIrq(irq, false);
  };
  return { pic, outb, inb, unmask, eoi, inService, pulse };
}

describe('PicPair with the Linux i8259 driver', () => {
  test('a timer tick: INTR, INTA gives vector 0x30, specific EOI ends service', () => {
    const { pic, unmask, eoi, inService, pulse } = linuxInit();
    expect(pic.hasInterrupt()).toBe(false);
    pulse(0);
    expect(pic.hasInterrupt()).toBe(false); // still masked: latched in IRR
    expect(pic.state().irr & 1).toBe(1);
    unmask(0);
    expect(pic.hasInterrupt()).toBe(true);
    expect(pic.acknowledge()).toBe(0x30);
    expect(pic.hasInterrupt()).toBe(false);
    expect(inService(0)).toBe(true);
    eoi(0);
    expect(inService(0)).toBe(false);
    expect(pic.state()).toEqual({ irr: 0, isr: 0, imr: 0xfffa });
  });

  test('an interrupt from the slave goes through the cascade: vector 0x38 + n, both chips in service', () => {
    const { pic, unmask, eoi, pulse } = linuxInit();
    unmask(12);
    pulse(12);
    expect(pic.hasInterrupt()).toBe(true);
    expect(pic.acknowledge()).toBe(0x3c);
    expect(pic.state().isr).toBe((1 << 12) | (1 << 2));
    pulse(10);
    unmask(10);
    expect(pic.hasInterrupt()).toBe(false); // IRQ 12 in service on the slave, IR2 on the master
    eoi(12);
    expect(pic.hasInterrupt()).toBe(true);
    expect(pic.acknowledge()).toBe(0x3a);
    eoi(10);
    expect(pic.state().isr).toBe(0);
  });

  test('fully nested priority: lower lines wait, higher lines preempt', () => {
    const { pic, unmask, eoi, pulse } = linuxInit();
    for (const irq of [0, 1, 4]) unmask(irq);
    pulse(4);
    expect(pic.acknowledge()).toBe(0x34);
    pulse(1);
    expect(pic.acknowledge()).toBe(0x31); // preempts IRQ 4
    pulse(0);
    expect(pic.acknowledge()).toBe(0x30);
    pulse(4);
    expect(pic.hasInterrupt()).toBe(false); // 4 is still in service; 0 and 1 too
    eoi(0);
    eoi(1);
    expect(pic.hasInterrupt()).toBe(false); // the first IRQ 4 is still in service
    eoi(4);
    expect(pic.acknowledge()).toBe(0x34);
  });

  test('simultaneous requests are taken highest priority first', () => {
    const { pic, unmask, eoi, pulse } = linuxInit();
    for (const irq of [3, 5, 9]) unmask(irq);
    pulse(5);
    pulse(9); // through IR2: higher than 3 and 5
    pulse(3);
    const order: number[] = [];
    while (pic.hasInterrupt()) {
      const v = pic.acknowledge();
      order.push(v - VECTOR_BASE);
      eoi(v - VECTOR_BASE);
    }
    expect(order).toEqual([9, 3, 5]);
  });

  test('auto-EOI: no ISR bit, so the next request is not held back', () => {
    const { pic, unmask, pulse } = linuxInit(true);
    unmask(0);
    pulse(0);
    expect(pic.acknowledge()).toBe(0x30);
    expect(pic.state().isr).toBe(0);
    pulse(0);
    expect(pic.hasInterrupt()).toBe(true);
  });
});

describe('PicPair trigger modes', () => {
  test('edge: a line held high interrupts once; it must fall and rise again', () => {
    const { pic, unmask, eoi } = linuxInit();
    unmask(4);
    pic.setIrq(4, true);
    expect(pic.acknowledge()).toBe(0x34);
    eoi(4);
    pic.setIrq(4, true);
    expect(pic.hasInterrupt()).toBe(false);
    pic.setIrq(4, false);
    pic.setIrq(4, true);
    expect(pic.acknowledge()).toBe(0x34);
  });

  test('level (ELCR): the request follows the line and recurs after EOI while it is high', () => {
    const { pic, outb, inb, unmask, eoi } = linuxInit();
    outb(0x4d1, 0x04); // IRQ 10 level-triggered
    outb(0x4d0, 0xff); // IRQ 0-2 cannot be level-triggered
    expect([inb(0x4d0), inb(0x4d1)]).toEqual([0xf8, 0x04]);
    outb(0x4d0, 0x00);
    unmask(10);
    pic.irqLine(10).set(true);
    expect(pic.acknowledge()).toBe(0x3a);
    eoi(10);
    expect(pic.acknowledge()).toBe(0x3a); // still high: interrupts again
    pic.irqLine(10).set(false);
    eoi(10);
    expect(pic.hasInterrupt()).toBe(false);
  });

  test('a level request that vanishes before INTA gives the spurious IR7 vector, without ISR', () => {
    const { pic, outb, unmask } = linuxInit();
    outb(0x4d0, 0x20); // IRQ 5 level
    unmask(5);
    pic.setIrq(5, true);
    expect(pic.hasInterrupt()).toBe(true);
    pic.setIrq(5, false);
    expect(pic.acknowledge()).toBe(0x37);
    expect(pic.state().isr).toBe(0);
  });

  test('spurious on the slave: IRQ 15 vector, the master has IR2 in service (Linux EOIs it)', () => {
    const { pic, outb, unmask } = linuxInit();
    outb(0x4d1, 0x08); // IRQ 11 level
    unmask(11);
    pic.setIrq(11, true);
    // The master latched the cascade edge; the slave's request disappears before INTA.
    outb(SLAVE_IMR, 0xff);
    expect(pic.acknowledge()).toBe(0x3f);
    expect(pic.state().isr).toBe(1 << 2);
  });

  test('IRQ 2 on the ISA bus arrives as IRQ 9', () => {
    const { pic, unmask, pulse } = linuxInit();
    unmask(9);
    pic.irqLine(2).set(true);
    expect(pic.acknowledge()).toBe(0x39);
    pic.irqLine(2).set(false);
    pulse(9);
    expect(() => pic.setIrq(16, true)).toThrow(/IRQ 16/);
  });
});

describe('PicPair command modes', () => {
  test('non-specific EOI ends the highest-priority interrupt in service', () => {
    const { pic, outb, unmask, pulse } = linuxInit();
    unmask(3);
    unmask(6);
    pulse(6);
    pic.acknowledge();
    pulse(3);
    pic.acknowledge();
    outb(MASTER_CMD, 0x20);
    expect(pic.state().isr).toBe(1 << 6);
    outb(MASTER_CMD, 0x20);
    expect(pic.state().isr).toBe(0);
  });

  test('set priority (OCW2 0xC0|n) makes line n lowest; rotate on EOI moves it', () => {
    const { pic, outb, unmask, pulse } = linuxInit();
    unmask(0);
    unmask(4);
    outb(MASTER_CMD, 0xc0 | 3); // IR3 lowest: IR4 is now highest
    pulse(0);
    pulse(4);
    expect(pic.acknowledge()).toBe(0x34);
    outb(MASTER_CMD, 0xa0); // rotate on non-specific EOI: IR4 becomes lowest
    expect(pic.acknowledge()).toBe(0x30);
    outb(MASTER_CMD, 0x20);
    pulse(4);
    pulse(0);
    expect(pic.acknowledge()).toBe(0x30); // order is now 5, 6, 7, 0, ..., 4: IR0 before IR4
  });

  test('poll mode: the read acknowledges and reports 0x80 | line', () => {
    const { pic, outb, inb, unmask, pulse } = linuxInit();
    unmask(5);
    pulse(5);
    outb(MASTER_CMD, 0x0c); // OCW3 poll
    expect(inb(MASTER_CMD)).toBe(0x85);
    expect(pic.state().isr).toBe(1 << 5);
    outb(MASTER_CMD, 0x0c);
    expect(inb(MASTER_CMD)).toBe(0);
  });

  test('special mask mode lets lower lines in while a masked one is in service', () => {
    const { pic, outb, unmask, pulse } = linuxInit();
    unmask(1);
    unmask(6);
    pulse(1);
    expect(pic.acknowledge()).toBe(0x31);
    pulse(6);
    expect(pic.hasInterrupt()).toBe(false);
    outb(MASTER_IMR, 0xff & ~(1 << 6)); // mask IRQ 1 (in service) ...
    outb(MASTER_CMD, 0x68); // ... and enter special mask mode
    expect(pic.acknowledge()).toBe(0x36);
  });

  test('re-initialising clears IMR, ISR and pending edges', () => {
    const { pic, outb, unmask, pulse } = linuxInit();
    unmask(4);
    pulse(4);
    pic.acknowledge();
    pic.setIrq(3, true);
    outb(MASTER_CMD, 0x11);
    expect(pic.state().isr & 0xff).toBe(0);
    outb(MASTER_IMR, 0x40);
    outb(MASTER_IMR, 0x04);
    outb(MASTER_IMR, 0x01);
    expect(pic.state().imr & 0xff).toBe(0);
    expect(pic.hasInterrupt()).toBe(false); // IRQ 3 held high across ICW1 must rise again
    pic.setIrq(3, false);
    pic.setIrq(3, true);
    expect(pic.acknowledge()).toBe(0x43);
  });
});

describe('PicPair INTR notifications', () => {
  test('onIntr reports every change of INTR, and only changes', () => {
    const seen: boolean[] = [];
    const pic = new PicPair({ onIntr: (level) => seen.push(level) });
    for (const [port, v] of [[0x20, 0x11], [0x21, 0x30], [0x21, 0x04], [0x21, 0x01], [0x21, 0xfe]] as const) pic.pioWrite(port, 1, v);
    pic.setIrq(0, true);
    pic.setIrq(0, false);
    expect(seen).toEqual([true]);
    pic.pioWrite(0x21, 1, 0xff); // masking drops INTR
    pic.pioWrite(0x21, 1, 0xfe); // unmasking raises it again
    expect(pic.acknowledge()).toBe(0x30);
    expect(seen).toEqual([true, false, true, false]);
  });
});
