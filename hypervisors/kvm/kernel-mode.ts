// How fast guest kernel-mode code runs on this KVM, measured: the same two-instruction loop
// (dec ecx; jnz) at CPL0 and at CPL3 in a tiny long-mode VM, rates compared. On hardware
// virtualization both run at CPU speed (> 1000 M iterations/s); on hosts that run guest CPL0
// code in the host kernel's instruction emulator (nested, software-assisted KVM, like this
// project's CI machines) CPL0 manages about 0.6 M/s, and a Linux guest cannot boot usefully.
// The measurement takes about 0.1 s, is bounded by kick timers so it never hangs, and runs on
// the calling thread (a short, bounded KVM_RUN). It needs only a backend that can create a VM
// and arm a kick timer: kvm.ts measures itself with it, and probe.ts explains the result.
import { ExitReason, ExitReasonName, type RamRegion, type Regs, type Segment, type Sregs, type Vcpu, type VmConfig } from '../backend.ts';
import { KVM_IDENTITY_MAP, KVM_TSS } from '../../base/memory-map.ts';

export interface KernelModeRates {
  /** Loop iterations per second at CPL0 and at CPL3. */
  cpl0Rate: number;
  cpl3Rate: number;
}

/** What the measurement needs of a backend (KvmHypervisor has it). */
export interface MeasurableHypervisor {
  createVm(config: VmConfig): { readonly ram: readonly RamRegion[]; createVcpu(id: number): Vcpu & { armKickTimer(ms: number): void }; destroy(): void };
}

/** The VM for the measurement could not be created: KVM opens but does not run VMs here. */
export class VmCreationError extends Error {}

/** Below this CPL0 rate kernel code is considered emulated (hardware does > 1000 M/s). */
const NATIVE_MIN_RATE = 100e6;
/** Time spent measuring each privilege level, and the kick timer that bounds it. */
const MEASURE_MS = 60;
const HARD_LIMIT_MS = 250;
/** Stop doubling the loop count once one run takes this long. */
const CHUNK_MS = 15;
const MAX_ITERATIONS = 0x8000_0000;

// The measuring VM: 64 KiB of RAM holding the loop and identity page tables for the first 2 MiB
// (user-accessible). Long mode, because this project's hosts run CPL3 natively only with
// paging on, and 32-bit paging does not work there at all. Each round of the loop starts by
// reading its iteration count from an address in the mapped 2 MiB that has no RAM behind it:
// an MMIO exit at any privilege level (a port access from CPL3 would need a TSS I/O bitmap),
// answered by the measurement. Between two such exits the guest runs exactly `count` iterations.
const RAM_SIZE = 0x10000;
const CODE = 0x1000;
const PML4 = 0x2000;
const PDPT = 0x3000;
const PD = 0x4000;
const MMIO_ADDRESS = 0x10_0000;
// again: mov ecx, [rbx] ; l: dec ecx ; jnz l ; jmp again   (RBX = MMIO_ADDRESS)
const LOOP_CODE = [0x8b, 0x0b, 0xff, 0xc9, 0x75, 0xfc, 0xeb, 0xf8];

/** Measure both privilege levels; throws VmCreationError, or an Error when the loop misbehaves. */
export function measureKernelMode(hypervisor: MeasurableHypervisor): KernelModeRates {
  return { cpl0Rate: measureIn(hypervisor, 0), cpl3Rate: measureIn(hypervisor, 3) };
}

/** Does guest kernel code run at hardware speed? */
export function runsKernelNatively(r: KernelModeRates): boolean {
  return r.cpl0Rate >= NATIVE_MIN_RATE && r.cpl0Rate * 4 >= r.cpl3Rate;
}

/** A fresh VM per privilege level: vCPU 0 is the only one that starts running without a SIPI. */
function measureIn(hypervisor: MeasurableHypervisor, cpl: 0 | 3): number {
  let vm;
  try {
    vm = hypervisor.createVm({ ram: [{ guestPhys: 0, size: RAM_SIZE }], tssAddress: KVM_TSS.start, identityMapAddress: KVM_IDENTITY_MAP.start });
  } catch (e) {
    throw new VmCreationError((e as Error).message);
  }
  try {
    writeGuest(vm.ram[0]!.bytes);
    return measure(vm.createVcpu(0), cpl);
  } finally {
    vm.destroy();
  }
}

