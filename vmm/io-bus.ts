// The one address decoder of the vCPU worker: the port-I/O and MMIO ranges of the in-process
// platform (vmm/platform.ts builds it from its device list) and what completes an exit there.
// A range holds either a device model, which is handed one access at a time, or a dispatcher,
// which takes the whole exit (the device plugins' slots). Accesses that hit nothing behave as on
// a PC: reads return all-ones, writes are dropped.
import type { VcpuExit } from '../hypervisors/backend.ts';
import type { Bus } from '../base/memory-map.ts';
import type { MmioDevice, PioDevice } from '../devices/device.ts';

/** Completes exits in its range itself; false leaves the access unclaimed (all-ones). */
export interface ExitDispatcher {
  readonly name: string;
  dispatch(exit: VcpuExit, pio: boolean): boolean;
}

/** A range of one bus: a device model (one access at a time) or a dispatcher (the whole exit). */
interface Range<D> {
  start: number;
  end: number; // exclusive
  name: string;
  device: D | undefined;
  dispatcher: ExitDispatcher | undefined;
}

export class BusConflictError extends Error {}

class RangeTable<D> {
  private readonly ranges: Range<D>[] = [];
  // The last hit, checked first: guests hammer one device at a time (UART output, a doorbell).
  private last: Range<D> | undefined;

  add(start: number, size: number, name: string, device: D | undefined, dispatcher: ExitDispatcher | undefined): void {
    const end = start + size;
    const clash = this.ranges.find((r) => start < r.end && r.start < end);
    if (clash) throw new BusConflictError(`${name} at 0x${start.toString(16)}+0x${size.toString(16)} overlaps ${clash.name}`);
    this.ranges.push({ start, end, name, device, dispatcher });
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
}

export class IoBus {
  private readonly pio = new RangeTable<PioDevice>();
  private readonly mmio = new RangeTable<MmioDevice>();

  addPio(port: number, count: number, device: PioDevice): void {
    this.pio.add(port, count, device.name, device, undefined);
  }

  addMmio(base: number, size: number, device: MmioDevice): void {
    this.mmio.add(base, size, device.name, device, undefined);
  }

  addDispatcher(bus: Bus, start: number, size: number, dispatcher: ExitDispatcher): void {
    (bus === 'pio' ? this.pio : this.mmio).add(start, size, dispatcher.name, undefined, dispatcher);
  }

  /** Complete a port-I/O exit; a read leaves its value in exit.data. String I/O is `count` accesses to one port. */
  completePio(exit: VcpuExit): void {
    const { address: port, size, count, data } = exit;
    const r = this.pio.find(port);
    if (r?.dispatcher?.dispatch(exit, true)) return;
    const d = r?.device;
    if (exit.write) {
      if (d) for (let i = 0; i < count; i++) d.pioWrite(port, size, readLE(data, i * size, size));
    } else {
      for (let i = 0; i < count; i++) writeLE(data, i * size, size, d ? d.pioRead(port, size) : allOnes(size));
    }
  }

  /** Complete an MMIO exit; a read leaves its value in exit.data. */
  completeMmio(exit: VcpuExit): void {
    const { address, size, data } = exit;
    const r = this.mmio.find(address);
    if (r?.dispatcher?.dispatch(exit, false)) return;
    const d = r?.device;
    if (exit.write) d?.mmioWrite(address - r!.start, size, readLE64(data, size));
    else writeLE64(data, size, d ? d.mmioRead(address - r!.start, size) : allOnes64(size));
  }

  pioRead(port: number, size: number): number {
    const d = this.pio.find(port)?.device;
    return d ? d.pioRead(port, size) : allOnes(size);
  }

  pioWrite(port: number, size: number, value: number): void {
    this.pio.find(port)?.device?.pioWrite(port, size, value);
  }

  mmioRead(address: number, size: number): bigint {
    const r = this.mmio.find(address);
    return r?.device ? r.device.mmioRead(address - r.start, size) : allOnes64(size);
  }

  mmioWrite(address: number, size: number, value: bigint): void {
    const r = this.mmio.find(address);
    r?.device?.mmioWrite(address - r.start, size, value);
  }
}

function allOnes(size: number): number {
  return size >= 4 ? 0xffff_ffff : (1 << (size * 8)) - 1;
}

function allOnes64(size: number): bigint {
  return BigInt(allOnes(size)) | (size === 8 ? 0xffff_ffff_0000_0000n : 0n);
}

function readLE(data: Uint8Array, offset: number, size: number): number {
  if (size === 1) return data[offset]!;
  if (size === 2) return data[offset]! | (data[offset + 1]! << 8);
  return (data[offset]! | (data[offset + 1]! << 8) | (data[offset + 2]! << 16) | (data[offset + 3]! << 24)) >>> 0;
}

function writeLE(data: Uint8Array, offset: number, size: number, value: number): void {
  data[offset] = value;
  if (size >= 2) data[offset + 1] = value >>> 8;
  if (size >= 4) {
    data[offset + 2] = value >>> 16;
    data[offset + 3] = value >>> 24;
  }
}

function readLE64(data: Uint8Array, size: number): bigint {
  let v = 0n;
  for (let i = size - 1; i >= 0; i--) v = (v << 8n) | BigInt(data[i]!);
  return v;
}

function writeLE64(data: Uint8Array, size: number, value: bigint): void {
  for (let i = 0; i < size; i++) data[i] = Number((value >> BigInt(8 * i)) & 0xffn);
}
