// The interpreter backend: hypervisors/backend.ts implemented by a TypeScript i386 CPU.
//
//   const hv = openInterp();
//   const vm = hv.createVm({ ram: [{ guestPhys: 0, size: 64 << 20 }], ... });
//   const vcpu = vm.createVcpu(0);
//   vcpu.setSregs(...); vcpu.setRegs(...);
//   for (;;) switch (vcpu.run()) { ... }
//
// Guest RAM is one SharedArrayBuffer covering 0..top of RAM, mapped from a memfd (RamRegion.fd)
// that device processes map too. I/O and MMIO reads exit first and the instruction is
// re-executed with exit.data on the next run(); writes complete and then exit. Plugin ioeventfds
// and irqfds are wired from the main thread (wiring.ts); plugin interrupts are taken here when
// the wiring kicks the vCPU.

import {
  ExitReason, type Capabilities, type CpuidEntry, type Hypervisor, type KickToken, type RamRegion,
  type Regs, type Segment, type Sregs, type Vcpu, type VcpuExit, type Vm, type VmConfig, type WiringToken,
} from '../backend.ts';
import { sharedGuestRam, vmmNative } from '../../native/vmm.ts';
import { Cpu, EXIT_IO, EXIT_MMIO } from './cpu.ts';
import { Executor, type InterruptSource } from './exec.ts';
import { IrqMailbox } from './irq-mailbox.ts';
import { InterpPlatform, TSC_KHZ } from './platform.ts';
import { setSegCache } from './protmode.ts';

export { Cpu } from './cpu.ts';
export { Executor } from './exec.ts';

// irqchip: the PIC pair and PIT live in the backend (platform.ts), as KVM's do in the kernel.
const CAPABILITIES: Capabilities = { irqchip: true, ioeventfd: false, irqfd: false, nativeKernelMode: false };

/**
 * The CPU the interpreter presents: a family-6 part without FPU, with TSC, MSR, CX8, PSE and CMOV.
 * Leaves 0x15/0x16 report the TSC frequency (1 GHz: the TSC counts guest nanoseconds, see
 * platform.ts), so Linux neither calibrates the TSC against the PIT (which fails on an
 * interpreter whose speed varies) nor falls back to a delay loop calibrated by timing.
 */
export function defaultCpuid(): CpuidEntry[] {
  const s = (t: string): number => t.charCodeAt(0) | (t.charCodeAt(1) << 8) | (t.charCodeAt(2) << 16) | (t.charCodeAt(3) << 24);
  const PSE = 1 << 3, TSC = 1 << 4, MSR = 1 << 5, CX8 = 1 << 8, CMOV = 1 << 15;
  const tscMhz = TSC_KHZ / 1000;
  return [
    { function: 0, index: 0, flags: 0, eax: 0x16, ebx: s('Genu'), ecx: s('ntel'), edx: s('ineI') },
    { function: 1, index: 0, flags: 0, eax: 0x633, ebx: 0, ecx: 0, edx: PSE | TSC | MSR | CX8 | CMOV },
    // TSC = crystal (ECX Hz) x EBX / EAX; processor base/max/bus MHz.
    { function: 0x15, index: 0, flags: 0, eax: 1, ebx: 1, ecx: TSC_KHZ * 1000, edx: 0 },
    { function: 0x16, index: 0, flags: 0, eax: tscMhz, ebx: tscMhz, ecx: 100, edx: 0 },
    { function: 0x80000000, index: 0, flags: 0, eax: 0x80000000 | 0, ebx: 0, ecx: 0, edx: 0 },
  ];
}

export function openInterp(): Hypervisor {
  return {
    name: 'interp',
    capabilities: CAPABILITIES,
    supportedCpuid: defaultCpuid,
    createVm: (config) => new InterpVm(config),
  };
}