/** Iterations per second of the loop at privilege level `cpl`. */
function measure(vcpu: Vcpu & { armKickTimer(ms: number): void }, cpl: 0 | 3): number {
  vcpu.setSregs(longMode(vcpu.getSregs(), cpl));
  vcpu.setRegs(startRegs());
  const start = performance.now();
  vcpu.armKickTimer(HARD_LIMIT_MS);
  try {
    let iterations = 0;
    let t0 = 0;
    for (;;) {
      const reason = vcpu.run();
      const elapsed = performance.now() - t0;
      if (reason === ExitReason.Kicked) {
        if (iterations === 0) throw new Error(`the CPL${cpl} loop did not start within ${HARD_LIMIT_MS} ms`);
        // The hard limit: count what got done before it.
        const done = iterations - Number(vcpu.getRegs().rcx & 0xffff_ffffn);
        return (done / elapsed) * 1000;
      }
      if (reason !== ExitReason.Mmio || vcpu.exit.address !== MMIO_ADDRESS || vcpu.exit.write) {
        throw new Error(`the CPL${cpl} loop ended unexpectedly: ${vcpu.exit.detail || `exit ${ExitReasonName[reason]}`}`);
      }
      if (iterations > 0) {
        const total = performance.now() - start;
        if (elapsed >= CHUNK_MS || total >= MEASURE_MS || iterations >= MAX_ITERATIONS) return (iterations / elapsed) * 1000;
        iterations = Math.min(MAX_ITERATIONS, iterations * (elapsed < 1 ? 16 : 2));
      } else {
        iterations = 1000;
      }
      new DataView(vcpu.exit.data.buffer, vcpu.exit.data.byteOffset, 4).setUint32(0, iterations, true);
      t0 = performance.now();
    }
  } finally {
    vcpu.armKickTimer(0);
  }
}

function writeGuest(ram: Uint8Array): void {
  const v = new DataView(ram.buffer, ram.byteOffset, ram.byteLength);
  const USER_RW_PRESENT = 0x7n;
  const PAGE_2M = 0x80n;
  ram.set(LOOP_CODE, CODE);
  v.setBigUint64(PML4, BigInt(PDPT) | USER_RW_PRESENT, true);
  v.setBigUint64(PDPT, BigInt(PD) | USER_RW_PRESENT, true);
  v.setBigUint64(PD, PAGE_2M | USER_RW_PRESENT, true); // virtual 0..2 MiB = physical
}

function startRegs(): Regs {
  return {
    rax: 0n, rbx: BigInt(MMIO_ADDRESS), rcx: 0n, rdx: 0n, rsi: 0n, rdi: 0n, rsp: 0n, rbp: 0n,
    r8: 0n, r9: 0n, r10: 0n, r11: 0n, r12: 0n, r13: 0n, r14: 0n, r15: 0n,
    rip: BigInt(CODE), rflags: 0x2n,
  };
}

/** 64-bit long mode, flat segments at privilege `dpl` (KVM_SET_SREGS may start a vCPU at CPL3). */
function longMode(base: Sregs, dpl: number): Sregs {
  const segment = (selector: number, type: number, code: boolean): Segment => ({
    base: 0n, limit: 0xffff_ffff, selector: selector | dpl, type, present: true, dpl, db: !code, s: true,
    l: code, g: true, avl: false, unusable: false,
  });
  const data = segment(0x18, 0x3, false);
  return {
    ...base,
    cs: segment(0x10, 0xb, true), ds: data, es: data, fs: data, gs: data, ss: data,
    tr: { base: 0n, limit: 0x67, selector: 0x20, type: 0xb, present: true, dpl: 0, db: false, s: false, l: false, g: false, avl: false, unusable: false },
    cr0: 0x8000_0011n, cr3: BigInt(PML4), cr4: 0x20n, efer: 0x500n,
  };
}
