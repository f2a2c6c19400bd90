// Routes the port-I/O and MMIO exits of a vCPU to in-process device models. Accesses that hit
// nothing behave as on a PC: reads return all-ones, writes are dropped.
import type { MmioDevice, PioDevice } from '../devices/device.ts';

interface Range<D> {
  start: number;
  end: number; // exclusive
  device: D;
}

export class BusConflictError extends Error {}

class RangeTable<D extends { name: string }> {
  private readonly ranges: Range<D>[] = [];
  // The last hit, checked first: guests hammer one device at a time (UART output, a doorbell).
  private last: Range<D> | undefined;

  add(start: number, size: number, device: D): void {
    const end = start + size;
    const clash = this.ranges.find((r) => start < r.end && r.start < end);
    if (clash) {
      throw new BusConflictError(`${device.name} at 0x${start.toString(16)}+0x${size.toString(16)} overlaps ${clash.device.name}`);
    }
    this.ranges.push({ start, end, device });
    this.ranges.sort((a, b) => a.start - b.start);
  }

  find(address: number): Range<D> | undefined {
    const last = this.last;
    if (last && address >= last.start && address < last.end) return last;
    for (const r of this.ranges) {
      if (address >= r.start && address < r.end) return (this.last = r);
    }
    return undefined;
  }

  /** Does [start, start+size) overlap anything registered? */
  overlaps(start: number, size: number): string | undefined {
    const end = start + size;
    return this.ranges.find((r) => start < r.end && r.start < end)?.device.name;
  }
}

export class IoBus {
  readonly pio = new RangeTable<PioDevice>();
  readonly mmio = new RangeTable<MmioDevice>();

  addPio(port: number, count: number, device: PioDevice): void {
    this.pio.add(port, count, device);
  }

  addMmio(base: number, size: number, device: MmioDevice): void {
    this.mmio.add(base, size, device);
  }

  pioRead(port: number, size: number): number {
    const r = this.pio.find(port);
    return r ? r.device.pioRead(port, size) : allOnes(size);
  }

  pioWrite(port: number, size: number, value: number): void {
    this.pio.find(port)?.device.pioWrite(port, size, value);
  }

  mmioRead(address: number, size: number): bigint {
    const r = this.mmio.find(address);
    return r ? r.device.mmioRead(address - r.start, size) : BigInt(allOnes(size)) | (size === 8 ? 0xffff_ffff_0000_0000n : 0n);
  }

  mmioWrite(address: number, size: number, value: bigint): void {
    const r = this.mmio.find(address);
    if (r) r.device.mmioWrite(address - r.start, size, value);
  }
}

function allOnes(size: number): number {
  return size >= 4 ? 0xffff_ffff : (1 << (size * 8)) - 1;
}
