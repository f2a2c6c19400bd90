// Where the boot structures live in guest-physical memory. All of them sit in the first RAM
// region, below the EBDA (0x9FC00), away from the kernel (loaded at 1 MiB or higher), so a
// loader and a bare-metal test can place them without consulting anything else.
//
//   0x00500 .. 0x00548   GDT (see gdt.ts for the selectors)
//   0x00600 .. 0x00668   TSS for the 32/64-bit boot protocols (RSP0/ESP0 = stackTop)
//   0x01000 .. 0x02000   PVH: hvm_start_info, module list, memory map
//   0x07000 .. 0x08000   boot_params ("zero page") for the x86 boot protocol
//   0x08000 .. 0x09000   initial stack (grows down from stackTop)
//   0x09000 .. 0x0A000   PML4                 } identity map for 64-bit entry:
//   0x0A000 .. 0x0B000   PDPT                 } 4 page directories of 512 × 2 MiB pages
//   0x0B000 .. 0x0F000   page directories     } = the first 4 GiB
//   0x20000 .. 0x30000   kernel command line (NUL-terminated)
//
// Firecracker uses the same neighbourhood (zero page 0x7000, page tables 0x9000, cmdline 0x20000).

import { EBDA_START, GiB } from '../../base/memory-map.ts';

export const BOOT_LAYOUT = {
  gdt: 0x0500,
  gdtSize: 0x48,
  tss: 0x0600,
  tssSize: 0x68,
  /** struct hvm_start_info (56 bytes). */
  pvhStartInfo: 0x1000,
  /** hvm_modlist_entry[] (32 bytes each). */
  pvhModules: 0x1040,
  pvhMaxModules: 6,
  /** hvm_memmap_table_entry[] (24 bytes each), up to the end of the page. */
  pvhMemmap: 0x1100,
  pvhMaxMemmapEntries: Math.floor((0x2000 - 0x1100) / 24),
  bootParams: 0x7000,
  stackTop: 0x8ff0,
  pml4: 0x9000,
  pdpt: 0xa000,
  pageDirectories: 0xb000,
  /** Bytes identity-mapped by the 64-bit entry's page tables. */
  identityMapSize: 4 * GiB,
  cmdline: 0x20000,
  /** Bytes reserved for the command line including its NUL. */
  cmdlineCapacity: 0x10000,
  /** First byte after the boot structures: the loader places nothing else below this. */
  end: 0x30000,
} as const;

// The whole layout must fit in the low RAM region below the EBDA.
if (BOOT_LAYOUT.end > EBDA_START) throw new Error('BOOT_LAYOUT overlaps the EBDA');
