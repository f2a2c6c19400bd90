// The virtio-mmio transport, version 2 (virtio 1.x §4.2.2; register map in
// ../shared/reference/linux-boot-and-virtio-mmio.md). It owns the register file, feature
// negotiation, device status and queue configuration, and hands the device model validated
// SplitQueues once the driver sets DRIVER_OK. A device error (a bad ring, a malicious
// descriptor) sets DEVICE_NEEDS_RESET and raises a configuration interrupt; the device keeps
// serving after the driver resets it.
import type { DmaMemory } from '../plugin-sdk/guest-ram.ts';
import { QueueError, SplitQueue } from './queue.ts';

export const VIRTIO_MMIO_MAGIC = 0x74726976;
export const VIRTIO_F_VERSION_1 = 1n << 32n;
export const VENDOR_ID = 0x554d4551; // "QEMU", as most virtio-mmio devices report; drivers ignore it

export const Status = { ACKNOWLEDGE: 1, DRIVER: 2, DRIVER_OK: 4, FEATURES_OK: 8, DEVICE_NEEDS_RESET: 0x40, FAILED: 0x80 } as const;
export const INT_USED_BUFFER = 1;
export const INT_CONFIG = 2;

export const Reg = {
  MAGIC: 0x000, VERSION: 0x004, DEVICE_ID: 0x008, VENDOR_ID: 0x00c,
  DEVICE_FEATURES: 0x010, DEVICE_FEATURES_SEL: 0x014, DRIVER_FEATURES: 0x020, DRIVER_FEATURES_SEL: 0x024,
  QUEUE_SEL: 0x030, QUEUE_NUM_MAX: 0x034, QUEUE_NUM: 0x038, QUEUE_READY: 0x044, QUEUE_NOTIFY: 0x050,
  INTERRUPT_STATUS: 0x060, INTERRUPT_ACK: 0x064, STATUS: 0x070,
  QUEUE_DESC_LOW: 0x080, QUEUE_DESC_HIGH: 0x084, QUEUE_DRIVER_LOW: 0x090, QUEUE_DRIVER_HIGH: 0x094,
  QUEUE_DEVICE_LOW: 0x0a0, QUEUE_DEVICE_HIGH: 0x0a4, SHM_SEL: 0x0ac, SHM_LEN_LOW: 0x0b0, SHM_LEN_HIGH: 0x0b4,
  CONFIG_GENERATION: 0x0fc, CONFIG: 0x100,
} as const;

/** What a virtio device model provides to the transport. */
export interface VirtioDevice {
  readonly deviceId: number;
  /** Offered features; must include VIRTIO_F_VERSION_1. */
  readonly features: bigint;
  /** QueueNumMax of each queue. */
  readonly queueSizes: readonly number[];
  readConfig(offset: number, size: number): number;
  writeConfig(offset: number, size: number, value: number): void;
  /** The driver set DRIVER_OK: queues are live. */
  activate(queues: readonly SplitQueue[], features: bigint, ctx: DeviceContext): void;
  /** The driver reset the device (Status = 0) or the VMM did. */
  reset(): void;
  /** The driver notified queue `index` (QueueNotify or its ioeventfd). Called only while active. */
  notify(index: number): void;
}

export interface DeviceContext {
  readonly mem: DmaMemory;
  /** Buffers were returned: set the used-buffer interrupt bit and raise the line. */
  signalUsed(): void;
  /** Something is wrong with what the driver gave us: DEVICE_NEEDS_RESET, logged. */
  fail(reason: string): void;
}

interface QueueRegs {
  num: number;
  ready: boolean;
  desc: number;
  driver: number;
  device: number;
}

export class VirtioMmioTransport implements DeviceContext {
  private status = 0;
  private interruptStatus = 0;
  private deviceFeaturesSel = 0;
  private driverFeaturesSel = 0;
  private driverFeatures = 0n;
  private queueSel = 0;
  private queues: QueueRegs[];
  private live: SplitQueue[] | undefined;

  constructor(
    private readonly device: VirtioDevice,
    readonly mem: DmaMemory,
    private readonly raiseIrq: () => void,
    private readonly log: (message: string) => void,
  ) {
    if (!(device.features & VIRTIO_F_VERSION_1)) throw new Error('virtio-mmio v2 devices must offer VIRTIO_F_VERSION_1');
    this.queues = device.queueSizes.map(() => emptyQueue());
  }

  get active(): boolean {
    return this.live !== undefined;
  }

  read(offset: number, size: number): number {
    if (offset >= Reg.CONFIG) return this.device.readConfig(offset - Reg.CONFIG, size);
    if (size !== 4 || offset % 4 !== 0) return 0; // the spec allows only aligned 32-bit register access
    const q = this.queues[this.queueSel];
    switch (offset) {
      case Reg.MAGIC: return VIRTIO_MMIO_MAGIC;
      case Reg.VERSION: return 2;
      case Reg.DEVICE_ID: return this.device.deviceId;
      case Reg.VENDOR_ID: return VENDOR_ID;
      case Reg.DEVICE_FEATURES:
        return this.deviceFeaturesSel > 1 ? 0 : Number((this.device.features >> BigInt(32 * this.deviceFeaturesSel)) & 0xffff_ffffn);
      case Reg.QUEUE_NUM_MAX: return q ? this.device.queueSizes[this.queueSel]! : 0;
      case Reg.QUEUE_READY: return q?.ready ? 1 : 0;
      case Reg.INTERRUPT_STATUS: return this.interruptStatus;
      case Reg.STATUS: return this.status;
      case Reg.SHM_LEN_LOW: case Reg.SHM_LEN_HIGH: return 0xffff_ffff; // no shared memory regions
      case Reg.CONFIG_GENERATION: return 0;
      default: return 0;
    }
  }

