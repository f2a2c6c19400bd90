// A guest RAM and memory map for loader tests, laid out exactly as the VMM lays them out.
import { GuestMemory } from '../../../base/guest-memory.ts';
import { buildMemoryMap, type MemoryMap } from '../../../base/memory-map.ts';

export interface TestGuest {
  map: MemoryMap;
  memory: GuestMemory;
  view: DataView;
  bytes: Uint8Array;
  cstring(addr: number): string;
}

export function testGuest(ramBytes: number): TestGuest {
  const map = buildMemoryMap(ramBytes);
  const regions = map.ram.map((r) => ({ guestPhys: r.start, bytes: new Uint8Array(r.size) }));
  const bytes = regions[0]!.bytes;
  return {
    map,
    memory: new GuestMemory(regions),
    bytes,
    view: new DataView(bytes.buffer),
    cstring(addr: number): string {
      const end = bytes.indexOf(0, addr);
      return new TextDecoder().decode(bytes.subarray(addr, end));
    },
  };
}
