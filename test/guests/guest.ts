// Bare-metal test guests on the KVM backend. The CPU enters through firmware/entry — the same
// enter32 / enter64 the Linux loader uses (boot GDT, TSS, identity page tables, registers) —
// and a test can then drop the workload to CPL3 from the host side (KVM_SET_SREGS with DPL-3
// CS/SS), where this project's nested KVM runs code natively.
//
// What runs where on such a host (measured, see docs/kvm.md): 64-bit CPL3 natively; CPL0 and
// paging-off code in the host's instruction emulator (slow, ~1 M instructions/s); 32-bit
// paging not at all. Port I/O at CPL3 needs the TSS I/O permission bitmap — the host ignores
// RFLAGS.IOPL for ring 3 — so CPL3 guests get a TSS whose bitmap allows every port.
//
// Layout (guest-physical; below 1 MiB the boot structures of firmware/entry/layout.ts):
//   0x040000  IDT (256 gates)          0x042000  TSS with I/O bitmap (CPL3 guests)
//   0x100000  code                     0x200000  data
//   0xD0000000 (device window)  MMIO test address: no RAM there, so every access exits
import { ExitReason, type Regs } from '../../hypervisors/backend.ts';
import { openKvm, type KvmHypervisor, type KvmVcpu, type KvmVm } from '../../hypervisors/kvm/kvm.ts';
import { probeKvm } from '../../hypervisors/kvm/probe.ts';
import {
  BOOT_LAYOUT, SELECTOR, codeSegment, dataSegment, enter32, enter64, tssSegment, writeGdt, type CpuMode,
} from '../../firmware/entry/index.ts';
import { GuestMemory } from '../../base/guest-memory.ts';
import { DEVICE_WINDOW, KVM_IDENTITY_MAP, KVM_TSS, MiB } from '../../base/memory-map.ts';
import type { Asm } from './asm.ts';

export const GUEST = {
  idt: 0x4_0000,
  userTss: 0x4_2000,
  code: 0x10_0000,
  data: 0x20_0000,
  mmio: DEVICE_WINDOW.start,
} as const;

/** TSS: 0x68 bytes of state, then the I/O permission bitmap (one bit per port, 0 = allowed) and its 0xFF terminator. */
const TSS_STATE = 0x68;
const IO_BITMAP_BYTES = 0x10000 / 8;
const USER_TSS_LIMIT = TSS_STATE + IO_BITMAP_BYTES; // includes the terminator byte

/** Why KVM tests cannot run here, or undefined when they can. Printed by each KVM test file. */
export function kvmSkipReason(): string | undefined {
  const probe = probeKvm();
  return probe.available ? undefined : `KVM tests skipped: ${probe.reason}`;
}

export interface TestGuestOptions {
  mode: CpuMode;
  ramSize?: number;
}

export class TestGuest {
  readonly hypervisor: KvmHypervisor;
  readonly vm: KvmVm;
  readonly vcpu: KvmVcpu;
  readonly memory: GuestMemory;
  readonly mode: CpuMode;

  constructor(options: TestGuestOptions) {
    this.mode = options.mode;
    this.hypervisor = openKvm({ nativeKernelMode: false });
    this.vm = this.hypervisor.createVm({
      ram: [{ guestPhys: 0, size: options.ramSize ?? 4 * MiB }],
      tssAddress: KVM_TSS.start,
      identityMapAddress: KVM_IDENTITY_MAP.start,
    });
    this.memory = new GuestMemory(this.vm.ram.map((r) => ({ guestPhys: r.guestPhys, bytes: r.bytes })));
    this.vcpu = this.vm.createVcpu(0);
  }

  /** Assembles `asm` (whose origin says where) into guest memory. */
  load(asm: Asm): void {
    if (asm.bits !== (this.mode === 'long64' ? 64 : 32)) throw new Error(`${asm.bits}-bit code in a ${this.mode} guest`);
    this.memory.write(asm.origin, asm.assemble());
  }

