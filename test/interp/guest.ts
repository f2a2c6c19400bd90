// A bare-metal 32-bit protected-mode guest for comparing the interpreter with the real CPU
// (KVM) and for benchmarks. The same image and the same driver run on both backends through
// hypervisors/backend.ts only.
//
// Guest-physical layout (identity-mapped when paging is on):
//   0x1000  GDT   0x08 code0, 0x10 data0, 0x1b code3, 0x23 data3, 0x2b code3 64-bit, 0x33 data3 based at 0x400000
//                 (non-flat), 0x38 data DPL0, 0x40 not-present data3, 0x50 TSS (16-byte slot),
//                 0x60 64-bit code0 (long-mode runs)
//   0x1800  TSS   (esp0 = 0x9000, ss0 = 0x10; no I/O bitmap)
//   0x2000  IDT   256 interrupt gates to 0x3000 + 16*v; DPL3 except vectors 0x40-0x4f (DPL0)
//   0x3000  exception stubs, 0x4000 common handler (CPL0): records the fault, then OUT 0xE0
//   0x5000  page directory, 0x6000 page table for 0-4 MiB (4 KiB pages), 4 MiB PSE pages above
//   0x11000 the same mappings for long mode (PML4; PDPT 0x12000, PD 0xa000, PT 0xc000);
//           long-mode IDT 0xd000, stubs 0xe000, handler 0xf000, 64-bit TSS 0x1900
//   0x9000  CPL0 stack top
//   0x10000 control word: index of the current case
//   0x100000 program (CPL3)
//   0x300000 not-present page, 0x301000 user read-only, 0x302000 supervisor-only
//   0x500000 result records (64 bytes each), 0x600000 per-case data (128 bytes each)
//
// CPL0 code never IRETs: on this project's hosts KVM emulates guest CPL0 code and its IRET
// fails. The handler exits to the driver with OUT; the driver resumes the next case at CPL3.

import { ExitReason, type Hypervisor, type Segment, type Sregs, type Vcpu, type Vm } from '../../hypervisors/backend.ts';
import { KVM_IDENTITY_MAP, KVM_TSS } from '../../base/memory-map.ts';

export const RAM_SIZE = 32 << 20;
export const CTRL = 0x10000;
export const CODE = 0x100000;
export const RESULTS = 0x500000;
export const DATA = 0x600000;
export const REC = 64;
export const DATA_SIZE = 128;
export const PAGE_NP = 0x300000, PAGE_RO = 0x301000, PAGE_SUP = 0x302000;
export const SEG_BASE_33 = 0x400000;
export const EXIT_PORT = 0xe0;

export interface GuestOptions {
  paging: boolean;
  /** CR0.EM (x87 instructions raise #NM). */
  em?: boolean;
  /**
   * Run the CPL3 code in 64-bit mode under long-mode paging (same mappings, 64-bit IDT/TSS/
   * handlers): KVM on this project's hosts runs CPL3 natively only there (32-bit paging fails,
   * and compatibility-mode code is run by KVM's instruction emulator at ~0.5 MIPS).
   */
  long?: boolean;
}

function desc(base: number, limit: number, access: number, flags: number): [number, number] {
  const lo = ((base & 0xffff) << 16) | (limit & 0xffff);
  const hi = (base & 0xff000000) | ((flags & 0xf) << 20) | (limit & 0xf0000) | ((access & 0xff) << 8) | ((base >>> 16) & 0xff);
  return [lo >>> 0, hi >>> 0];
}

