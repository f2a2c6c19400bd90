// The PVH boot ABI's struct hvm_start_info and its tables (Xen's hvm/start_info.h), which a
// PVH-capable vmlinux finds through EBX at its XEN_ELFNOTE_PHYS32_ENTRY.

import type { GuestMemory } from '../base/guest-memory.ts';
import type { E820Entry } from '../base/memory-map.ts';
import { BOOT_LAYOUT } from './entry/layout.ts';
import { LoaderError } from './loader-error.ts';

export const XEN_ELFNOTE_PHYS32_ENTRY = 18;
export const XEN_HVM_START_MAGIC_VALUE = 0x336ec578;
/** Version 1 adds the memory map (memmap_paddr, memmap_entries). */
export const HVM_START_INFO_VERSION = 1;
export const HVM_START_INFO_SIZE = 56;
export const HVM_MODLIST_ENTRY_SIZE = 32;
export const HVM_MEMMAP_ENTRY_SIZE = 24;

export interface StartInfoSpec {
  cmdlineAddr: number;
  initrd?: { addr: number; size: number };
  e820: readonly E820Entry[];
}

/** Write hvm_start_info, the module list and the memory map at BOOT_LAYOUT; returns start_info's address. */
export function writeStartInfo(memory: GuestMemory, spec: StartInfoSpec): number {
  const { pvhStartInfo, pvhModules, pvhMemmap, pvhMaxMemmapEntries } = BOOT_LAYOUT;
  if (spec.e820.length > pvhMaxMemmapEntries) {
    throw new LoaderError(`the memory map has ${spec.e820.length} entries; the PVH start info holds ${pvhMaxMemmapEntries}`);
  }
  const page = memory.range(pvhStartInfo, 0x1000, 'PVH start info');
  page.fill(0);
  const v = new DataView(page.buffer, page.byteOffset, page.byteLength);
  const at = (addr: number): number => addr - pvhStartInfo;

  v.setUint32(0, XEN_HVM_START_MAGIC_VALUE, true);
  v.setUint32(4, HVM_START_INFO_VERSION, true);
  v.setUint32(8, 0, true); // flags
  if (spec.initrd) {
    v.setUint32(12, 1, true); // nr_modules
    v.setBigUint64(16, BigInt(pvhModules), true);
    v.setBigUint64(at(pvhModules), BigInt(spec.initrd.addr), true);
    v.setBigUint64(at(pvhModules) + 8, BigInt(spec.initrd.size), true);
    // cmdline_paddr and reserved stay 0: the module has no command line.
  }
  v.setBigUint64(24, BigInt(spec.cmdlineAddr), true);
  v.setBigUint64(32, 0n, true); // rsdp_paddr: no ACPI
  v.setBigUint64(40, BigInt(pvhMemmap), true);
  v.setUint32(48, spec.e820.length, true);
  spec.e820.forEach((e, i) => {
    const o = at(pvhMemmap) + i * HVM_MEMMAP_ENTRY_SIZE;
    v.setBigUint64(o, BigInt(e.addr), true);
    v.setBigUint64(o + 8, BigInt(e.size), true);
    v.setUint32(o + 16, e.type, true);
  });
  return pvhStartInfo;
}
