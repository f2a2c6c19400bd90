// The initial CPU state for each way tsvmm enters a guest, as backend register structures.
// Each builder writes the tables it needs (GDT, TSS, page tables) into guest RAM at
// BOOT_LAYOUT and returns {regs, sregs} for Vcpu.setRegs/setSregs. The Linux loader uses
// them, and so do bare-metal tests, so both exercise the same entry code.
//
//   enter32   x86 32-bit boot protocol (boot.rst): protected mode, paging off,
//             CS = __BOOT_CS 0x10, DS/ES/SS = __BOOT_DS 0x18, ESI = boot_params, IF = 0.
//   enter64   x86 64-bit boot protocol: long mode, identity-mapped 4 GiB, CS 64-bit 0x10,
//             RSI = boot_params, IF = 0.
//   enterPvh  Xen PVH direct boot (start_info.h): protected mode, paging off, CR0 = PE(+ET),
//             CR4 = 0, EBX = hvm_start_info, TR = 32-bit TSS base 0 limit 0x67.

import type { Regs, Sregs } from '../../base/cpu-state.ts';
import type { GuestMemory } from '../../base/guest-memory.ts';
import { codeSegment, dataSegment, tssSegment, unusableLdt, writeGdt, type CpuMode } from './gdt.ts';
import { BOOT_LAYOUT } from './layout.ts';
import { writeIdentityPageTables } from './page-tables.ts';

export interface EntryState {
  regs: Regs;
  sregs: Sregs;
}

export const CR0_PE = 1n << 0n;
/** Extension type: hard-wired to 1 on every CPU since the 486; set so the state is one a real CPU can hold. */
export const CR0_ET = 1n << 4n;
export const CR0_PG = 1n << 31n;
export const CR4_PAE = 1n << 5n;
export const EFER_LME = 1n << 8n;
export const EFER_LMA = 1n << 10n;
/** RFLAGS bit 1 is reserved and always 1; IF, TF, VM and everything else 0. */
export const RFLAGS_RESERVED = 0x2n;
/** IA32_APIC_BASE after reset on the bootstrap processor: base 0xFEE00000, enabled, BSP. */
export const APIC_BASE_BSP = 0xfee0_0900n;

export function zeroRegs(): Regs {
  return {
    rax: 0n, rbx: 0n, rcx: 0n, rdx: 0n, rsi: 0n, rdi: 0n, rsp: 0n, rbp: 0n,
    r8: 0n, r9: 0n, r10: 0n, r11: 0n, r12: 0n, r13: 0n, r14: 0n, r15: 0n,
    rip: 0n, rflags: RFLAGS_RESERVED,
  };
}

function sregsFor(mode: CpuMode, fields: Pick<Sregs, 'tr' | 'gdt' | 'cr0' | 'cr3' | 'cr4' | 'efer'>): Sregs {
  const data = dataSegment();
  return {
    cs: codeSegment(mode), ds: data, es: { ...data }, fs: { ...data }, gs: { ...data }, ss: { ...data },
    ldt: unusableLdt(), idt: { base: 0n, limit: 0 }, cr2: 0n, cr8: 0n, apicBase: APIC_BASE_BSP,
    ...fields,
  };
}

/**
 * The TSS the boot protocols' TR points at: a zeroed TSS whose ring-0 stack is BOOT_LAYOUT's
 * stack (so a bare-metal guest can take an interrupt from CPL3) and with no I/O bitmap.
 */
function writeBootTss(memory: GuestMemory, mode: CpuMode): void {
  const { tss, tssSize, stackTop } = BOOT_LAYOUT;
  memory.fill(tss, tssSize, 0);
  if (mode === 'long64') {
    memory.writeU64(tss + 4, BigInt(stackTop)); // RSP0
  } else {
    memory.writeU32(tss + 4, stackTop); // ESP0
    memory.writeU32(tss + 8, dataSegment().selector); // SS0
  }
  // I/O map base at or beyond the limit: no I/O permission bitmap.
  const b = memory.range(tss + 0x66, 2);
  b[0] = tssSize & 0xff; b[1] = tssSize >> 8;
}

