// Drives the UART the way Linux's 8250 driver does (drivers/tty/serial/8250/8250_port.c:
// autoconfig, serial8250_do_startup, the interrupt handler, console writes) and checks what the
// driver checks. The IRQ line is a recorder: the real IrqLine interface, nothing mocked.
import { describe, expect, test } from 'vitest';
import type { IrqLine } from '../device.ts';
import { PicPair } from '../pic8259/pic8259.ts';
import { COM1_PORT, Uart16550 } from './uart16550.ts';

const RX = COM1_PORT + 0, TX = COM1_PORT + 0, DLL = COM1_PORT + 0;
const IER = COM1_PORT + 1, DLM = COM1_PORT + 1;
const IIR = COM1_PORT + 2, FCR = COM1_PORT + 2, EFR = COM1_PORT + 2;
const LCR = COM1_PORT + 3, MCR = COM1_PORT + 4, LSR = COM1_PORT + 5, MSR = COM1_PORT + 6, SCR = COM1_PORT + 7;

class IrqRecorder implements IrqLine {
  level = false;
  edges = 0;
  set(level: boolean): void {
    if (level && !this.level) this.edges++;
    this.level = level;
  }
}

function setup() {
  const irq = new IrqRecorder();
  const out: number[] = [];
  const uart = new Uart16550({ irq, output: (bytes) => out.push(...bytes) });
  const inb = (port: number) => uart.pioRead(port, 1);
  const outb = (port: number, value: number) => uart.pioWrite(port, 1, value);
  return { uart, irq, out, inb, outb };
}

const text = (s: string) => new TextEncoder().encode(s);

/** serial8250_clear_fifos() */
function clearFifos(outb: (p: number, v: number) => void) {
  outb(FCR, 0x01);
  outb(FCR, 0x07);
  outb(FCR, 0x00);
}

describe('Uart16550 autoconfig (what Linux runs to identify the chip)', () => {
  test('passes the IER and loopback tests and is identified as a 16550A', () => {
    const { inb, outb } = setup();
    // IER existence test: bits 0-3 must read back as written.
    const scratch = inb(IER);
    outb(IER, 0);
    const scratch2 = inb(IER) & 0x0f;
    outb(IER, 0x0f);
    const scratch3 = inb(IER) & 0x0f;
    outb(IER, scratch);
    expect([scratch2, scratch3]).toEqual([0, 0x0f]);

    // Loopback test: MCR = LOOP | OUT2 | RTS must show DCD | CTS in MSR.
    const saveMcr = inb(MCR);
    const saveLcr = inb(LCR);
    outb(MCR, 0x10 | 0x0a);
    const status1 = inb(MSR) & 0xf0;
    outb(MCR, saveMcr);
    expect(status1).toBe(0x90);

    // FIFO probe: EFR write under LCR=0xBF lands in FCR on a 16550A; then enable the FIFOs.
    outb(LCR, 0xbf);
    outb(EFR, 0);
    outb(LCR, 0);
    outb(FCR, 0x01);
    expect(inb(IIR) >> 6).toBe(3); // 3 = PORT_16550A

    // autoconfig_16550a's variant probes (CONFIG_SERIAL_8250_16550A_VARIANTS) must all say "plain 16550A".
    outb(LCR, 0x80);
    expect(inb(EFR)).not.toBe(0); // not an ST16C650V1
    outb(LCR, 0xbf);
    expect(inb(EFR)).not.toBe(0); // no EFR: not an XR16C850 / ST16C650V2
    outb(LCR, 0);
    const ns1 = inb(MCR);
    outb(LCR, 0xe0);
    let ns2 = inb(0x3fa);
    if (!((ns2 ^ ns1) & 0x10)) {
      outb(LCR, 0);
      outb(MCR, ns1 ^ 0x10);
      outb(LCR, 0xe0);
      ns2 = inb(0x3fa);
      outb(LCR, 0);
      outb(MCR, ns1);
      expect((ns2 ^ ns1) & 0x10).toBe(0); // not a National Semiconductor SuperIO
    }
    outb(LCR, 0);
    outb(FCR, 0x01 | 0x20);
    const s1 = inb(IIR) >> 5;
    outb(FCR, 0x01);
    outb(LCR, 0x80);
    outb(FCR, 0x01 | 0x20);
    const s2 = inb(IIR) >> 5;
    outb(FCR, 0x01);
    outb(LCR, 0);
    expect(s1 === 6 && s2 === 7).toBe(false); // not a 16750
    const iersave = inb(IER);
    outb(IER, iersave | 0x40);
    expect(inb(IER) & 0x40).toBe(0); // not an XScale
    outb(IER, iersave);

    outb(LCR, saveLcr);
  });

  test('scratch register holds a value; LSR never reads 0xff (the startup existence check)', () => {
    const { inb, outb } = setup();
    outb(SCR, 0x5a);
    expect(inb(SCR)).toBe(0x5a);
    expect(inb(LSR)).toBe(0x60); // THRE | TEMT, no data
    expect(inb(IIR)).toBe(0x01); // no interrupt, FIFOs off after reset
  });
});