/** Assembly for the CPL0 exception stubs and common handler (placed at 0x3000 by buildSystem). */
function handlerCode(long = false): Uint8Array {
  const at = long ? 0xe000 : 0x3000;
  // Hand-assembled so the image needs no second assembler run: stub v (16 bytes):
  //   [push $0 (6a 00) unless the CPU pushed an error code] push $v (68 imm32) jmp common (e9 rel32)
  const out = new Uint8Array(0x1000 + 0x100);
  const errVectors = new Set([8, 10, 11, 12, 13, 14, 17]);
  for (let v = 0; v < 256; v++) {
    let p = v * 16;
    if (!errVectors.has(v)) { out[p++] = 0x6a; out[p++] = 0x00; }
    out[p++] = 0x68; out[p++] = v; out[p++] = 0; out[p++] = 0; out[p++] = 0;
    const from = at + p + 5, to = at + 0x1000;
    out[p++] = 0xe9;
    const rel = (to - from) | 0;
    out[p++] = rel & 0xff; out[p++] = (rel >> 8) & 0xff; out[p++] = (rel >> 16) & 0xff; out[p++] = (rel >>> 24) & 0xff;
  }
  // Common handler at 0x4000, frame after PUSHA: edi esi ebp esp' ebx edx ecx eax | vec err eip cs eflags esp ss
  // The 64-bit variant pushes RAX..RDI itself (no PUSHA) and reads a 64-bit frame; the same
  // encodings address (%rsp)/(%rbx) in 64-bit mode.
  const h: number[] = long
    ? [0x50, 0x51, 0x52, 0x53, 0x55, 0x56, 0x57, 0x8b, 0x1c, 0x25, ...le32(CTRL)] // push rax..rdi; mov CTRL, %ebx
    : [0x60, 0x8b, 0x1d, ...le32(CTRL)];                                           // pusha; mov CTRL, %ebx
  h.push(0xc1, 0xe3, 0x06, 0x81, 0xc3, ...le32(RESULTS)); // shl $6, %ebx; add $RESULTS, %ebx
  const copy = (from: number, to: number): void => { h.push(0x8b, 0x44, 0x24, from, 0x89, 0x43, to); }; // mov from(%esp),%eax; mov %eax,to(%ebx)
  // Frame offsets: registers, then vector, error, eip, cs, eflags, esp.
  const F = long
    ? { eax: 48, ecx: 40, edx: 32, ebx: 24, ebp: 16, esi: 8, edi: 0, vec: 56, err: 64, eip: 72, cs: 80, fl: 88, esp: 96 }
    : { eax: 28, ecx: 24, edx: 20, ebx: 16, ebp: 8, esi: 4, edi: 0, vec: 32, err: 36, eip: 40, cs: 44, fl: 48, esp: 52 };
  copy(F.eax, 0); copy(F.ecx, 4); copy(F.edx, 8); copy(F.ebx, 12); copy(F.esp, 16); copy(F.ebp, 20); copy(F.esi, 24); copy(F.edi, 28);
  copy(F.fl, 32); copy(F.vec, 36); copy(F.err, 40); copy(F.eip, 44);
  h.push(0x0f, 0x20, 0xd0, 0x89, 0x43, 48);   // mov %cr2, %eax; mov %eax, 48(%ebx)
  copy(F.cs, 52);
  h.push(0x8c, 0xd8, 0x66, 0x89, 0x43, 56);   // mov %ds,%eax; mov %ax,56(%ebx)
  h.push(0x8c, 0xc0, 0x66, 0x89, 0x43, 58);   // es
  h.push(0x8c, 0xe0, 0x66, 0x89, 0x43, 60);   // fs
  h.push(0x8c, 0xe8, 0x66, 0x89, 0x43, 62);   // gs
  h.push(0xe6, EXIT_PORT);                    // out %al, $0xe0
  h.push(0xf4, 0xeb, 0xfd);                   // hlt; jmp .-3 (never resumed)
  out.set(h, 0x1000);
  return out;
}
function le32(v: number): number[] { return [v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, (v >>> 24) & 0xff]; }

