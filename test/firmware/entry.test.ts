// The entry-state builders: GDT bytes, TSS, identity page tables and register values match the
// boot protocols (boot.rst, Xen PVH start_info.h) and well-known reference encodings.
import { describe, expect, test } from 'vitest';
import { GuestMemory } from '../../base/guest-memory.ts';
import { MiB } from '../../base/memory-map.ts';
import {
  BOOT_LAYOUT, SELECTOR, enter32, enter64, enterPvh, encodeDescriptor, codeSegment, dataSegment,
} from '../../firmware/entry/index.ts';

function ram(): { memory: GuestMemory; bytes: Uint8Array; view: DataView } {
  const bytes = new Uint8Array(16 * MiB);
  return { memory: new GuestMemory([{ guestPhys: 0, bytes }]), bytes, view: new DataView(bytes.buffer) };
}
const u64 = (v: DataView, a: number) => v.getBigUint64(a, true);

describe('GDT encoding', () => {
  test('flat segments encode to the canonical descriptors (Linux/Firecracker values)', () => {
    expect(encodeDescriptor(codeSegment('protected32'))).toBe(0x00cf9b000000ffffn);
    expect(encodeDescriptor(codeSegment('long64'))).toBe(0x00af9b000000ffffn);
    expect(encodeDescriptor(dataSegment())).toBe(0x00cf93000000ffffn);
    expect(encodeDescriptor(codeSegment('protected32', 3))).toBe(0x00cffb000000ffffn);
    expect(encodeDescriptor(dataSegment(3))).toBe(0x00cff3000000ffffn);
  });
});

describe('enter32', () => {
  test('protected mode, paging off, __BOOT_CS/__BOOT_DS, ESI = boot_params, IF = 0', () => {
    const { memory, view } = ram();
    const { regs, sregs } = enter32(memory, { entry: 0x100000 });
    expect(regs.rip).toBe(0x100000n);
    expect(regs.rsi).toBe(BigInt(BOOT_LAYOUT.bootParams));
    expect(regs.rbx | regs.rbp | regs.rdi).toBe(0n);
    expect(regs.rflags).toBe(2n);
    expect(sregs.cr0 & 1n).toBe(1n);
    expect(sregs.cr0 & (1n << 31n)).toBe(0n);
    expect(sregs.efer).toBe(0n);
    expect(sregs.cs).toMatchObject({ selector: 0x10, base: 0n, limit: 0xffffffff, db: true, l: false, g: true, type: 0xb });
    for (const s of [sregs.ds, sregs.es, sregs.ss]) expect(s).toMatchObject({ selector: 0x18, limit: 0xffffffff, type: 3 });
    expect(sregs.gdt.base).toBe(BigInt(BOOT_LAYOUT.gdt));
    expect(u64(view, BOOT_LAYOUT.gdt + 0x10)).toBe(0x00cf9b000000ffffn);
    expect(u64(view, BOOT_LAYOUT.gdt + 0x18)).toBe(0x00cf93000000ffffn);
    // TR points at a real TSS whose ring-0 stack is the boot stack.
    expect(sregs.tr).toMatchObject({ selector: SELECTOR.tss, base: BigInt(BOOT_LAYOUT.tss), limit: 0x67, type: 0xb, s: false });
    expect(view.getUint32(BOOT_LAYOUT.tss + 4, true)).toBe(BOOT_LAYOUT.stackTop);
    expect(u64(view, BOOT_LAYOUT.gdt + SELECTOR.tss)).toBe(encodeDescriptor(sregs.tr));
  });
});

