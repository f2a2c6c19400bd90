// What an in-process device model offers the VMM's I/O bus. Out-of-process devices (plugins)
// reach the guest through the region registry instead; both share the same address space rules.

/** Raises and lowers one interrupt line; given to a device by whoever wires it up. */
export interface IrqLine {
  set(level: boolean): void;
}

/** Port-I/O device. `port` is the absolute port; `size` is 1, 2 or 4 bytes. */
export interface PioDevice {
  readonly name: string;
  pioRead(port: number, size: number): number;
  pioWrite(port: number, size: number, value: number): void;
}

/** MMIO device. `offset` is relative to the device's base; `size` is 1, 2, 4 or 8 bytes. */
export interface MmioDevice {
  readonly name: string;
  mmioRead(offset: number, size: number): bigint;
  mmioWrite(offset: number, size: number, value: bigint): void;
}
