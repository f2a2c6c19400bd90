// Interrupts through KVM's in-kernel irqchip, delivered to the guest through its IDT: an irqfd
// (an eventfd wired to a GSI), KVM_IRQ_LINE, and a tick of the in-kernel PIT. The guest
// programs the 8259 PIC itself at CPL0, then waits with interrupts on — at CPL0, or at CPL3 so
// that the interrupt also switches to the ring-0 stack from the TSS. The handler reports its
// vector with a port write and the test stops there: IRET at CPL0 fails on hosts whose KVM
// emulates kernel mode (see ../shared/reference/guest-kernel.md).
import { afterEach, describe, expect, test } from 'vitest';
import { ExitReason } from '../../hypervisors/backend.ts';
import { loadKvmAddon } from '../../hypervisors/kvm/addon.ts';
import { BOOT_LAYOUT, type CpuMode } from '../../firmware/entry/index.ts';
import { Asm } from '../guests/asm.ts';
import { GUEST, TestGuest, kvmSkipReason } from '../guests/guest.ts';
import { littleEndian } from '../guests/run.ts';

const skip = kvmSkipReason();
if (skip) console.warn(skip);

const READY_PORT = 0xe1;
const VECTOR_PORT = 0xe2;
const PIC_BASE = 0x20; // master IRQs 0-7 → vectors 0x20-0x27, slave → 0x28-0x2f

let guest: TestGuest | undefined;
const fds: number[] = [];
afterEach(() => {
  guest?.destroy();
  guest = undefined;
  for (const fd of fds.splice(0)) loadKvmAddon().closeFd(fd);
});

/** ICW1-4 for both 8259s (vectors PIC_BASE.., cascade on IRQ 2), then only `irq` unmasked. */
function initPic(a: Asm, irq: number): Asm {
  const outb = (port: number, value: number) => a.movAl(value).out(port, 1);
  outb(0x20, 0x11); outb(0x21, PIC_BASE); outb(0x21, 0x04); outb(0x21, 0x01);
  outb(0xa0, 0x11); outb(0xa1, PIC_BASE + 8); outb(0xa1, 0x02); outb(0xa1, 0x01);
  outb(0x21, 0xff & ~(1 << irq) & ~(irq >= 8 ? 1 << 2 : 0));
  outb(0xa1, irq >= 8 ? 0xff & ~(1 << (irq - 8)) : 0xff);
  return a;
}

/** 8254 channel 0, mode 2 (rate generator), divisor for ~1 kHz. */
function startPit(a: Asm): Asm {
  const divisor = 1193;
  return a.movAl(0x34).out(0x43, 1).movAl(divisor & 0xff).out(0x40, 1).movAl(divisor >> 8).out(0x40, 1);
}

interface Scenario {
  mode: CpuMode;
  /** Privilege level the guest waits at. */
  cpl: 0 | 3;
  irq: number;
  /** Guest set-up after the PIC (e.g. start the PIT). */
  setup?(a: Asm): void;
  /** Host action once the guest is ready and waiting. */
  raise(g: TestGuest): void;
}

/**
 * Runs the scenario: init at CPL0 → READY → (drop to CPL3) → wait with IF=1 → interrupt →
 * handler at CPL0 writes its vector. Returns the vector and the handler's privilege and stack.
 */
function runScenario(s: Scenario, timeoutMs = 10_000): { vector: number; handlerCpl: number; handlerRsp: bigint } {
  const bits = s.mode === 'long64' ? 64 : 32;
  const a = new Asm(bits, GUEST.code);
  initPic(a, s.irq);
  s.setup?.(a);
  a.out(READY_PORT, 1);
  a.label('wait');
  if (s.cpl === 0) a.sti();
  a.spin();
  a.label('handler').movAl(PIC_BASE + s.irq).out(VECTOR_PORT, 1).hlt();
  guest = new TestGuest({ mode: s.mode });
  guest.load(a);
  guest.start(GUEST.code);
  guest.setIdt({ [PIC_BASE + s.irq]: a.address('handler') });

  expect(guest.run()).toBe(ExitReason.Io);
  expect(guest.vcpu.exit.address).toBe(READY_PORT);
  if (s.cpl === 3) guest.enterUserMode(a.address('wait'), { interrupts: true });
  s.raise(guest);

  const reason = guest.run(timeoutMs);
  expect(reason, guest.vcpu.exit.detail).toBe(ExitReason.Io);
  expect(guest.vcpu.exit.address).toBe(VECTOR_PORT);
  return {
    vector: littleEndian(guest.vcpu.exit.data),
    handlerCpl: guest.vcpu.getSregs().cs.dpl,
    handlerRsp: guest.vcpu.getRegs().rsp,
  };
}

function irqfd(g: TestGuest, gsi: number): number {
  const addon = loadKvmAddon();
  const fd = addon.eventfd(0);
  fds.push(fd);
  g.vm.assignIrqfd(fd, gsi);
  return fd;
}

describe.skipIf(skip)('in-kernel irqchip interrupts through the guest IDT', () => {
  test('irqfd on GSI 5, guest waiting at CPL0 in 32-bit protected mode', () => {
    const r = runScenario({ mode: 'protected32', cpl: 0, irq: 5, raise: (g) => loadKvmAddon().eventfdWrite(irqfd(g, 5), 1n) });
    expect(r.vector).toBe(PIC_BASE + 5);
    expect(r.handlerCpl).toBe(0);
  });

  test('without the interrupt the waiting guest does not exit (the interrupt is what ends each scenario)', () => {
    expect(() => runScenario({ mode: 'long64', cpl: 3, irq: 5, raise: (g) => { irqfd(g, 5); } }, 300)).toThrow(/did not exit/);
  });

  test('irqfd on GSI 5, guest waiting at CPL3 in long mode: the CPU switches to the TSS ring-0 stack', () => {
    const r = runScenario({ mode: 'long64', cpl: 3, irq: 5, raise: (g) => loadKvmAddon().eventfdWrite(irqfd(g, 5), 1n) });
    expect(r.vector).toBe(PIC_BASE + 5);
    expect(r.handlerCpl).toBe(0);
    // Five 8-byte words (SS, RSP, RFLAGS, CS, RIP) pushed on RSP0 (aligned down to 16 first).
    expect(r.handlerRsp).toBe(BigInt((BOOT_LAYOUT.stackTop & ~0xf) - 5 * 8));
  });

  test('KVM_IRQ_LINE on IRQ 10 (slave PIC), guest waiting at CPL3 in long mode', () => {
    const r = runScenario({ mode: 'long64', cpl: 3, irq: 10, raise: (g) => { g.vm.setIrqLine(10, true); g.vm.setIrqLine(10, false); } });
    expect(r.vector).toBe(PIC_BASE + 10);
  });

  test('a tick of the in-kernel PIT (IRQ 0), guest waiting at CPL3 in long mode', () => {
    const r = runScenario({ mode: 'long64', cpl: 3, irq: 0, setup: startPit, raise: () => {} });
    expect(r.vector).toBe(PIC_BASE + 0);
  });

  test('a tick of the in-kernel PIT, guest waiting at CPL0 in 32-bit protected mode', () => {
    const r = runScenario({ mode: 'protected32', cpl: 0, irq: 0, setup: startPit, raise: () => {} });
    expect(r.vector).toBe(PIC_BASE + 0);
  });
});
