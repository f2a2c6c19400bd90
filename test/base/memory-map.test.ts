import { describe, expect, test } from 'vitest';
import {
  DEVICE_WINDOW, E820, GiB, HIGH_RAM_START, IOAPIC, KVM_TSS, LAPIC_MSI, MiB, buildMemoryMap, isRam,
} from '../../base/memory-map.ts';
import { deviceSlot } from '../../base/slots.ts';

describe('memory map', () => {
  test('small guest: one RAM region, e820 with the legacy hole and every reserved range', () => {
    const map = buildMemoryMap(256 * MiB);
    expect(map.ram).toEqual([{ start: 0, size: 256 * MiB, name: 'RAM below 3 GiB' }]);
    const ram = map.e820.filter((e) => e.type === E820.ram);
    expect(ram).toEqual([
      { addr: 0, size: 0x9fc00, type: E820.ram },
      { addr: 0x100000, size: 256 * MiB - 0x100000, type: E820.ram },
    ]);
    for (const r of [IOAPIC, LAPIC_MSI, KVM_TSS]) {
      expect(map.e820).toContainEqual({ addr: r.start, size: r.size, type: E820.reserved });
    }
    // Sorted and never overlapping.
    for (let i = 1; i < map.e820.length; i++) {
      expect(map.e820[i]!.addr).toBeGreaterThanOrEqual(map.e820[i - 1]!.addr + map.e820[i - 1]!.size);
    }
  });

  test('large guest: RAM is split around the 32-bit hole', () => {
    const map = buildMemoryMap(4 * GiB);
    expect(map.ram.map((r) => [r.start, r.size])).toEqual([[0, 3 * GiB], [HIGH_RAM_START, GiB]]);
    expect(map.e820.at(-1)).toEqual({ addr: HIGH_RAM_START, size: GiB, type: E820.ram });
    expect(isRam(map, 3 * GiB - 4, 4)).toBe(true);
    expect(isRam(map, 3 * GiB - 4, 8)).toBe(false);
    expect(isRam(map, DEVICE_WINDOW.start, 4)).toBe(false);
  });

  test('no reserved range or device slot overlaps RAM', () => {
    const map = buildMemoryMap(3 * GiB);
    for (const r of [...map.reserved, map.deviceWindow]) expect(isRam(map, r.start, 1)).toBe(false);
    expect(deviceSlot(0)).toEqual({ base: DEVICE_WINDOW.start, size: 0x1000, irq: 5 });
    expect(() => deviceSlot(99)).toThrow(/no device slot 99/);
  });

  test('refuses sizes it cannot map', () => {
    expect(() => buildMemoryMap(1 * MiB)).toThrow(/out of range/);
    expect(() => buildMemoryMap(256 * MiB + 1)).toThrow(/multiple of 4 KiB/);
    expect(() => buildMemoryMap(1024 * GiB)).toThrow(/out of range/);
  });
});