export class InterpVm implements Vm {
  readonly ram: readonly RamRegion[];
  readonly memory: SharedArrayBuffer;
  private readonly ramFd: number;
  private readonly vcpus: InterpVcpu[] = [];
  /** PIC, PIT and guest clock, served inside the backend. */
  readonly platform: InterpPlatform;
  /** Where setIrqLine goes: the platform's PIC. */
  irqHandler: ((gsi: number, level: boolean) => void) | null = null;
  /** Plugin interrupts posted by the main thread's wiring (wiring.ts), taken by the vCPU when kicked. */
  private readonly irqMailbox = new IrqMailbox();

  constructor(config: VmConfig) {
    let top = 0;
    for (const r of config.ram) {
      if (r.guestPhys + r.size > 0xc000_0000) {
        throw new Error(`interpreter backend: RAM region at 0x${r.guestPhys.toString(16)} (+${r.size}) lies above 3 GiB; ` +
          'the i386 interpreter has no PAE. Give the guest at most 3 GiB of RAM.');
      }
      top = Math.max(top, r.guestPhys + r.size);
    }
    top = Math.ceil(top / 4096) * 4096;
    // A memfd, so device processes can map guest RAM as they do on KVM (offset = guest-physical).
    const { fd, buffer } = sharedGuestRam('tsvmm-guest-ram', top);
    this.memory = buffer;
    this.ramFd = fd;
    this.ram = config.ram.map((r) => ({ guestPhys: r.guestPhys, size: r.size, fd, bytes: new Uint8Array(this.memory, r.guestPhys, r.size) }));
    this.platform = new InterpPlatform({ deterministic: config.deterministic ?? false });
    this.irqHandler = (gsi, level) => this.platform.pic.setIrq(gsi, level);
  }

  /** The guest clock the platform chips run on; the VMM's timed devices (RTC) follow it. */
  get clock(): { nowNs(): number } { return this.platform.clock; }

  createVcpu(id: number): InterpVcpu {
    if (this.vcpus.length > 0) throw new Error('interpreter backend: one vCPU per VM (SMP is not implemented)');
    const v = new InterpVcpu(id, this.memory);
    v.platform = this.platform;
    v.irqMailbox = this.irqMailbox;
    this.platform.attach(v.cpu, v.executor, v.kickControl);
    this.vcpus.push(v);
    return v;
  }

  setIrqLine(gsi: number, level: boolean): void {
    if (this.irqHandler === null) {
      throw new Error('interpreter backend: no interrupt controller attached (attach a PIC with vm.irqHandler)');
    }
    this.irqHandler(gsi, level);
  }

  /** Plugin ioeventfds go to the dispatch table, irqfds through the mailbox (wiring.ts). */
  wiring(): WiringToken {
    const vcpu = this.vcpus[0];
    if (!vcpu) throw new Error('interpreter backend: create the vCPU before wiring plugins (their interrupts kick it)');
    return { backend: 'interp', irqMailbox: this.irqMailbox.buffer, kick: { backend: 'interp', control: vcpu.kickControl } };
  }

  invalidateCodeCaches(): void {
    for (const v of this.vcpus) v.invalidateCode();
  }

  destroy(): void {
    this.vcpus.length = 0;
    // The mapping lives on with `memory` until it is collected; the fd is not needed by us.
    vmmNative().closeFd(this.ramFd);
  }
}

function toSeg(c: Cpu, n: number): Segment {
  const a = c.segAttr[n];
  return {
    base: BigInt(c.segBase[n] >>> 0), limit: c.segLimit[n] >>> 0, selector: c.segSel[n],
    type: a & 0xf, s: (a & 0x10) !== 0, dpl: (a >> 5) & 3, present: (a & 0x80) !== 0,
    avl: (a & 0x1000) !== 0, l: (a & 0x2000) !== 0, db: (a & 0x4000) !== 0, g: (a & 0x8000) !== 0,
    unusable: (a & 0x10000) !== 0,
  };
}

function fromSeg(c: Cpu, n: number, s: Segment): void {
  const attr = (s.type & 0xf) | (s.s ? 0x10 : 0) | ((s.dpl & 3) << 5) | (s.present ? 0x80 : 0) | (s.avl ? 0x1000 : 0) |
    (s.l ? 0x2000 : 0) | (s.db ? 0x4000 : 0) | (s.g ? 0x8000 : 0) | (s.unusable ? 0x10000 : 0);
  setSegCache(c, n, s.selector & 0xffff, Number(s.base & 0xffffffffn) | 0, s.limit | 0, attr);
}