/** Write GDT, TSS, IDT, handlers and page tables into guest RAM. */
export function buildSystem(ram: Uint8Array): void {
  const dv = new DataView(ram.buffer, ram.byteOffset, ram.byteLength);
  const gdt: [number, number][] = [
    [0, 0],
    desc(0, 0xfffff, 0x9b, 0xc), desc(0, 0xfffff, 0x93, 0xc), desc(0, 0xfffff, 0xfb, 0xc), desc(0, 0xfffff, 0xf3, 0xc),
    desc(0, 0xfffff, 0xfb, 0xa), desc(SEG_BASE_33, 0xffff, 0xf3, 0x4), desc(0, 0xfffff, 0x93, 0xc), desc(0, 0xfffff, 0x73, 0xc),
    [0, 0], desc(0x1800, 0x67, 0x8b, 0), [0, 0], desc(0, 0xfffff, 0x9b, 0xa),
  ];
  gdt.forEach(([lo, hi], k) => { dv.setUint32(0x1000 + 8 * k, lo, true); dv.setUint32(0x1004 + 8 * k, hi, true); });
  dv.setUint32(0x1800 + 4, 0x9000, true);
  dv.setUint32(0x1800 + 8, 0x10, true);
  dv.setUint16(0x1800 + 0x66, 0x68, true); // I/O bitmap base beyond the limit: no bitmap
  dv.setUint32(0x1900 + 4, 0x9000, true); // 64-bit TSS (long-mode runs): RSP0
  dv.setUint16(0x1900 + 0x66, 0x68, true);
  for (let v = 0; v < 256; v++) {
    const off = 0x3000 + v * 16;
    const dpl = v >= 0x40 && v < 0x50 ? 0 : 3;
    dv.setUint32(0x2000 + 8 * v, (0x08 << 16) | (off & 0xffff), true);
    dv.setUint32(0x2004 + 8 * v, ((off & 0xffff0000) | 0x8e00 | (dpl << 13)) >>> 0, true);
  }
  ram.set(handlerCode(), 0x3000);
  // Long-mode copies (KVM): 16-byte gates at 0xd000 to 64-bit stubs at 0xe000 (selector 0x60).
  for (let v = 0; v < 256; v++) {
    const off = 0xe000 + v * 16;
    const dpl = v >= 0x40 && v < 0x50 ? 0 : 3;
    dv.setUint32(0xd000 + 16 * v, (0x60 << 16) | (off & 0xffff), true);
    dv.setUint32(0xd004 + 16 * v, ((off & 0xffff0000) | 0x8e00 | (dpl << 13)) >>> 0, true);
  }
  ram.set(handlerCode(true), 0xe000);
  // Paging: 4 KiB pages for 0-4 MiB (with the special pages), 4 MiB pages above.
  for (let p = 0; p < 1024; p++) {
    let pte = (p << 12) | 0x7; // present, writable, user
    const a = p << 12;
    if (a === PAGE_NP) pte = 0;
    else if (a === PAGE_RO) pte = a | 0x5;
    else if (a === PAGE_SUP) pte = a | 0x3;
    dv.setUint32(0x6000 + 4 * p, pte >>> 0, true);
  }
  dv.setUint32(0x5000, 0x6000 | 0x7, true);
  for (let d = 1; d < RAM_SIZE >>> 22; d++) dv.setUint32(0x5000 + 4 * d, ((d << 22) | 0x87) >>> 0, true);
  // The same mappings as long-mode tables (KVM on this project's hosts runs CPL3 natively only
  // under long-mode paging): PML4 0x11000, PDPT 0x12000, PD 0xa000 (2 MiB pages, except 2-4 MiB
  // through the PT at 0xc000).
  dv.setUint32(0x11000, 0x12000 | 7, true);
  dv.setUint32(0x12000, 0xa000 | 7, true);
  for (let d = 0; d < RAM_SIZE >>> 21; d++) dv.setUint32(0xa000 + 8 * d, ((d << 21) | 0x87) >>> 0, true);
  dv.setUint32(0xa000 + 8, 0xc000 | 0x7, true);
  for (let p = 0; p < 512; p++) dv.setUint32(0xc000 + 8 * p, dv.getUint32(0x6000 + 4 * (512 + p), true), true);
}

function seg(selector: number, type: number, dpl: number, base = 0, limit = 0xffffffff, s = true): Segment {
  return { base: BigInt(base), limit, selector, type, present: true, dpl, db: true, s, l: false, g: limit > 0xfffff, avl: false, unusable: false };
}

