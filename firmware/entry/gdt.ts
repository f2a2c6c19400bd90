// The boot GDT and the matching segment registers. Each segment is described once, in the
// descriptor-cache form the backends take (Segment, i.e. struct kvm_segment), and the GDT
// bytes are encoded from that same object: what the CPU has cached and what it would reload
// from the table can never disagree.

import type { Segment } from '../../base/cpu-state.ts';
import type { GuestMemory } from '../../base/guest-memory.ts';
import { BOOT_LAYOUT } from './layout.ts';

/** Selectors of the boot GDT. 0x10/0x18 are the boot protocol's __BOOT_CS/__BOOT_DS. */
export const SELECTOR = {
  bootCs: 0x10,
  bootDs: 0x18,
  /** 32-bit TSS (one 8-byte slot) or 64-bit TSS (two slots: 0x20 and 0x28). */
  tss: 0x20,
  /** Ring-3 segments, for bare-metal tests that run their workload at CPL3 (RPL 3 included). */
  userCs32: 0x30 | 3,
  userDs: 0x38 | 3,
  userCs64: 0x40 | 3,
} as const;

export type CpuMode = 'protected32' | 'long64';

const TYPE_CODE_EXEC_READ_ACCESSED = 0xb;
const TYPE_DATA_READ_WRITE_ACCESSED = 0x3;
const TYPE_TSS_BUSY = 0xb;
const TYPE_LDT = 0x2;

const FLAT_LIMIT = 0xffff_ffff;

function seg(fields: Partial<Segment> & Pick<Segment, 'selector' | 'type'>): Segment {
  return {
    base: 0n, limit: FLAT_LIMIT, present: true, dpl: 0, db: true, s: true, l: false, g: true,
    avl: false, unusable: false, ...fields,
  };
}

/** A flat 4 GiB code segment: 32-bit, or 64-bit (L=1, D=0) in long mode. */
export function codeSegment(mode: CpuMode, dpl = 0): Segment {
  const selector = dpl === 0 ? SELECTOR.bootCs : mode === 'long64' ? SELECTOR.userCs64 : SELECTOR.userCs32;
  return seg({ selector, type: TYPE_CODE_EXEC_READ_ACCESSED, dpl, db: mode !== 'long64', l: mode === 'long64' });
}

/** A flat 4 GiB read/write data segment. */
export function dataSegment(dpl = 0): Segment {
  return seg({ selector: dpl === 0 ? SELECTOR.bootDs : SELECTOR.userDs, type: TYPE_DATA_READ_WRITE_ACCESSED, dpl });
}

/** A busy TSS (32-bit in protected mode, 64-bit in long mode: the type value is the same). */
export function tssSegment(base: number, limit = BOOT_LAYOUT.tssSize - 1): Segment {
  return seg({ selector: SELECTOR.tss, type: TYPE_TSS_BUSY, base: BigInt(base), limit, s: false, db: false, g: false });
}

/** No LDT: a null selector marked unusable (what KVM and real CPUs report after reset). */
export function unusableLdt(): Segment {
  return seg({ selector: 0, type: TYPE_LDT, limit: 0, present: false, s: false, db: false, g: false, unusable: true });
}

/** The 8-byte GDT descriptor for a code/data segment, or the low half of a system descriptor. */
export function encodeDescriptor(s: Segment): bigint {
  const base = Number(s.base & 0xffff_ffffn);
  // With G=1 the descriptor holds the limit in 4 KiB units.
  const limit = s.g ? s.limit >>> 12 : s.limit;
  const access = (s.present ? 0x80 : 0) | (s.dpl << 5) | (s.s ? 0x10 : 0) | s.type;
  const flags = (s.g ? 8 : 0) | (s.db ? 4 : 0) | (s.l ? 2 : 0) | (s.avl ? 1 : 0);
  return BigInt(limit & 0xffff)
    | (BigInt(base & 0xff_ffff) << 16n)
    | (BigInt(access) << 40n)
    | (BigInt((limit >>> 16) & 0xf) << 48n)
    | (BigInt(flags) << 52n)
    | (BigInt(base >>> 24) << 56n);
}

/**
 * Write the boot GDT at BOOT_LAYOUT.gdt. `mode` picks the kernel code segment at __BOOT_CS
 * (32-bit or 64-bit); in long mode the TSS descriptor takes two slots, as the CPU requires.
 * Returns the GDTR value.
 */
export function writeGdt(memory: GuestMemory, mode: CpuMode, tss: Segment): { base: bigint; limit: number } {
  const entries = new Map<number, bigint>([
    [SELECTOR.bootCs, encodeDescriptor(codeSegment(mode))],
    [SELECTOR.bootDs, encodeDescriptor(dataSegment())],
    [SELECTOR.tss, encodeDescriptor(tss)],
    [SELECTOR.userCs32 & ~3, encodeDescriptor(codeSegment('protected32', 3))],
    [SELECTOR.userDs & ~3, encodeDescriptor(dataSegment(3))],
    [SELECTOR.userCs64 & ~3, encodeDescriptor(codeSegment('long64', 3))],
  ]);
  // Upper half of the 16-byte long-mode TSS descriptor: base bits 63..32 (the rest must be 0).
  entries.set(SELECTOR.tss + 8, mode === 'long64' ? tss.base >> 32n : 0n);
  memory.fill(BOOT_LAYOUT.gdt, BOOT_LAYOUT.gdtSize, 0);
  for (const [offset, value] of entries) memory.writeU64(BOOT_LAYOUT.gdt + offset, value);
  return { base: BigInt(BOOT_LAYOUT.gdt), limit: BOOT_LAYOUT.gdtSize - 1 };
}