  write(offset: number, size: number, value: number): void {
    if (offset >= Reg.CONFIG) return this.device.writeConfig(offset - Reg.CONFIG, size, value);
    if (size !== 4 || offset % 4 !== 0) return;
    value >>>= 0;
    const q = this.queues[this.queueSel];
    switch (offset) {
      case Reg.DEVICE_FEATURES_SEL: this.deviceFeaturesSel = value; return;
      case Reg.DRIVER_FEATURES_SEL: this.driverFeaturesSel = value; return;
      case Reg.DRIVER_FEATURES:
        if (this.driverFeaturesSel < 2 && !(this.status & Status.FEATURES_OK)) {
          const shift = BigInt(32 * this.driverFeaturesSel);
          this.driverFeatures = (this.driverFeatures & ~(0xffff_ffffn << shift)) | (BigInt(value) << shift);
        }
        return;
      case Reg.QUEUE_SEL: this.queueSel = value; return;
      case Reg.QUEUE_NUM: if (q && !q.ready) q.num = value; return;
      case Reg.QUEUE_READY: if (q) q.ready = value === 1; return;
      case Reg.QUEUE_NOTIFY: this.notify(value); return;
      case Reg.INTERRUPT_ACK: this.interruptStatus &= ~value; return;
      case Reg.STATUS: this.setStatus(value); return;
      case Reg.QUEUE_DESC_LOW: if (q && !q.ready) q.desc = setLow(q.desc, value); return;
      case Reg.QUEUE_DESC_HIGH: if (q && !q.ready) q.desc = setHigh(q.desc, value); return;
      case Reg.QUEUE_DRIVER_LOW: if (q && !q.ready) q.driver = setLow(q.driver, value); return;
      case Reg.QUEUE_DRIVER_HIGH: if (q && !q.ready) q.driver = setHigh(q.driver, value); return;
      case Reg.QUEUE_DEVICE_LOW: if (q && !q.ready) q.device = setLow(q.device, value); return;
      case Reg.QUEUE_DEVICE_HIGH: if (q && !q.ready) q.device = setHigh(q.device, value); return;
      default: return;
    }
  }

  /** A queue notification (from QueueNotify or an ioeventfd). */
  notify(index: number): void {
    if (!this.live || this.status & Status.DEVICE_NEEDS_RESET) return;
    if (index >= this.live.length) return;
    this.guard(`queue ${index}`, () => this.device.notify(index));
  }

  signalUsed(): void {
    this.interruptStatus |= INT_USED_BUFFER;
    this.raiseIrq();
  }

  fail(reason: string): void {
    if (this.status & Status.DEVICE_NEEDS_RESET) return;
    this.log(`device error, needs reset: ${reason}`);
    this.status |= Status.DEVICE_NEEDS_RESET;
    this.interruptStatus |= INT_CONFIG;
    this.raiseIrq();
  }

  /** Reset to power-on state (driver wrote 0 to Status, or the VMM reset the machine). */
  reset(): void {
    this.status = 0;
    this.interruptStatus = 0;
    this.deviceFeaturesSel = this.driverFeaturesSel = this.queueSel = 0;
    this.driverFeatures = 0n;
    this.queues = this.device.queueSizes.map(() => emptyQueue());
    if (this.live) this.device.reset();
    this.live = undefined;
  }

  private setStatus(value: number): void {
    if (value === 0) return this.reset();
    const added = value & ~this.status;
    if (added & Status.FEATURES_OK) {
      // Accept only features we offered; otherwise leave FEATURES_OK clear so the driver sees the refusal.
      if ((this.driverFeatures & ~this.device.features) !== 0n || !(this.driverFeatures & VIRTIO_F_VERSION_1)) {
        this.status = value & ~Status.FEATURES_OK;
        return;
      }
    }
    this.status = value | (this.status & Status.DEVICE_NEEDS_RESET);
    if (added & Status.DRIVER_OK && !this.live) this.activate();
  }

  private activate(): void {
    try {
      this.live = this.queues.map((q, i) => {
        if (!q.ready) throw new QueueError(`queue ${i} is not ready at DRIVER_OK`);
        return new SplitQueue(this.mem, { size: q.num, descAddr: q.desc, availAddr: q.driver, usedAddr: q.device }, this.device.queueSizes[i]!);
      });
    } catch (e) {
      if (!(e instanceof QueueError)) throw e;
      this.fail(e.message);
      return;
    }
    this.guard('activation', () => this.device.activate(this.live!, this.driverFeatures, this));
  }

  /** Run device code that walks queues: a QueueError becomes DEVICE_NEEDS_RESET, not a crash. */
  guard(what: string, f: () => void): void {
    try {
      f();
    } catch (e) {
      if (e instanceof QueueError) this.fail(`${what}: ${e.message}`);
      else throw e;
    }
  }
}

function emptyQueue(): QueueRegs {
  return { num: 0, ready: false, desc: 0, driver: 0, device: 0 };
}

function setLow(v: number, low: number): number {
  return Math.floor(v / 2 ** 32) * 2 ** 32 + low;
}

function setHigh(v: number, high: number): number {
  // Addresses beyond 2^53 cannot be guest RAM; clamp so the range check refuses them.
  return (high >= 0x20_0000 ? 0x1f_ffff : high) * 2 ** 32 + (v % 2 ** 32);
}
