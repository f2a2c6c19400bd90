// Identity page tables for entering long mode: PML4 → one PDPT → page directories of 2 MiB
// pages, mapping [0, BOOT_LAYOUT.identityMapSize) virtual = physical. This covers everything
// the 64-bit boot protocol needs mapped (kernel at 1 MiB plus init_size, boot_params, command
// line, initrd below 4 GiB); the kernel builds its own tables right after entry.

import type { GuestMemory } from '../../base/guest-memory.ts';
import { BOOT_LAYOUT } from './layout.ts';

const PRESENT = 1n;
const WRITABLE = 2n;
const USER = 4n;
const PAGE_SIZE_2M = 0x80n;
const TWO_MIB = 0x20_0000;
const ENTRIES = 512;

export interface PageTableOptions {
  /** Set the U/S bit at every level so ring-3 code (bare-metal tests) can use the mapping. */
  user?: boolean;
}

/** Write the identity map and return the CR3 value (the PML4's address). */
export function writeIdentityPageTables(memory: GuestMemory, options: PageTableOptions = {}): bigint {
  const { pml4, pdpt, pageDirectories, identityMapSize } = BOOT_LAYOUT;
  const flags = PRESENT | WRITABLE | (options.user ? USER : 0n);
  const directories = identityMapSize / (TWO_MIB * ENTRIES);

  memory.fill(pml4, 0x1000, 0);
  memory.fill(pdpt, 0x1000, 0);
  memory.writeU64(pml4, BigInt(pdpt) | flags);
  for (let d = 0; d < directories; d++) {
    const pd = pageDirectories + d * 0x1000;
    memory.writeU64(pdpt + d * 8, BigInt(pd) | flags);
    for (let i = 0; i < ENTRIES; i++) {
      const phys = BigInt(d * ENTRIES + i) * BigInt(TWO_MIB);
      memory.writeU64(pd + i * 8, phys | flags | PAGE_SIZE_2M);
    }
  }
  return BigInt(pml4);
}
