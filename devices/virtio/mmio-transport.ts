// The virtio-mmio transport, version 2 (virtio 1.x §4.2.2; register map in
// ../shared/reference/linux-boot-and-virtio-mmio.md). It owns the register file, feature
// negotiation, device status and queue configuration, and hands the device model validated
// SplitQueues once the driver sets DRIVER_OK. A device error (a bad ring, a malicious
// descriptor) sets DEVICE_NEEDS_RESET and raises a configuration interrupt; the device keeps
// serving after the driver resets it. All of this state lives in a TransportState, which can be
// the slot's state memory: then a process that replaces a dead one takes the device over
// (resume()) instead of starting from power-on.
import type { DmaMemory } from '../plugin-sdk/guest-ram.ts';
import { QueueError, SplitQueue, type Chain } from './queue.ts';
import { TransportState } from './transport-state.ts';

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
  /**
   * This process took the device over from one that died (after activate()). `orphans[q]` are
   * the chains the dead process had taken from queue q and never returned; the device must
   * return each (push). Without this method they are returned with nothing written. Entries
   * the dead process never took are still available; the transport notifies every queue next.
   */
  resume?(orphans: readonly Chain[][]): void;
}

export interface DeviceContext {
  readonly mem: DmaMemory;
  /** Buffers were returned: set the used-buffer interrupt bit and raise the line. */
  signalUsed(): void;
  /** Something is wrong with what the driver gave us: DEVICE_NEEDS_RESET, logged. */
  fail(reason: string): void;
}

export class VirtioMmioTransport implements DeviceContext {
  private readonly s: TransportState;
  private live: SplitQueue[] | undefined;

  /**
   * `state`: memory that outlives this process (Plugin.persistentState); what an earlier process
   * left there for this device is picked up by resume(). Default: private memory.
   */
  constructor(
    private readonly device: VirtioDevice,
    readonly mem: DmaMemory,
    private readonly raiseIrq: () => void,
    private readonly log: (message: string) => void,
    state?: Uint8Array,
  ) {
    if (!(device.features & VIRTIO_F_VERSION_1)) throw new Error('virtio-mmio v2 devices must offer VIRTIO_F_VERSION_1');
    const need = TransportState.bytesNeeded(device.queueSizes);
    if (state && state.byteLength < need) {
      log(`the slot's state memory (${state.byteLength} bytes) is smaller than the ${need} this device needs: a restarted process will start from power-on`);
      state = undefined;
    }
    this.s = new TransportState(state ?? new Uint8Array(need), device.deviceId, device.queueSizes);
  }

  get active(): boolean {
    return this.live !== undefined;
  }

  read(offset: number, size: number): number {
    if (offset >= Reg.CONFIG) return this.device.readConfig(offset - Reg.CONFIG, size);
    if (size !== 4 || offset % 4 !== 0) return 0; // the spec allows only aligned 32-bit register access
    const s = this.s;
    const q = s.queueSel < this.device.queueSizes.length ? s.queue(s.queueSel) : undefined;
    switch (offset) {
      case Reg.MAGIC: return VIRTIO_MMIO_MAGIC;
      case Reg.VERSION: return 2;
      case Reg.DEVICE_ID: return this.device.deviceId;
      case Reg.VENDOR_ID: return VENDOR_ID;
      case Reg.DEVICE_FEATURES:
        return s.deviceFeaturesSel > 1 ? 0 : Number((this.device.features >> BigInt(32 * s.deviceFeaturesSel)) & 0xffff_ffffn);
      case Reg.QUEUE_NUM_MAX: return q ? this.device.queueSizes[s.queueSel]! : 0;
      case Reg.QUEUE_READY: return q?.ready ? 1 : 0;
      case Reg.INTERRUPT_STATUS: return s.interruptStatus;
      case Reg.STATUS: return s.status;
      case Reg.SHM_LEN_LOW: case Reg.SHM_LEN_HIGH: return 0xffff_ffff; // no shared memory regions
      case Reg.CONFIG_GENERATION: return 0;
      default: return 0;
    }
  }

