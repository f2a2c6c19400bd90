// A virtio split virtqueue (virtio 1.x §2.7), separate from the devices that use it. The guest
// driver is untrusted: every ring and buffer address is checked against guest RAM (through a
// DmaMemory that also refuses reserved ranges), descriptor chains are bounded by the queue size
// (so a loop is found, never followed forever), and anything inconsistent raises QueueError,
// which the transport turns into DEVICE_NEEDS_RESET. Nothing here trusts a guest number.
import type { DmaMemory } from '../plugin-sdk/guest-ram.ts';
import type { QueueProgress } from './transport-state.ts';

export class QueueError extends Error {}

export const DESC_F_NEXT = 1;
export const DESC_F_WRITE = 2;
export const DESC_F_INDIRECT = 4;

export interface Buffer {
  /** Guest-physical address; [addr, addr+len) is guest RAM (checked). */
  addr: number;
  len: number;
  /** Device-writable (the driver reads it). */
  writable: boolean;
}

export interface Chain {
  head: number;
  buffers: Buffer[];
}

/** Configuration the driver writes through the transport. */
export interface QueueConfig {
  size: number;
  descAddr: number;
  availAddr: number;
  usedAddr: number;
}

export class SplitQueue {
  private desc!: DataView;
  private avail!: DataView;
  private used!: DataView;
  readonly size: number;

  /**
   * Validates the rings' placement; throws QueueError when the driver's layout is unusable.
   * `progress` (where the device is in the rings) is kept outside this object so that it can
   * outlive the process: call start() for a queue the driver just enabled, resume() to take
   * over one from a process that died.
   */
  constructor(private readonly mem: DmaMemory, cfg: QueueConfig, readonly maxSize: number, private readonly progress: QueueProgress) {
    const { size } = cfg;
    if (size === 0 || size > maxSize || (size & (size - 1)) !== 0) {
      throw new QueueError(`queue size ${size} is not a power of two between 1 and ${maxSize}`);
    }
    this.size = size;
    this.desc = this.ring(cfg.descAddr, 16 * size, 16, 'descriptor table');
    this.avail = this.ring(cfg.availAddr, 6 + 2 * size, 2, 'available ring');
    this.used = this.ring(cfg.usedAddr, 6 + 8 * size, 4, 'used ring');
  }

  /** A fresh queue: the device takes from where the driver's used index stands, holding nothing. */
  start(): void {
    this.progress.start(this.used.getUint16(2, true));
  }

  /**
   * Take over from a process that died: finish its bookkeeping and return the chains it had
   * taken and not given back (in head order), which the caller must now return. Entries the
   * driver made available that the dead process never took are simply still there for pop().
   */
  resume(): Chain[] {
    const p = this.progress;
    const published = this.used.getUint16(2, true);
    if (published === ((p.usedIdx + 1) & 0xffff)) {
      // Killed between publishing a used entry and recording it (push): that head is back.
      p.release(this.used.getUint32(4 + 8 * (p.usedIdx % this.size), true));
      p.usedIdx = published;
    } else if (published !== p.usedIdx) {
      throw new QueueError(`the used index moved from ${p.usedIdx} to ${published} while no device was attached`);
    }
    const held = p.held();
    const pending = (this.avail.getUint16(2, true) - p.lastAvail) & 0xffff;
    if (pending > 0 && pending <= this.size && p.holds(this.avail.getUint16(4 + 2 * (p.lastAvail % this.size), true))) {
      // Killed between taking an entry and recording the take (pop): it was taken.
      p.lastAvail = (p.lastAvail + 1) & 0xffff;
    }
    return held.map((head) => ({ head, buffers: this.walk(head) }));
  }

  private ring(addr: number, len: number, align: number, what: string): DataView {
    if (addr % align !== 0) throw new QueueError(`${what} at 0x${addr.toString(16)} is not ${align}-byte aligned`);
    try {
      const b = this.mem.range(addr, len, what);
      return new DataView(b.buffer, b.byteOffset, b.byteLength);
    } catch (e) {
      throw new QueueError((e as Error).message);
    }
  }

  /** The next available chain, validated; undefined when the driver has offered nothing new. */
  pop(): Chain | undefined {
    const availIdx = this.avail.getUint16(2, true);
    const p = this.progress;
    const pending = (availIdx - p.lastAvail) & 0xffff;
    if (pending === 0) return undefined;
    if (pending > this.size) throw new QueueError(`driver claims ${pending} new buffers in a queue of ${this.size}`);
    const head = this.avail.getUint16(4 + 2 * (p.lastAvail % this.size), true);
    const buffers = this.walk(head);
    if (p.holds(head)) throw new QueueError(`driver offered descriptor ${head} again while the device still holds it`);
    // Recorded as held before the take is, so a process killed in between leaves it findable.
    p.hold(head);
    p.lastAvail = (p.lastAvail + 1) & 0xffff;
    return { head, buffers };
  }

  private walk(head: number): Buffer[] {
    const buffers: Buffer[] = [];
    let i = head;
    let sawWritable = false;
    for (;;) {
      if (i >= this.size) throw new QueueError(`descriptor index ${i} is outside the queue of ${this.size}`);
      // A chain can name each descriptor at most once; a longer one must loop.
      if (buffers.length >= this.size) throw new QueueError(`descriptor chain from ${head} is longer than the queue (a loop)`);
      const o = 16 * i;
      const addr = Number(this.desc.getBigUint64(o, true));
      const len = this.desc.getUint32(o + 8, true);
      const flags = this.desc.getUint16(o + 12, true);
      const next = this.desc.getUint16(o + 14, true);
      if (flags & DESC_F_INDIRECT) throw new QueueError(`descriptor ${i} is indirect, a feature this device did not offer`);
      const writable = (flags & DESC_F_WRITE) !== 0;
      if (!writable && sawWritable) throw new QueueError(`descriptor ${i} is device-readable after a device-writable one`);
      sawWritable ||= writable;
      try {
        this.mem.range(addr, len, `descriptor ${i} buffer`);
      } catch (e) {
        throw new QueueError((e as Error).message);
      }
      buffers.push({ addr, len, writable });
      if (!(flags & DESC_F_NEXT)) return buffers;
      i = next;
    }
  }

  /** Return a chain to the driver with `written` bytes placed in its writable buffers. */
  push(head: number, written: number): void {
    const p = this.progress;
    const slot = 4 + 8 * (p.usedIdx % this.size);
    this.used.setUint32(slot, head, true);
    this.used.setUint32(slot + 4, written, true);
    const next = (p.usedIdx + 1) & 0xffff;
    // The element must be visible before the index; a plain store order is enough here because
    // the guest reads it only after the interrupt or its next notification round trip. The
    // bookkeeping comes last: resume() recognises a publish that was not yet recorded.
    this.used.setUint16(2, next, true);
    p.release(head);
    p.usedIdx = next;
  }

  /** The driver asked not to be interrupted (VIRTQ_AVAIL_F_NO_INTERRUPT). */
  get interruptSuppressed(): boolean {
    return (this.avail.getUint16(0, true) & 1) !== 0;
  }
}

/** Gather the device-readable bytes of a chain (copied). */
export function readChain(mem: DmaMemory, buffers: readonly Buffer[], limit = Infinity): Uint8Array {
  const total = Math.min(limit, buffers.filter((b) => !b.writable).reduce((n, b) => n + b.len, 0));
  const out = new Uint8Array(total);
  let off = 0;
  for (const b of buffers) {
    if (b.writable || off >= total) continue;
    const n = Math.min(b.len, total - off);
    out.set(mem.range(b.addr, n), off);
    off += n;
  }
  return out;
}
