// Guest memory bounds: every access is checked against the RAM regions.
import { describe, expect, test } from 'vitest';
import { GuestMemory, GuestMemoryError } from '../../base/guest-memory.ts';

describe('guest memory', () => {
  test('bounds-checks every access against the RAM regions', () => {
    const low = new Uint8Array(0x1000);
    const high = new Uint8Array(0x1000);
    const mem = new GuestMemory([{ guestPhys: 0x10000, bytes: high }, { guestPhys: 0, bytes: low }]);
    mem.writeU32(0xffc, 0xdeadbeef);
    expect(mem.readU32(0xffc)).toBe(0xdeadbeef);
    mem.writeU64(0x10000, 0x1122334455667788n);
    expect(high[0]).toBe(0x88);
    expect(() => mem.readU32(0xffe)).toThrow(GuestMemoryError);
    expect(() => mem.read(0x1000, 1)).toThrow(/0x1000\+0x1 is not inside guest RAM/);
    expect(mem.tryRange(-1, 1)).toBeUndefined();
    expect(mem.tryRange(0x10fff, 2)).toBeUndefined();
    expect(mem.size).toBe(0x2000);
  });
});