  write(offset: number, size: number, value: number): void {
    if (offset >= Reg.CONFIG) return this.device.writeConfig(offset - Reg.CONFIG, size, value);
    if (size !== 4 || offset % 4 !== 0) return;
    value >>>= 0;
    const s = this.s;
    const q = s.queueSel < this.device.queueSizes.length ? s.queue(s.queueSel) : undefined;
    switch (offset) {
      case Reg.DEVICE_FEATURES_SEL: s.deviceFeaturesSel = value; return;
      case Reg.DRIVER_FEATURES_SEL: s.driverFeaturesSel = value; return;
      case Reg.DRIVER_FEATURES:
        if (s.driverFeaturesSel < 2 && !(s.status & Status.FEATURES_OK)) {
          const shift = BigInt(32 * s.driverFeaturesSel);
          s.driverFeatures = (s.driverFeatures & ~(0xffff_ffffn << shift)) | (BigInt(value) << shift);
        }
        return;
      case Reg.QUEUE_SEL: s.queueSel = value; return;
      case Reg.QUEUE_NUM: if (q && !q.ready) q.num = value; return;
      case Reg.QUEUE_READY: if (q) q.ready = value === 1; return;
      case Reg.QUEUE_NOTIFY: this.notify(value); return;
      case Reg.INTERRUPT_ACK: s.interruptStatus &= ~value; return;
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
    if (!this.live || this.s.status & Status.DEVICE_NEEDS_RESET) return;
    if (index >= this.live.length) return;
    this.guard(`queue ${index}`, () => this.device.notify(index));
  }

  signalUsed(): void {
    this.s.interruptStatus |= INT_USED_BUFFER;
    this.raiseIrq();
  }

  fail(reason: string): void {
    if (this.s.status & Status.DEVICE_NEEDS_RESET) return;
    this.log(`device error, needs reset: ${reason}`);
    this.s.status |= Status.DEVICE_NEEDS_RESET;
    this.s.interruptStatus |= INT_CONFIG;
    this.raiseIrq();
  }

  /** Reset to power-on state (driver wrote 0 to Status, or the VMM reset the machine). */
  reset(): void {
    this.s.format();
    if (this.live) this.device.reset();
    this.live = undefined;
  }

  /**
   * Take the device over from an earlier process whose state this one inherited: if the driver
   * had it running, the queues go live where that process left them, the chains it held are
   * given to the device's resume() (or returned empty), and every queue is looked at again,
   * since doorbells rung while no process was attached were lost. False when there was nothing
   * to take over (a new VM, a device the driver had not started, or one that needs a reset).
   */
  resume(): boolean {
    const s = this.s;
    if (!s.inherited || this.live || !(s.status & Status.DRIVER_OK) || s.status & (Status.DEVICE_NEEDS_RESET | Status.FAILED)) return false;
    let orphans: Chain[][] = [];
    try {
      const queues = this.makeQueues();
      orphans = queues.map((q) => q.resume());
      this.live = queues;
    } catch (e) {
      if (!(e instanceof QueueError)) throw e;
      this.fail(`taking over from the previous process: ${e.message}`);
      return false;
    }
    this.guard('take-over', () => {
      this.device.activate(this.live!, s.driverFeatures, this);
      if (this.device.resume) this.device.resume(orphans);
      else if (orphans.some((o) => o.length)) {
        orphans.forEach((chains, i) => chains.forEach((c) => this.live![i]!.push(c.head, 0)));
        this.signalUsed();
      }
    });
    this.live.forEach((_, i) => this.notify(i));
    return true;
  }

  private setStatus(value: number): void {
    const s = this.s;
    if (value === 0) return this.reset();
    const added = value & ~s.status;
    if (added & Status.FEATURES_OK) {
      // Accept only features we offered; otherwise leave FEATURES_OK clear so the driver sees the refusal.
      if ((s.driverFeatures & ~this.device.features) !== 0n || !(s.driverFeatures & VIRTIO_F_VERSION_1)) {
        s.status = value & ~Status.FEATURES_OK;
        return;
      }
    }
    s.status = value | (s.status & Status.DEVICE_NEEDS_RESET);
    if (added & Status.DRIVER_OK && !this.live) this.activate();
  }

  private activate(): void {
    try {
      const queues = this.makeQueues();
      queues.forEach((q) => q.start());
      this.live = queues;
    } catch (e) {
      if (!(e instanceof QueueError)) throw e;
      this.fail(e.message);
      return;
    }
    this.guard('activation', () => this.device.activate(this.live!, this.s.driverFeatures, this));
  }

  private makeQueues(): SplitQueue[] {
    return this.device.queueSizes.map((max, i) => {
      const q = this.s.queue(i);
      if (!q.ready) throw new QueueError(`queue ${i} is not ready at DRIVER_OK`);
      return new SplitQueue(this.mem, { size: q.num, descAddr: q.desc, availAddr: q.driver, usedAddr: q.device }, max, this.s.progress(i));
    });
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

function setLow(v: number, low: number): number {
  return Math.floor(v / 2 ** 32) * 2 ** 32 + low;
}

function setHigh(v: number, high: number): number {
  // Addresses beyond 2^53 cannot be guest RAM; clamp so the range check refuses them.
  return (high >= 0x20_0000 ? 0x1f_ffff : high) * 2 ** 32 + (v % 2 ** 32);
}