const u32 = (v: bigint): number => Number(v & 0xffffffffn) | 0;

export class InterpVcpu implements Vcpu {
  readonly cpu = new Cpu();
  readonly executor: Executor;
  readonly exit: VcpuExit;
  private readonly control = new SharedArrayBuffer(4);
  private readonly dataViews: Uint8Array[] = [];
  private lastWasRead = false;
  private lastExitHlt = false;
  /** Ports answered inside the backend (PIC, PIT): such I/O never exits to the VMM. */
  platform: InterpPlatform | null = null;
  /** Plugin interrupts to pulse when kicked (InterpVm.wiring). */
  irqMailbox: IrqMailbox | null = null;

  constructor(readonly id: number, memory: SharedArrayBuffer) {
    this.cpu.attachMemory(memory as unknown as ArrayBuffer);
    this.executor = new Executor(this.cpu, this.control);
    for (let n = 0; n <= 8; n++) this.dataViews.push(this.cpu.exitData.subarray(0, n));
    this.exit = { address: 0, size: 0, count: 1, write: false, data: this.dataViews[0], detail: '', systemEvent: 0 };
    this.setCpuid(defaultCpuid());
    this.cpu.msrs.set(0x1b, 0n); // IA32_APIC_BASE: no APIC
    this.cpu.msrs.set(0x8b, 0n); // microcode revision
    for (const m of [0x174, 0x175, 0x176]) this.cpu.msrs.set(m, 0n); // SYSENTER (not advertised)
  }

  /** Wire the platform interrupt controller: `intr` follows its INT output, `ack` returns the vector. */
  setInterruptSource(source: InterruptSource): void { this.executor.irqSource = source; }
  setIntr(level: boolean): void { this.executor.intr = level; }

  getRegs(): Regs {
    const r = this.cpu.r, c = this.cpu;
    const b = (v: number): bigint => BigInt(v >>> 0);
    return {
      rax: b(r[0]), rcx: b(r[1]), rdx: b(r[2]), rbx: b(r[3]), rsp: b(r[4]), rbp: b(r[5]), rsi: b(r[6]), rdi: b(r[7]),
      r8: 0n, r9: 0n, r10: 0n, r11: 0n, r12: 0n, r13: 0n, r14: 0n, r15: 0n,
      rip: b(c.eip), rflags: b(c.getFlags()),
    };
  }

  setRegs(regs: Regs): void {
    const r = this.cpu.r, c = this.cpu;
    r[0] = u32(regs.rax); r[1] = u32(regs.rcx); r[2] = u32(regs.rdx); r[3] = u32(regs.rbx);
    r[4] = u32(regs.rsp); r[5] = u32(regs.rbp); r[6] = u32(regs.rsi); r[7] = u32(regs.rdi);
    c.eip = u32(regs.rip);
    c.lazy = 0;
    c.eflags = (u32(regs.rflags) | 2) & ~0x8028;
  }

  getSregs(): Sregs {
    const c = this.cpu;
    const [es, cs, ss, ds, fs, gs] = [0, 1, 2, 3, 4, 5].map((n) => toSeg(c, n));
    return {
      es: es!, cs: cs!, ss: ss!, ds: ds!, fs: fs!, gs: gs!, tr: toSeg(c, 6), ldt: toSeg(c, 7),
      gdt: { base: BigInt(c.gdtBase >>> 0), limit: c.gdtLimit }, idt: { base: BigInt(c.idtBase >>> 0), limit: c.idtLimit },
      cr0: BigInt(c.cr0 >>> 0), cr2: BigInt(c.cr2 >>> 0), cr3: BigInt(c.cr3 >>> 0), cr4: BigInt(c.cr4 >>> 0), cr8: 0n,
      efer: BigInt(c.efer), apicBase: 0n,
    };
  }