describe('enter64', () => {
  test('long mode, identity map of 4 GiB in 2 MiB pages, CS 64-bit, RSI = boot_params', () => {
    const { memory, view } = ram();
    const { regs, sregs } = enter64(memory, { entry: 0x100200 });
    expect(regs.rip).toBe(0x100200n);
    expect(regs.rsi).toBe(BigInt(BOOT_LAYOUT.bootParams));
    expect(sregs.efer).toBe(0x500n);
    expect(sregs.cr0 & 0x80000001n).toBe(0x80000001n);
    expect(sregs.cr4 & 0x20n).toBe(0x20n);
    expect(sregs.cr3).toBe(BigInt(BOOT_LAYOUT.pml4));
    expect(sregs.cs).toMatchObject({ selector: 0x10, l: true, db: false });
    expect(u64(view, BOOT_LAYOUT.gdt + 0x10)).toBe(0x00af9b000000ffffn);
    expect(u64(view, BOOT_LAYOUT.pml4)).toBe(BigInt(BOOT_LAYOUT.pdpt) | 3n);
    for (let d = 0; d < 4; d++) {
      expect(u64(view, BOOT_LAYOUT.pdpt + d * 8)).toBe(BigInt(BOOT_LAYOUT.pageDirectories + d * 0x1000) | 3n);
    }
    expect(u64(view, BOOT_LAYOUT.pdpt + 4 * 8)).toBe(0n);
    // Walk a few addresses through the tables: virtual == physical.
    for (const va of [0, 0x100000, 0x3fe00000, 0xc0000000, 0xfee00000, 0xffe00000]) {
      const pd = Number(u64(view, BOOT_LAYOUT.pdpt + Math.floor(va / 2 ** 30) * 8) & ~0xfffn);
      const pde = u64(view, pd + ((va >>> 21) & 511) * 8);
      expect(pde & 0x83n).toBe(0x83n);
      expect(pde & ~0xfffn).toBe(BigInt(va) & ~0x1fffffn);
    }
    // 64-bit TSS: RSP0 is the boot stack, upper descriptor half holds base bits 63..32.
    expect(u64(view, BOOT_LAYOUT.tss + 4)).toBe(BigInt(BOOT_LAYOUT.stackTop));
    expect(u64(view, BOOT_LAYOUT.gdt + SELECTOR.tss + 8)).toBe(0n);
  });

  test('userPages sets U/S at every level for ring-3 tests', () => {
    const { memory, view } = ram();
    enter64(memory, { entry: 0x1000, userPages: true });
    expect(u64(view, BOOT_LAYOUT.pml4) & 4n).toBe(4n);
    expect(u64(view, BOOT_LAYOUT.pdpt) & 4n).toBe(4n);
    expect(u64(view, BOOT_LAYOUT.pageDirectories + 8) & 0x87n).toBe(0x87n);
  });

  test('refuses an entry point outside the identity map', () => {
    const { memory } = ram();
    expect(() => enter64(memory, { entry: 2 ** 33 })).toThrow(/64-bit entry point/);
  });
});

describe('enterPvh', () => {
  test('protected mode, CR0 = PE (+ET), CR4 = 0, EBX = start_info, TR base 0 limit 0x67', () => {
    const { memory } = ram();
    const { regs, sregs } = enterPvh(memory, { entry: 0x10002d0 });
    expect(regs.rip).toBe(0x10002d0n);
    expect(regs.rbx).toBe(BigInt(BOOT_LAYOUT.pvhStartInfo));
    expect(regs.rflags).toBe(2n);
    expect(sregs.cr0).toBe(0x11n);
    expect(sregs.cr4).toBe(0n);
    expect(sregs.efer).toBe(0n);
    expect(sregs.cs).toMatchObject({ base: 0n, limit: 0xffffffff, db: true, l: false, type: 0xb });
    expect(sregs.ds).toMatchObject({ base: 0n, limit: 0xffffffff, db: true, type: 3 });
    expect(sregs.tr).toMatchObject({ base: 0n, limit: 0x67, type: 0xb, present: true, s: false });
  });
});

test('the layout stays below the EBDA and its areas do not overlap', () => {
  const L = BOOT_LAYOUT;
  const areas: [string, number, number][] = [
    ['gdt', L.gdt, L.gdtSize], ['tss', L.tss, L.tssSize],
    ['pvh', L.pvhStartInfo, 0x1000], ['bootParams', L.bootParams, 0x1000], ['stack', 0x8000, 0x1000],
    ['page tables', L.pml4, L.pageDirectories + 4 * 0x1000 - L.pml4], ['cmdline', L.cmdline, L.cmdlineCapacity],
  ];
  areas.sort((a, b) => a[1] - b[1]);
  for (let i = 1; i < areas.length; i++) expect(areas[i]![1]).toBeGreaterThanOrEqual(areas[i - 1]![1] + areas[i - 1]![2]);
  expect(L.cmdline + L.cmdlineCapacity).toBeLessThanOrEqual(L.end);
  expect(L.end).toBeLessThanOrEqual(0x9fc00);
  expect(L.pvhMemmap + L.pvhMaxMemmapEntries * 24).toBeLessThanOrEqual(L.pvhStartInfo + 0x1000);
});
