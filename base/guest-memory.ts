// Guest RAM as one bounds-checked abstraction (in the spirit of rust-vmm's vm-memory): every
// access names a guest-physical range, and a range that is not wholly inside one RAM region
// is refused with an error instead of touching host memory outside guest RAM.

export interface GuestRamView {
  guestPhys: number;
  bytes: Uint8Array;
}

export class GuestMemoryError extends Error {
  constructor(readonly address: number, readonly length: number, what: string) {
    super(`${what}: guest range 0x${address.toString(16)}+0x${length.toString(16)} is not inside guest RAM`);
  }
}

export class GuestMemory {
  private readonly regions: readonly GuestRamView[];

  constructor(regions: readonly GuestRamView[]) {
    this.regions = [...regions].sort((a, b) => a.guestPhys - b.guestPhys);
  }

  /** Total bytes of RAM. */
  get size(): number {
    return this.regions.reduce((n, r) => n + r.bytes.length, 0);
  }

  /** The host view of [address, address+length), or undefined when it is not all RAM. */
  tryRange(address: number, length: number): Uint8Array | undefined {
    if (!Number.isSafeInteger(address) || !Number.isSafeInteger(length) || address < 0 || length < 0) return undefined;
    for (const r of this.regions) {
      const off = address - r.guestPhys;
      if (off >= 0 && off + length <= r.bytes.length) return r.bytes.subarray(off, off + length);
    }
    return undefined;
  }

  /** The host view of [address, address+length); throws GuestMemoryError when it is not all RAM. */
  range(address: number, length: number, what = 'guest memory access'): Uint8Array {
    const view = this.tryRange(address, length);
    if (!view) throw new GuestMemoryError(address, length, what);
    return view;
  }

  write(address: number, data: Uint8Array, what = 'write to guest memory'): void {
    this.range(address, data.length, what).set(data);
  }

  read(address: number, length: number, what = 'read from guest memory'): Uint8Array {
    return this.range(address, length, what).slice();
  }

  fill(address: number, length: number, value: number): void {
    this.range(address, length, 'fill guest memory').fill(value);
  }

  readU32(address: number): number {
    const b = this.range(address, 4);
    return (b[0]! | (b[1]! << 8) | (b[2]! << 16) | (b[3]! << 24)) >>> 0;
  }

  writeU32(address: number, value: number): void {
    const b = this.range(address, 4);
    b[0] = value; b[1] = value >>> 8; b[2] = value >>> 16; b[3] = value >>> 24;
  }

  writeU64(address: number, value: bigint): void {
    const b = this.range(address, 8);
    new DataView(b.buffer, b.byteOffset, 8).setBigUint64(0, value, true);
  }
}