  setSregs(s: Sregs): void {
    const c = this.cpu;
    if ((s.efer & 0x500n) !== 0n) throw new Error('interpreter backend: long mode (EFER.LME/LMA) is not supported; it is an i386 CPU');
    if ((s.cr4 & 0x20n) !== 0n) throw new Error('interpreter backend: PAE paging is not supported');
    const segs = [s.es, s.cs, s.ss, s.ds, s.fs, s.gs];
    segs.forEach((seg, n) => fromSeg(c, n, seg));
    fromSeg(c, 6, s.tr); fromSeg(c, 7, s.ldt);
    c.gdtBase = u32(s.gdt.base); c.gdtLimit = s.gdt.limit & 0xffff;
    c.idtBase = u32(s.idt.base); c.idtLimit = s.idt.limit & 0xffff;
    c.cr0 = u32(s.cr0) | 0x10; c.cr2 = u32(s.cr2); c.cr3 = u32(s.cr3); c.cr4 = u32(s.cr4);
    c.efer = Number(s.efer & 0xffffffffn);
    c.setCpl(s.ss.dpl & 3);
    c.flushTlb();
  }

  setCpuid(entries: readonly CpuidEntry[]): void {
    const m = this.cpu.cpuid;
    m.clear();
    for (const e of entries) {
      const key = (e.function >>> 0) * 1024 + ((e.flags & 1) !== 0 ? e.index & 0xff : 512);
      m.set(key, [e.eax | 0, e.ebx | 0, e.ecx | 0, e.edx | 0]);
    }
  }

  /** The VMM changed guest memory directly (loaded a kernel...): drop decoded code. */
  invalidateCode(): void { this.executor.flushCode(); }

  /** The shared word kicks set (hypervisors/kick.ts); the platform parks HLT on it. */
  get kickControl(): SharedArrayBuffer { return this.control; }

  run(): ExitReason {
    const c = this.cpu;
    if (this.lastWasRead) { c.replay = true; c.replayAddr = this.exit.address; this.lastWasRead = false; }
    const reason = this.runPlatform();
    c.replay = false;
    // A plugin's interrupt kicks the vCPU out of the loop: raise it on the PIC now, so the guest
    // takes it as soon as it runs again.
    if (reason === ExitReason.Kicked && this.irqMailbox !== null && this.platform !== null) {
      const pic = this.platform.pic;
      this.irqMailbox.take((gsi, level) => pic.setIrq(gsi, level));
    }
    this.lastExitHlt = reason === ExitReason.Hlt;
    const x = this.exit;
    if (reason === EXIT_IO || reason === EXIT_MMIO) {
      x.address = c.exitPort; x.size = c.exitSize; x.count = c.exitCount; x.write = c.exitWrite;
      x.data = this.dataViews[c.exitSize * c.exitCount] ?? c.exitData.subarray(0, c.exitSize * c.exitCount);
      this.lastWasRead = !c.exitWrite;
    } else if (reason === ExitReason.InternalError || reason === ExitReason.Shutdown) {
      x.detail = c.exitDetail;
    }
    return reason as ExitReason;
  }

  /** Run, answering platform-port I/O in place (an IN is re-executed with the value, as for the VMM). */
  private runPlatform(): number {
    const c = this.cpu, p = this.platform;
    if (p === null) return this.executor.run();
    p.poll(); // timers stay on time even when I/O exits come faster than the executor's poll interval
    for (;;) {
      const reason = this.executor.run();
      if (reason !== EXIT_IO || !p.ownsPort(c.exitPort)) return reason;
      if (c.exitWrite) {
        const size = c.exitSize, v = c.exitView.getInt32(0, true);
        p.pioWrite(c.exitPort, size, size === 1 ? v & 0xff : size === 2 ? v & 0xffff : v >>> 0);
      } else {
        c.exitView.setInt32(0, p.pioRead(c.exitPort, c.exitSize), true);
        c.replay = true; c.replayAddr = c.exitPort;
      }
    }
  }

  /** HLT exits only with interrupts disabled (see Executor): that exit is the halted-for-good state. */
  haltedForGood(): boolean { return this.lastExitHlt; }

  kickToken(): KickToken { return { backend: 'interp', control: this.control }; }
}
