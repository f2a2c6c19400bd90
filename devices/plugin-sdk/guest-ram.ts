// Guest RAM as a plugin sees it: the VMM's memfds mapped into this process, behind one
// bounds-checked abstraction. Every access names a guest-physical range; a range that is not
// wholly inside one RAM region, or that touches a reserved range (IOAPIC, LAPIC/MSI window, the
// device window...), is refused with an error, never turned into a host pointer. Devices and
// virtqueues reach guest memory only through this (or the VMM's GuestMemory, same contract).
import { GuestMemory, GuestMemoryError } from '../../base/guest-memory.ts';

export interface DmaMemory {
  /** Host view of [address, address+length); throws GuestMemoryError when not entirely guest RAM. */
  range(address: number, length: number, what?: string): Uint8Array;
}

export class GuestRam implements DmaMemory {
  private readonly ram: GuestMemory;

  constructor(regions: readonly { guestPhys: number; bytes: Uint8Array }[], private readonly reserved: readonly { start: number; size: number }[]) {
    this.ram = new GuestMemory(regions);
  }

  range(address: number, length: number, what = 'guest memory access'): Uint8Array {
    for (const r of this.reserved) {
      if (address < r.start + r.size && r.start < address + Math.max(length, 1)) {
        throw new GuestMemoryError(address, length, `${what} (touches reserved range 0x${r.start.toString(16)}+0x${r.size.toString(16)})`);
      }
    }
    return this.ram.range(address, length, what);
  }

  read(address: number, length: number): Uint8Array {
    return this.range(address, length, 'read from guest memory').slice();
  }

  write(address: number, data: Uint8Array): void {
    this.range(address, data.length, 'write to guest memory').set(data);
  }

  get size(): number {
    return this.ram.size;
  }
}