  /**
   * Enter at `entry` in kernel mode through the boot protocol's entry state (enter32: paging
   * off; enter64: identity-mapped 4 GiB, user-accessible so the test can continue at CPL3).
   */
  start(entry: number, regs: Partial<Regs> = {}): void {
    const state = this.mode === 'long64'
      ? enter64(this.memory, { entry, userPages: true })
      : enter32(this.memory, { entry });
    this.vcpu.setSregs(state.sregs);
    this.vcpu.setRegs({ ...state.regs, ...regs });
  }

  /**
   * Continue at `entry` in user mode (CPL3): DPL-3 code and data segments, and a TSS whose I/O
   * bitmap allows every port and whose ring-0 stack (the boot stack) takes interrupts.
   */
  enterUserMode(entry: number, options: { interrupts?: boolean; regs?: Partial<Regs> } = {}): void {
    this.writeUserTss();
    const sregs = this.vcpu.getSregs();
    const tr = tssSegment(GUEST.userTss, USER_TSS_LIMIT);
    sregs.gdt = writeGdt(this.memory, this.mode, tr); // keep the GDT's TSS descriptor in step with TR
    sregs.tr = tr;
    sregs.cs = codeSegment(this.mode, 3);
    sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = dataSegment(3);
    this.vcpu.setSregs(sregs);
    const regs = this.vcpu.getRegs();
    this.vcpu.setRegs({
      ...regs,
      rip: BigInt(entry),
      rflags: 0x2n | (options.interrupts ? 0x200n : 0n),
      ...options.regs,
    });
  }

  private writeUserTss(): void {
    const tss = GUEST.userTss;
    // The boot TSS's ring-0 stack fields, then the bitmap right after the 0x68-byte state.
    this.memory.write(tss, this.memory.read(BOOT_LAYOUT.tss, TSS_STATE));
    const iomapBase = this.memory.range(tss + 0x66, 2);
    iomapBase[0] = TSS_STATE & 0xff; iomapBase[1] = TSS_STATE >> 8;
    this.memory.fill(tss + TSS_STATE, IO_BITMAP_BYTES, 0);
    this.memory.fill(tss + TSS_STATE + IO_BITMAP_BYTES, 1, 0xff);
  }

  /**
   * Write an IDT with interrupt gates (kernel code segment, DPL 0) for `handlers` (vector →
   * address) and load it. Vectors without a handler are not present (a fault there escalates).
   */
  setIdt(handlers: Record<number, number>): void {
    const long = this.mode === 'long64';
    const gateSize = long ? 16 : 8;
    this.memory.fill(GUEST.idt, 256 * gateSize, 0);
    for (const [vector, address] of Object.entries(handlers)) {
      const gate = this.memory.range(GUEST.idt + Number(vector) * gateSize, gateSize);
      const v = new DataView(gate.buffer, gate.byteOffset, gateSize);
      v.setUint16(0, address & 0xffff, true);
      v.setUint16(2, SELECTOR.bootCs, true);
      v.setUint8(5, 0x8e); // present, DPL 0, 32/64-bit interrupt gate
      v.setUint16(6, (address >>> 16) & 0xffff, true);
      if (long) v.setUint32(8, Math.floor(address / 2 ** 32), true);
    }
    const sregs = this.vcpu.getSregs();
    sregs.idt = { base: BigInt(GUEST.idt), limit: 256 * gateSize - 1 };
    this.vcpu.setSregs(sregs);
  }

  /**
   * One vcpu.run(), bounded: a guest that does not exit within `timeoutMs` is kicked and the
   * test fails with its RIP, instead of hanging.
   */
  run(timeoutMs = 10_000): ExitReason {
    this.vcpu.armKickTimer(timeoutMs);
    const reason = this.vcpu.run();
    this.vcpu.armKickTimer(0);
    if (reason === ExitReason.Kicked) {
      throw new Error(`the guest did not exit within ${timeoutMs} ms (rip 0x${this.vcpu.getRegs().rip.toString(16)})`);
    }
    return reason;
  }

  destroy(): void {
    this.vm.destroy();
  }
}