describe('Uart16550 THRE interrupt (serial8250_do_startup tests)', () => {
  test('THRE is reasserted each time THRI is enabled, so the driver sets no UART_BUG_THRE', () => {
    const { inb, outb } = setup();
    clearFifos(outb);
    inb(LSR), inb(RX), inb(IIR), inb(MSR);
    expect(inb(LSR)).not.toBe(0xff);
    expect(inb(LSR) & 0x20).toBe(0x20); // wait_for_xmitr(THRE)
    outb(IER, 0x02);
    const iir1 = inb(IIR);
    outb(IER, 0);
    outb(IER, 0x02);
    const iir = inb(IIR);
    outb(IER, 0);
    expect(iir1 & 0x0f).toBe(0x02);
    expect(iir & 0x0f).toBe(0x02);
    // The driver's condition for UART_BUG_THRE:
    expect(!(iir1 & 0x01) && !!(iir & 0x01)).toBe(false);

    // The UART_BUG_TXEN test: enabling THRI with TEMT set must show a pending interrupt.
    outb(IER, 0x02);
    const lsr = inb(LSR);
    const iir2 = inb(IIR);
    outb(IER, 0);
    expect(lsr & 0x40 && iir2 & 0x01).toBeFalsy();
  });

  test('an IIR read reporting THRE clears it; a THR write re-raises it; the line follows', () => {
    const { inb, outb, irq, out } = setup();
    outb(LCR, 0x03);
    outb(MCR, 0x0b); // DTR | RTS | OUT2, as serial8250_set_mctrl leaves it
    outb(FCR, 0xc1);
    expect(irq.level).toBe(false);
    outb(IER, 0x02); // start_tx
    expect(irq.level).toBe(true);
    expect(inb(IIR)).toBe(0xc2);
    expect(irq.level).toBe(false);
    expect(inb(IIR)).toBe(0xc1); // reported once, then gone
    // serial8250_tx_chars: up to 16 bytes per interrupt.
    for (const b of text('hello')) outb(TX, b);
    expect(String.fromCharCode(...out)).toBe('hello');
    expect(irq.level).toBe(true); // THR empty again
    expect(irq.edges).toBe(2);
    expect(inb(IIR)).toBe(0xc2);
    outb(IER, 0); // __stop_tx once the circular buffer is empty
    expect(irq.level).toBe(false);
    expect(inb(IIR)).toBe(0xc1);
  });

  test('console write (polled, IER saved to 0 and restored) sends every byte in order', () => {
    const { inb, outb, out, irq } = setup();
    outb(MCR, 0x0b);
    outb(IER, 0x05); // RDI | RLSI, THRI off
    const ier = inb(IER);
    outb(IER, 0);
    for (const b of text('Linux version 6.1\r\n')) {
      while ((inb(LSR) & 0x60) !== 0x60) { /* wait_for_xmitr(BOTH_EMPTY) */ }
      outb(TX, b);
    }
    outb(IER, ier);
    expect(String.fromCharCode(...out)).toBe('Linux version 6.1\r\n');
    expect(irq.edges).toBe(0); // THRI was never on: no interrupt
  });
});