/** Special registers for running at CPL3 in this image. */
export function cpl3Sregs(base: Sregs, opts: GuestOptions): Sregs {
  const d3 = seg(0x23, 3, 3);
  let cr0 = 0x11n | 0x20n; // PE, ET, NE
  if (opts.paging) cr0 |= 0x80000000n;
  if (opts.em) cr0 |= 0x4n;
  return {
    ...base,
    cs: opts.long ? { ...seg(0x2b, 11, 3), l: true, db: false } : seg(0x1b, 11, 3), ss: d3, ds: d3, es: d3, fs: d3, gs: d3,
    tr: { ...seg(0x50, 11, 0, opts.long ? 0x1900 : 0x1800, 0x67, false), g: false, db: false },
    ldt: { ...seg(0, 2, 0, 0, 0, false), present: false, unusable: true, db: false, g: false },
    gdt: { base: 0x1000n, limit: 0x67 }, idt: opts.long ? { base: 0xd000n, limit: 0xfff } : { base: 0x2000n, limit: 0x7ff },
    cr0, cr3: opts.long ? 0x11000n : 0x5000n, cr4: opts.long ? 0x20n : 0x10n, efer: opts.long ? 0x500n : 0n,
  };
}

export function vmConfig(): { ram: { guestPhys: number; size: number }[]; tssAddress: number; identityMapAddress: number } {
  return { ram: [{ guestPhys: 0, size: RAM_SIZE }], tssAddress: KVM_TSS.start, identityMapAddress: KVM_IDENTITY_MAP.start };
}

export interface Machine { vm: Vm; vcpu: Vcpu; ram: Uint8Array }

/** A VM on `hv` with the system structures and `program` (linked at CODE) loaded. */
export function makeMachine(hv: Hypervisor, program: Uint8Array, extra?: (ram: Uint8Array) => void): Machine {
  const vm = hv.createVm(vmConfig());
  const ram = vm.ram[0]!.bytes;
  buildSystem(ram);
  ram.set(program, CODE);
  extra?.(ram);
  const vcpu = vm.createVcpu(0);
  return { vm, vcpu, ram };
}

/** Start (or resume) at CPL3 at `eip`. */
export function enterCpl3(vcpu: Vcpu, eip: number, opts: GuestOptions): void {
  vcpu.setSregs(cpl3Sregs(vcpu.getSregs(), opts));
  const r = vcpu.getRegs();
  vcpu.setRegs({ ...r, rip: BigInt(eip), rsp: 0x8000n, rflags: 0x2n }); // IF=0: no platform timer interrupts
}

export interface DriveResult { exits: number; faults: number; error?: string }

/**
 * Run case programs: every OUT 0xE0 from the handler records a fault (or the final INT) for
 * case CTRL; the driver resumes at the next case's entry from `entries` until `entries.length`.
 */
export function drive(m: Machine, entries: readonly number[], opts: GuestOptions, maxExits = 1_000_000): DriveResult {
  const dv = new DataView(m.ram.buffer, m.ram.byteOffset, m.ram.byteLength);
  enterCpl3(m.vcpu, entries[0]!, opts);
  let exits = 0, faults = 0;
  while (exits++ < maxExits) {
    const r = m.vcpu.run();
    if (r === ExitReason.Io && m.vcpu.exit.address === EXIT_PORT) {
      const cur = dv.getUint32(CTRL, true);
      if (cur >= entries.length - 1) return { exits, faults };
      faults++;
      dv.setUint32(CTRL, cur + 1, true);
      enterCpl3(m.vcpu, entries[cur + 1]!, opts);
      continue;
    }
    const e = m.vcpu.exit;
    return { exits, faults, error: `unexpected exit ${r} (port/address 0x${e.address.toString(16)}, ${e.detail}) at case ${dv.getUint32(CTRL, true)}, rip 0x${m.vcpu.getRegs().rip.toString(16)}` };
  }
  return { exits, faults, error: 'too many exits' };
}