function checkAddress(what: string, value: number, limit: number): void {
  if (!Number.isSafeInteger(value) || value < 0 || value >= limit) {
    throw new RangeError(`${what} 0x${value.toString(16)} is outside the range this entry mode can reach (below 0x${limit.toString(16)})`);
  }
}

export interface Enter32Options {
  /** Guest-physical (= linear) address to start at: the kernel's code32_start. */
  entry: number;
  /** boot_params address for ESI; BOOT_LAYOUT.bootParams by default. */
  bootParams?: number;
}

/** 32-bit boot protocol entry state. */
export function enter32(memory: GuestMemory, options: Enter32Options): EntryState {
  const bootParams = options.bootParams ?? BOOT_LAYOUT.bootParams;
  checkAddress('32-bit entry point', options.entry, 2 ** 32);
  checkAddress('boot_params address', bootParams, 2 ** 32);
  writeBootTss(memory, 'protected32');
  const tr = tssSegment(BOOT_LAYOUT.tss);
  const gdt = writeGdt(memory, 'protected32', tr);
  const regs = zeroRegs();
  regs.rip = BigInt(options.entry);
  regs.rsi = BigInt(bootParams);
  regs.rsp = BigInt(BOOT_LAYOUT.stackTop);
  return { regs, sregs: sregsFor('protected32', { tr, gdt, cr0: CR0_PE | CR0_ET, cr3: 0n, cr4: 0n, efer: 0n }) };
}

export interface Enter64Options {
  /** Guest-physical (= virtual, identity-mapped) address to start at: load address + 0x200 for a bzImage. */
  entry: number;
  bootParams?: number;
  /** Make the identity map usable from ring 3 (U/S bit), for bare-metal tests at CPL3. */
  userPages?: boolean;
}

/** 64-bit boot protocol entry state: long mode with the first 4 GiB identity-mapped. */
export function enter64(memory: GuestMemory, options: Enter64Options): EntryState {
  const bootParams = options.bootParams ?? BOOT_LAYOUT.bootParams;
  checkAddress('64-bit entry point', options.entry, BOOT_LAYOUT.identityMapSize);
  checkAddress('boot_params address', bootParams, BOOT_LAYOUT.identityMapSize);
  writeBootTss(memory, 'long64');
  const cr3 = writeIdentityPageTables(memory, { user: options.userPages ?? false });
  const tr = tssSegment(BOOT_LAYOUT.tss);
  const gdt = writeGdt(memory, 'long64', tr);
  const regs = zeroRegs();
  regs.rip = BigInt(options.entry);
  regs.rsi = BigInt(bootParams);
  regs.rsp = BigInt(BOOT_LAYOUT.stackTop);
  return {
    regs,
    sregs: sregsFor('long64', {
      tr, gdt, cr0: CR0_PE | CR0_ET | CR0_PG, cr3, cr4: CR4_PAE, efer: EFER_LME | EFER_LMA,
    }),
  };
}

export interface EnterPvhOptions {
  /** The kernel's XEN_ELFNOTE_PHYS32_ENTRY address. */
  entry: number;
  /** hvm_start_info address for EBX; BOOT_LAYOUT.pvhStartInfo by default. */
  startInfo?: number;
}

/** PVH entry state. The kernel sets up its own stack, GDT and IDT; ESP is given a sane value anyway. */
export function enterPvh(memory: GuestMemory, options: EnterPvhOptions): EntryState {
  const startInfo = options.startInfo ?? BOOT_LAYOUT.pvhStartInfo;
  checkAddress('PVH entry point', options.entry, 2 ** 32);
  checkAddress('hvm_start_info address', startInfo, 2 ** 32);
  // The ABI asks for a TSS at base 0 with limit 0x67; the kernel loads its own before using it.
  const tr = tssSegment(0, 0x67);
  const gdt = writeGdt(memory, 'protected32', tr);
  const regs = zeroRegs();
  regs.rip = BigInt(options.entry);
  regs.rbx = BigInt(startInfo);
  regs.rsp = BigInt(BOOT_LAYOUT.stackTop);
  return { regs, sregs: sregsFor('protected32', { tr, gdt, cr0: CR0_PE | CR0_ET, cr3: 0n, cr4: 0n, efer: 0n }) };
}