describe('Uart16550 receive', () => {
  function interruptDriven() {
    const s = setup();
    s.outb(LCR, 0x03);
    s.outb(MCR, 0x0b);
    s.outb(FCR, 0x81); // UART_FCR_ENABLE_FIFO | UART_FCR_R_TRIG_10: Linux's 16550A setting (8 bytes)
    s.outb(IER, 0x05); // RDI | RLSI
    return s;
  }

  /** serial8250_rx_chars: read while LSR.DR, at most 256 per call. */
  function rxChars(inb: (p: number) => number): string {
    let s = '';
    for (let n = 0; n < 256 && inb(LSR) & 0x01; n++) s += String.fromCharCode(inb(RX));
    return s;
  }

  test('a keystroke below the trigger level raises the character-timeout interrupt', () => {
    const { uart, inb, irq } = interruptDriven();
    uart.receive(text('ls'));
    expect(irq.level).toBe(true);
    expect(inb(IIR)).toBe(0xcc);
    expect(irq.level).toBe(true); // an IIR read does not clear RX interrupts
    expect(rxChars(inb)).toBe('ls');
    expect(irq.level).toBe(false);
    expect(inb(IIR)).toBe(0xc1);
    expect(inb(LSR)).toBe(0x60);
  });

  test('at the trigger level the interrupt is "data available"', () => {
    const { uart, inb } = interruptDriven();
    uart.receive(text('12345678'));
    expect(inb(IIR)).toBe(0xc4);
    inb(RX);
    expect(inb(IIR)).toBe(0xcc); // 7 left, below the trigger level
  });

  test('pasted text beyond the FIFO waits in the host queue and arrives complete and in order', () => {
    const { uart, inb, irq } = interruptDriven();
    const paste = Array.from({ length: 1000 }, (_, i) => String.fromCharCode(33 + (i % 90))).join('');
    uart.receive(text(paste.slice(0, 600)));
    uart.receive(text(paste.slice(600)));
    expect(uart.queuedInput()).toBe(1000 - 16);
    expect(uart.wantsInput()).toBe(false);
    let got = '';
    while (irq.level) {
      expect(inb(IIR) & 0x0f).toBe(0x04);
      got += rxChars(inb);
    }
    expect(got).toBe(paste);
    expect(uart.wantsInput()).toBe(true);
    expect(inb(LSR) & 0x02).toBe(0); // never an overrun
  });

  test('input is kept while the receiver is not read and the FIFO is full', () => {
    const { uart, inb, outb } = setup();
    outb(FCR, 0x01);
    uart.receive(text('x'.repeat(40)));
    expect(uart.queuedInput()).toBe(24);
    expect(inb(LSR) & 0x03).toBe(0x01); // data ready, no overrun
  });

  test('clearing the RX FIFO drops its bytes and refills from the host queue', () => {
    const { uart, inb, outb } = setup();
    outb(FCR, 0x01);
    uart.receive(text('a'.repeat(16) + 'b'));
    outb(FCR, 0x03);
    expect(String.fromCharCode(inb(RX))).toBe('b');
    expect(inb(LSR) & 0x01).toBe(0);
  });

  test('with FIFOs off (16450 mode) one byte is held at a time and IIR bits 6-7 read 0', () => {
    const { uart, inb, outb, irq } = setup();
    outb(MCR, 0x08);
    outb(IER, 0x01);
    uart.receive(text('ab'));
    expect(uart.queuedInput()).toBe(1);
    expect(inb(IIR)).toBe(0x04);
    expect(String.fromCharCode(inb(RX))).toBe('a');
    expect(irq.level).toBe(true);
    expect(String.fromCharCode(inb(RX))).toBe('b');
    expect(irq.level).toBe(false);
  });
});

describe('Uart16550 loopback, modem status and line errors', () => {
  test('in loopback THR feeds RX, not the output; a full FIFO overruns; OE raises RLS first', () => {
    const { uart, inb, outb, out, irq } = setup();
    outb(FCR, 0x01);
    outb(MCR, 0x10 | 0x08); // LOOP | OUT2
    outb(IER, 0x07);
    uart.receive(text('host')); // the receiver is cut off from the line in loopback
    for (let i = 0; i < 17; i++) outb(TX, 0x41 + i);
    expect(out).toEqual([]);
    expect(irq.level).toBe(false); // loopback forces OUT2 inactive: no IRQ on a PC
    expect(inb(IIR)).toBe(0xc6); // receiver line status outranks data available
    expect(inb(LSR)).toBe(0x60 | 0x02 | 0x01);
    expect(inb(LSR) & 0x02).toBe(0); // OE is cleared by the read
    expect(inb(IIR)).toBe(0xc4);
    let s = '';
    while (inb(LSR) & 0x01) s += String.fromCharCode(inb(RX));
    expect(s).toBe('ABCDEFGHIJKLMNOP');
    outb(MCR, 0x08); // leave loopback: the host line is connected again
    expect(s + String.fromCharCode(inb(RX))).toBe('ABCDEFGHIJKLMNOPh');
  });

  test('MSR mirrors MCR in loopback, reports deltas once and raises the modem status interrupt', () => {
    const { inb, outb } = setup();
    expect(inb(MSR)).toBe(0xb0); // DCD | DSR | CTS: a terminal is attached
    outb(MCR, 0x10);
    expect(inb(MSR)).toBe(0x00 | 0x01 | 0x02 | 0x08); // all inputs dropped: CTS, DSR, DCD deltas
    outb(IER, 0x08);
    expect(inb(IIR)).toBe(0x01);
    outb(MCR, 0x10 | 0x04); // OUT1 -> RI
    expect(inb(MSR)).toBe(0x40);
    outb(MCR, 0x10);
    expect(inb(IIR)).toBe(0x00); // trailing edge of RI: modem status interrupt
    expect(inb(MSR)).toBe(0x04);
    expect(inb(IIR)).toBe(0x01);
  });

  test('OUT2 gates the interrupt line', () => {
    const { inb, outb, irq } = setup();
    outb(IER, 0x02);
    expect(inb(IIR) & 0x0f).toBe(0x02); // pending, but OUT2 is off
    outb(IER, 0);
    outb(IER, 0x02);
    expect(irq.level).toBe(false);
    outb(MCR, 0x08);
    expect(irq.level).toBe(true);
    outb(MCR, 0x00);
    expect(irq.level).toBe(false);
  });
});

