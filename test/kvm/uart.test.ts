// The 16550A UART model (devices/uart16550) driven by bare-metal guests on KVM, wired the way
// the VMM wires it: port exits through vmm/io-bus.ts, its interrupt line into KVM's in-kernel
// PIC. The guest prints a string polled (waiting for LSR.THRE before each byte) and
// interrupt-driven (IER.THRI, IRQ 4), and reads a byte typed on the host side.
import { afterEach, describe, expect, test } from 'vitest';
import { COM1_IRQ, COM1_PORT, UART_PORT_COUNT, Uart16550 } from '../../devices/uart16550/uart16550.ts';
import { IoBus } from '../../vmm/io-bus.ts';
import type { CpuMode } from '../../firmware/entry/index.ts';
import { Asm, R } from '../guests/asm.ts';
import { GUEST, TestGuest, kvmSkipReason } from '../guests/guest.ts';
import { littleEndian, putLittleEndian, runUntilDone, DONE_PORT } from '../guests/run.ts';

const skip = kvmSkipReason();
if (skip) console.warn(skip);

const THR = COM1_PORT;
const IER = COM1_PORT + 1;
const IIR = COM1_PORT + 2;
const MCR = COM1_PORT + 4;
const LSR = COM1_PORT + 5;
const LSR_DR = 0x01;
const LSR_THRE = 0x20;
const PIC_BASE = 0x20;

let guest: TestGuest | undefined;
afterEach(() => { guest?.destroy(); guest = undefined; });

/** A guest with a UART on its I/O bus; output collects what the guest transmits. */
function machine(mode: CpuMode, a: Asm): { g: TestGuest; uart: Uart16550; bus: IoBus; output: number[] } {
  const g = new TestGuest({ mode });
  const output: number[] = [];
  const uart = new Uart16550({ irq: { set: (level) => g.vm.setIrqLine(COM1_IRQ, level) }, output: (bytes) => output.push(...bytes) });
  const bus = new IoBus();
  bus.addPio(COM1_PORT, UART_PORT_COUNT, uart);
  g.load(a);
  return { g, uart, bus, output };
}

/** Route port exits to the bus, as the VMM's run loop does. */
function runOnBus(g: TestGuest, bus: IoBus): void {
  runUntilDone(g, {
    io(exit) {
      if (exit.write) bus.pioWrite(exit.address, exit.size, littleEndian(exit.data));
      else putLittleEndian(exit.data, BigInt(bus.pioRead(exit.address, exit.size)));
    },
  });
}

const message = 'Hello from the 16550 on KVM!\r\n';

describe.skipIf(skip)('16550 UART on KVM', () => {
  test('polled output (LSR.THRE before each byte) and polled input (LSR.DR), at CPL3 in long mode', () => {
    const text = new TextEncoder().encode(message);
    const a = new Asm(64, GUEST.code)
      .movImm(R.esi, GUEST.data).movImm(R.ecx, text.length)
      .label('next')
      .movImm(R.edx, LSR).label('busy').inDx(1).testAl(LSR_THRE).jz('busy')
      .load(R.eax, R.esi, 1).movImm(R.edx, THR).outDx(1)
      .inc(R.esi).dec(R.ecx).jnz('next')
      // Echo one received byte in brackets.
      .movImm(R.edx, LSR).label('empty').inDx(1).testAl(LSR_DR).jz('empty')
      .movImm(R.edx, THR).inDx(1).movReg(R.ebx, R.eax)
      .movAl(0x5b).outDx(1).movReg(R.eax, R.ebx).outDx(1).movAl(0x5d).outDx(1)
      .out(DONE_PORT, 1);
    const { g, uart, bus, output } = machine('long64', a);
    guest = g;
    g.memory.write(GUEST.data, text);
    g.start(GUEST.code);
    g.enterUserMode(GUEST.code);
    uart.receive(new TextEncoder().encode('k'));
    runOnBus(g, bus);
    expect(new TextDecoder().decode(Uint8Array.from(output))).toBe(`${message}[k]`);
  });

  describe.each(['protected32', 'long64'] as const)('%s', (mode) => {
    test('interrupt-driven output: IER.THRI raises IRQ 4 through the in-kernel PIC, one byte per interrupt', () => {
      // Main flow: program the PIC (only IRQ 4 unmasked) and the UART (THRI on, OUT2 gates the
      // IRQ pin), then wait with interrupts enabled. Each interrupt: EOI, read IIR (acknowledges
      // THRI), send the next byte, wait again. No IRET (it fails where KVM emulates CPL0): each
      // interrupt leaves its frame on the stack, which is fine for a short string.
      const text = new TextEncoder().encode(message);
      const a = new Asm(mode === 'long64' ? 64 : 32, GUEST.code);
      const outb = (port: number, value: number) => a.movAl(value).out(port, 1);
      outb(0x20, 0x11); outb(0x21, PIC_BASE); outb(0x21, 0x04); outb(0x21, 0x01);
      outb(0xa0, 0x11); outb(0xa1, PIC_BASE + 8); outb(0xa1, 0x02); outb(0xa1, 0x01);
      outb(0x21, 0xff & ~(1 << COM1_IRQ)); outb(0xa1, 0xff);
      a.movImm(R.esi, GUEST.data).movImm(R.ecx, text.length)
        .movImm(R.edx, MCR).movAl(0x0b).outDx(1) // DTR, RTS, OUT2
        .movImm(R.edx, IER).movAl(0x02).outDx(1) // THRI
        .sti().label('wait').spin()
        .label('handler')
        .movAl(0x20).out(0x20, 1) // non-specific EOI
        .movImm(R.edx, IIR).inDx(1)
        .cmpImm(R.ecx, 0).jz('finished')
        .load(R.eax, R.esi, 1).movImm(R.edx, THR).outDx(1)
        .inc(R.esi).dec(R.ecx)
        .sti().jmp('wait')
        .label('finished').out(DONE_PORT, 1);
      const { g, bus, output } = machine(mode, a);
      guest = g;
      g.memory.write(GUEST.data, text);
      g.start(GUEST.code);
      g.setIdt({ [PIC_BASE + COM1_IRQ]: a.address('handler') });
      runOnBus(g, bus);
      expect(new TextDecoder().decode(Uint8Array.from(output))).toBe(message);
    });
  });
});
