// The guest-physical memory map, as data. Everything that needs to know where things are
// (backends, the Linux loader's e820 table, device processes) reads it from here; how the
// device window is cut into slots is in slots.ts.
//
//   0            .. 0x9FC00      RAM (real-mode area; boot structures live here)
//   0x9FC00      .. 0x100000     reserved (EBDA, VGA, BIOS ROM: what PC firmware leaves there)
//   0x100000     .. lowRamEnd    RAM (kernel, initrd, everything else)
//   0xC0000000   .. 4 GiB        the 32-bit hole: never RAM
//     0xD0000000 ..              device MMIO window: virtio-mmio slots, 4 KiB each
//     0xFEC00000                 IOAPIC
//     0xFEE00000 .. 0xFEF00000   LAPIC and the MSI doorbell window
//     0xFFFBC000                 KVM identity-map page (Intel)
//     0xFFFBD000 .. +3 pages     KVM TSS (Intel)
//   4 GiB        ..              RAM beyond what fits below the hole

export const KiB = 1024;
export const MiB = 1024 * KiB;
export const GiB = 1024 * MiB;

export const E820 = { ram: 1, reserved: 2 } as const;
export type E820Type = (typeof E820)[keyof typeof E820];

export interface AddressRange {
  start: number;
  size: number;
  /** What it is, for error messages, docs and device processes. */
  name: string;
}

/** The two address spaces a device answers in: memory-mapped I/O and port I/O. */
export type Bus = 'mmio' | 'pio';

/** A range on one bus, named for messages ("ttyS0 (16550A)", "8259 PIC"). */
export interface BusRange extends AddressRange {
  bus: Bus;
}

export interface E820Entry {
  addr: number;
  size: number;
  type: E820Type;
}

export const LOW_RAM_LIMIT = 0xc000_0000;
export const HIGH_RAM_START = 4 * GiB;
export const EBDA_START = 0x9_fc00;
export const HIGH_MEMORY_START = 0x10_0000;

export const DEVICE_WINDOW = { start: 0xd000_0000, size: 0x0100_0000, name: 'device MMIO window' } as const;

export const IOAPIC = { start: 0xfec0_0000, size: 0x1000, name: 'IOAPIC' } as const;
export const LAPIC_MSI = { start: 0xfee0_0000, size: 0x10_0000, name: 'LAPIC and MSI doorbell window' } as const;
export const KVM_IDENTITY_MAP = { start: 0xfffb_c000, size: 0x1000, name: 'KVM identity-map page' } as const;
export const KVM_TSS = { start: 0xfffb_d000, size: 0x3000, name: 'KVM TSS' } as const;
export const LEGACY_HOLE = { start: EBDA_START, size: HIGH_MEMORY_START - EBDA_START, name: 'EBDA, VGA and BIOS area' } as const;

/**
 * Guest-physical ranges that are never RAM and never a DMA target. Device processes receive
 * this list (they must refuse descriptors pointing into it); the e820 table marks each as reserved.
 */
export const RESERVED_RANGES: readonly AddressRange[] = [IOAPIC, LAPIC_MSI, KVM_IDENTITY_MAP, KVM_TSS];

/** Smallest and largest guest RAM tsvmm accepts. */
export const MIN_RAM = 16 * MiB;
export const MAX_RAM = 64 * GiB;

export interface MemoryMap {
  /** Total RAM the user asked for. */
  ramSize: number;
  /** RAM as backend regions: one below the 32-bit hole, one above 4 GiB when needed. */
  ram: readonly AddressRange[];
  reserved: readonly AddressRange[];
  deviceWindow: AddressRange;
  /** The e820 table a guest sees: RAM, the legacy hole, and the reserved ranges, sorted. */
  e820: readonly E820Entry[];
}

export class MemoryMapError extends Error {}

export function buildMemoryMap(ramSize: number): MemoryMap {
  if (!Number.isSafeInteger(ramSize) || ramSize < MIN_RAM || ramSize > MAX_RAM) {
    throw new MemoryMapError(
      `guest RAM size ${ramSize} is out of range: use between ${MIN_RAM / MiB} MiB and ${MAX_RAM / GiB} GiB`);
  }
  if (ramSize % (4 * KiB) !== 0) {
    throw new MemoryMapError(`guest RAM size ${ramSize} is not a multiple of 4 KiB`);
  }
  const low = Math.min(ramSize, LOW_RAM_LIMIT);
  const ram: AddressRange[] = [{ start: 0, size: low, name: 'RAM below 3 GiB' }];
  if (ramSize > low) ram.push({ start: HIGH_RAM_START, size: ramSize - low, name: 'RAM above 4 GiB' });

  const e820: E820Entry[] = [
    { addr: 0, size: EBDA_START, type: E820.ram },
    { addr: LEGACY_HOLE.start, size: LEGACY_HOLE.size, type: E820.reserved },
    { addr: HIGH_MEMORY_START, size: low - HIGH_MEMORY_START, type: E820.ram },
    ...RESERVED_RANGES.map((r) => ({ addr: r.start, size: r.size, type: E820.reserved })),
  ];
  if (ram.length > 1) e820.push({ addr: HIGH_RAM_START, size: ram[1]!.size, type: E820.ram });
  e820.sort((a, b) => a.addr - b.addr);

  return { ramSize, ram, reserved: RESERVED_RANGES, deviceWindow: DEVICE_WINDOW, e820 };
}

/** Is [addr, addr+size) entirely inside guest RAM? */
export function isRam(map: MemoryMap, addr: number, size: number): boolean {
  return map.ram.some((r) => addr >= r.start && size >= 0 && addr + size <= r.start + r.size);
}