describe('Uart16550 divisor latch and access widths', () => {
  test('DLAB maps offsets 0 and 1 to the divisor latch without touching THR or IER', () => {
    const { inb, outb, out } = setup();
    outb(IER, 0x05);
    outb(LCR, 0x80 | 0x03);
    outb(DLL, 0x01); // 115200 baud
    outb(DLM, 0x00);
    expect([inb(DLL), inb(DLM)]).toEqual([0x01, 0x00]);
    expect(out).toEqual([]);
    outb(LCR, 0x03);
    expect(inb(IER)).toBe(0x05);
    outb(TX, 0x21);
    expect(out).toEqual([0x21]);
    outb(LCR, 0x83);
    expect(inb(DLL)).toBe(0x01);
  });

  test('a 16-bit access is two byte accesses at consecutive ports', () => {
    const { uart, inb } = setup();
    uart.pioWrite(LCR, 2, 0x0b03); // LCR = 0x03, MCR = 0x0b
    expect([inb(LCR), inb(MCR)]).toEqual([0x03, 0x0b]);
    expect(uart.pioRead(LCR, 2)).toBe(0x0b03);
  });
});

describe('Uart16550 on the edge-triggered 8259 (IRQ 4), driven like serial8250_interrupt', () => {
  test('interleaved TX and RX never lose an interrupt', () => {
    const pic = new PicPair();
    for (const [port, v] of [[0x20, 0x11], [0x21, 0x30], [0x21, 0x04], [0x21, 0x01], [0x21, 0xef]] as const) pic.pioWrite(port, 1, v);
    const out: number[] = [];
    const uart = new Uart16550({ irq: pic.irqLine(4), output: (b) => out.push(...b) });
    const inb = (p: number) => uart.pioRead(p, 1);
    const outb = (p: number, v: number) => uart.pioWrite(p, 1, v);
    outb(LCR, 0x03);
    outb(FCR, 0x01);
    outb(FCR, 0x81);
    outb(MCR, 0x0b);
    outb(IER, 0x05);

    const message = 'The quick brown fox jumps over the lazy dog. '.repeat(4);
    let txPos = 0;
    let ier = 0x05;
    let received = '';
    const startTx = () => {
      if (!(ier & 0x02)) outb(IER, (ier |= 0x02));
    };
    // One invocation of the 8250 interrupt handler: loop until IIR says no interrupt.
    const isr = () => {
      for (let pass = 0; pass < 512; pass++) {
        const iir = inb(IIR);
        if (iir & 0x01) return;
        let lsr = inb(LSR);
        if (lsr & 0x01 && iir & 0x04) {
          for (let n = 0; n < 256 && lsr & 0x01; n++, lsr = inb(LSR)) received += String.fromCharCode(inb(RX));
        }
        inb(MSR);
        if (lsr & 0x20) {
          if (txPos === message.length) outb(IER, (ier &= ~0x02)); // __stop_tx
          else {
            for (let count = 16; count > 0 && txPos < message.length; count--) outb(TX, message.charCodeAt(txPos++));
            if (txPos === message.length) outb(IER, (ier &= ~0x02));
          }
        }
      }
      throw new Error('serial8250_interrupt: too much work for irq4');
    };

    startTx();
    let interrupts = 0;
    const typed = ['l', 's', ' -l\r', 'x'.repeat(40), '\u0003'];
    let sent = '';
    const type = (keys: string) => {
      sent += keys;
      uart.receive(text(keys));
    };
    while (pic.hasInterrupt()) {
      const vector = pic.acknowledge();
      expect(vector).toBe(0x34);
      interrupts++;
      // The user types between interrupts, sometimes while the handler runs.
      if (typed.length) type(typed.shift()!);
      isr();
      if (interrupts === 2) type('!'); // arrives after the handler's last IIR read, before EOI
      pic.pioWrite(0x20, 1, 0x64); // specific EOI for IRQ 4
      if (!pic.hasInterrupt() && typed.length) type(typed.shift()!); // arrives while idle
    }
    expect(String.fromCharCode(...out)).toBe(message);
    expect(typed).toEqual([]);
    expect(received).toBe(sent);
    expect(interrupts).toBeGreaterThan(1);
  });
});
