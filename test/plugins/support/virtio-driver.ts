// A minimal virtio-mmio v2 driver living in the test process: it lays out split queues in guest
// RAM and programs the device through guest accesses, as Linux's virtio_mmio driver does, so
// plugin devices can be tested without booting a guest. It can also lie (malicious descriptors).
import { Reg, Status, VIRTIO_F_VERSION_1 } from '../../../devices/virtio/mmio-transport.ts';
import { DESC_F_NEXT, DESC_F_WRITE } from '../../../devices/virtio/queue.ts';
import type { Harness } from './harness.ts';

export interface Desc {
  addr: number;
  len: number;
  write?: boolean;
  /** Override the next-pointer (to build loops); defaults to the following descriptor. */
  next?: number;
  flags?: number;
}

export class TestVirtioDriver {
  private queues: { size: number; desc: number; avail: number; used: number; nextDesc: number; availIdx: number; lastUsed: number }[] = [];
  features = 0n;

  constructor(private readonly h: Harness, readonly base: number, private readonly memBase: number) {}

  reg(offset: number): number {
    return Number(this.h.read(this.base + offset, 4) ?? -1n);
  }

  setReg(offset: number, value: number): void {
    this.h.write(this.base + offset, 4, BigInt(value >>> 0));
  }

  /** Reset, negotiate `wanted` ∩ offered features, set up `nqueues` queues of `size`, DRIVER_OK. */
  init(nqueues: number, size = 16, wanted = -1n): void {
    this.setReg(Reg.STATUS, 0);
    this.setReg(Reg.STATUS, Status.ACKNOWLEDGE);
    this.setReg(Reg.STATUS, Status.ACKNOWLEDGE | Status.DRIVER);
    this.setReg(Reg.DEVICE_FEATURES_SEL, 0);
    const lo = BigInt(this.reg(Reg.DEVICE_FEATURES));
    this.setReg(Reg.DEVICE_FEATURES_SEL, 1);
    const hi = BigInt(this.reg(Reg.DEVICE_FEATURES));
    this.features = ((hi << 32n) | lo) & (wanted | VIRTIO_F_VERSION_1);
    this.setReg(Reg.DRIVER_FEATURES_SEL, 0);
    this.setReg(Reg.DRIVER_FEATURES, Number(this.features & 0xffff_ffffn));
    this.setReg(Reg.DRIVER_FEATURES_SEL, 1);
    this.setReg(Reg.DRIVER_FEATURES, Number(this.features >> 32n));
    this.setReg(Reg.STATUS, Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK);
    let at = this.memBase;
    this.queues = [];
    for (let i = 0; i < nqueues; i++) {
      this.setReg(Reg.QUEUE_SEL, i);
      this.setReg(Reg.QUEUE_NUM, size);
      const q = { size, desc: at, avail: at + 16 * size, used: at + 16 * size + 0x1000, nextDesc: 0, availIdx: 0, lastUsed: 0 };
      this.h.mem.fill(at, 0x3000, 0);
      at += 0x4000;
      this.setReg(Reg.QUEUE_DESC_LOW, q.desc);
      this.setReg(Reg.QUEUE_DESC_HIGH, 0);
      this.setReg(Reg.QUEUE_DRIVER_LOW, q.avail);
      this.setReg(Reg.QUEUE_DRIVER_HIGH, 0);
      this.setReg(Reg.QUEUE_DEVICE_LOW, q.used);
      this.setReg(Reg.QUEUE_DEVICE_HIGH, 0);
      this.setReg(Reg.QUEUE_READY, 1);
      this.queues.push(q);
    }
    this.setReg(Reg.STATUS, Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK | Status.DRIVER_OK);
  }

  /** Put a chain in the queue and notify; returns the head index. */
  submit(queue: number, descs: readonly Desc[], notify = true): number {
    const q = this.queues[queue]!;
    const head = q.nextDesc;
    descs.forEach((d, i) => {
      const idx = (head + i) % q.size;
      const o = q.desc + 16 * idx;
      const last = i === descs.length - 1;
      const flags = d.flags ?? ((last && d.next === undefined ? 0 : DESC_F_NEXT) | (d.write ? DESC_F_WRITE : 0));
      const b = this.h.mem.range(o, 16);
      const v = new DataView(b.buffer, b.byteOffset, 16);
      v.setBigUint64(0, BigInt(d.addr), true);
      v.setUint32(8, d.len, true);
      v.setUint16(12, flags, true);
      v.setUint16(14, d.next ?? (head + i + 1) % q.size, true);
    });
    q.nextDesc = (head + descs.length) % q.size;
    const a = this.h.mem.range(q.avail, 4 + 2 * q.size);
    const av = new DataView(a.buffer, a.byteOffset, a.byteLength);
    av.setUint16(4 + 2 * (q.availIdx % q.size), head, true);
    q.availIdx = (q.availIdx + 1) & 0xffff;
    av.setUint16(2, q.availIdx, true);
    if (notify) this.notify(queue);
    return head;
  }

  /** Tamper with the avail index directly (malicious driver). */
  setAvailIdx(queue: number, idx: number): void {
    const q = this.queues[queue]!;
    const a = this.h.mem.range(q.avail, 4);
    new DataView(a.buffer, a.byteOffset, 4).setUint16(2, idx, true);
  }

  notify(queue: number): void {
    this.setReg(Reg.QUEUE_NOTIFY, queue);
  }

  /** Used elements returned since the last call: [head, len]. */
  takeUsed(queue: number): [number, number][] {
    const q = this.queues[queue]!;
    const u = this.h.mem.range(q.used, 4 + 8 * q.size);
    const uv = new DataView(u.buffer, u.byteOffset, u.byteLength);
    const out: [number, number][] = [];
    const idx = uv.getUint16(2, true);
    while (q.lastUsed !== idx) {
      const o = 4 + 8 * (q.lastUsed % q.size);
      out.push([uv.getUint32(o, true), uv.getUint32(o + 4, true)]);
      q.lastUsed = (q.lastUsed + 1) & 0xffff;
    }
    return out;
  }

  /** Acknowledge the interrupt as Linux's handler does. */
  ackInterrupt(): number {
    const s = this.reg(Reg.INTERRUPT_STATUS);
    this.setReg(Reg.INTERRUPT_ACK, s);
    return s;
  }
}
