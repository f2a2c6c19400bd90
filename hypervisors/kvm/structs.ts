// Byte layouts of the KVM structs the backend exchanges with the addon (x86 uapi, stable ABI;
// the addon checks the sizes against the header it was built with). Little-endian throughout.
import type { CpuidEntry, DescriptorTable, Regs, Segment, Sregs } from '../backend.ts';

export const REGS_SIZE = 144;
export const SREGS_SIZE = 312;
export const CPUID_ENTRY_SIZE = 40;

const REG_NAMES = [
  'rax', 'rbx', 'rcx', 'rdx', 'rsi', 'rdi', 'rsp', 'rbp',
  'r8', 'r9', 'r10', 'r11', 'r12', 'r13', 'r14', 'r15', 'rip', 'rflags',
] as const satisfies readonly (keyof Regs)[];

export function decodeRegs(bytes: Uint8Array): Regs {
  const v = view(bytes);
  const regs = {} as Regs;
  REG_NAMES.forEach((name, i) => { regs[name] = v.getBigUint64(i * 8, true); });
  return regs;
}

export function encodeRegs(regs: Regs, out: Uint8Array): void {
  const v = view(out);
  REG_NAMES.forEach((name, i) => v.setBigUint64(i * 8, BigInt.asUintN(64, regs[name]), true));
}

// struct kvm_segment (24 bytes)
function decodeSegment(v: DataView, o: number): Segment {
  return {
    base: v.getBigUint64(o, true),
    limit: v.getUint32(o + 8, true),
    selector: v.getUint16(o + 12, true),
    type: v.getUint8(o + 14),
    present: v.getUint8(o + 15) !== 0,
    dpl: v.getUint8(o + 16),
    db: v.getUint8(o + 17) !== 0,
    s: v.getUint8(o + 18) !== 0,
    l: v.getUint8(o + 19) !== 0,
    g: v.getUint8(o + 20) !== 0,
    avl: v.getUint8(o + 21) !== 0,
    unusable: v.getUint8(o + 22) !== 0,
  };
}

function encodeSegment(v: DataView, o: number, s: Segment): void {
  v.setBigUint64(o, BigInt.asUintN(64, s.base), true);
  v.setUint32(o + 8, s.limit >>> 0, true);
  v.setUint16(o + 12, s.selector, true);
  v.setUint8(o + 14, s.type);
  v.setUint8(o + 15, s.present ? 1 : 0);
  v.setUint8(o + 16, s.dpl);
  v.setUint8(o + 17, s.db ? 1 : 0);
  v.setUint8(o + 18, s.s ? 1 : 0);
  v.setUint8(o + 19, s.l ? 1 : 0);
  v.setUint8(o + 20, s.g ? 1 : 0);
  v.setUint8(o + 21, s.avl ? 1 : 0);
  v.setUint8(o + 22, s.unusable ? 1 : 0);
  v.setUint8(o + 23, 0);
}

// struct kvm_dtable (16 bytes)
function decodeDtable(v: DataView, o: number): DescriptorTable {
  return { base: v.getBigUint64(o, true), limit: v.getUint16(o + 8, true) };
}

function encodeDtable(v: DataView, o: number, t: DescriptorTable): void {
  v.setBigUint64(o, BigInt.asUintN(64, t.base), true);
  v.setUint16(o + 8, t.limit, true);
  v.setUint16(o + 10, 0, true); v.setUint32(o + 12, 0, true);
}

const SEGMENTS = ['cs', 'ds', 'es', 'fs', 'gs', 'ss', 'tr', 'ldt'] as const;
const CONTROL = ['cr0', 'cr2', 'cr3', 'cr4', 'cr8', 'efer', 'apicBase'] as const;
const GDT = 192;
const IDT = 208;
const CR0 = 224;

export function decodeSregs(bytes: Uint8Array): Sregs {
  const v = view(bytes);
  const sregs = { gdt: decodeDtable(v, GDT), idt: decodeDtable(v, IDT) } as Sregs;
  SEGMENTS.forEach((name, i) => { sregs[name] = decodeSegment(v, i * 24); });
  CONTROL.forEach((name, i) => { sregs[name] = v.getBigUint64(CR0 + i * 8, true); });
  return sregs;
}

/**
 * Encodes into `out`, which should hold the vCPU's current sregs: the interrupt bitmap
 * (pending external interrupts, not part of Sregs) is left as it is.
 */
export function encodeSregs(sregs: Sregs, out: Uint8Array): void {
  const v = view(out);
  SEGMENTS.forEach((name, i) => encodeSegment(v, i * 24, sregs[name]));
  encodeDtable(v, GDT, sregs.gdt);
  encodeDtable(v, IDT, sregs.idt);
  CONTROL.forEach((name, i) => v.setBigUint64(CR0 + i * 8, BigInt.asUintN(64, sregs[name]), true));
}

// struct kvm_cpuid_entry2 (40 bytes)
export function decodeCpuid(bytes: Uint8Array): CpuidEntry[] {
  const v = view(bytes);
  const entries: CpuidEntry[] = [];
  for (let o = 0; o + CPUID_ENTRY_SIZE <= bytes.length; o += CPUID_ENTRY_SIZE) {
    entries.push({
      function: v.getUint32(o, true), index: v.getUint32(o + 4, true), flags: v.getUint32(o + 8, true),
      eax: v.getUint32(o + 12, true), ebx: v.getUint32(o + 16, true), ecx: v.getUint32(o + 20, true), edx: v.getUint32(o + 24, true),
    });
  }
  return entries;
}

export function encodeCpuid(entries: readonly CpuidEntry[]): Uint8Array {
  const out = new Uint8Array(entries.length * CPUID_ENTRY_SIZE);
  const v = view(out);
  entries.forEach((e, i) => {
    const o = i * CPUID_ENTRY_SIZE;
    v.setUint32(o, e.function >>> 0, true); v.setUint32(o + 4, e.index >>> 0, true); v.setUint32(o + 8, e.flags >>> 0, true);
    v.setUint32(o + 12, e.eax >>> 0, true); v.setUint32(o + 16, e.ebx >>> 0, true);
    v.setUint32(o + 20, e.ecx >>> 0, true); v.setUint32(o + 24, e.edx >>> 0, true);
  });
  return out;
}

function view(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}
