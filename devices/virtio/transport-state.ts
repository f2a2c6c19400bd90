// What a virtio-mmio device has to remember across plugin processes (docs/plugins.md §6): the
// registers the driver programmed and, per queue, how far the device got and which chains it is
// holding. It lives in the slot's state memory (Plugin.persistentState), so a process that
// replaces a dead one finds the queues where they were, the way vhost-user back-ends keep their
// in-flight descriptors in a shared "inflight" buffer. Without that memory it lives in a private
// buffer and the transport runs the same code.
//
// Writes happen in an order that a SIGKILL between any two of them leaves recoverable (see
// SplitQueue.pop/push/resume). The layout is private to this file: memory that does not carry
// this device's magic, id and queue sizes is formatted afresh.

const MAGIC = 0x3176_7374; // "tsv1"
const HEADER = 64;
const H = { magic: 0, deviceId: 4, queueCount: 8, status: 12, interruptStatus: 16, featuresLow: 20, featuresHigh: 24,
  queueSel: 28, deviceFeaturesSel: 32, driverFeaturesSel: 36 } as const;
// Per queue: its registers, its progress, then one bit per descriptor head the device holds.
const Q = { maxSize: 0, num: 4, ready: 8, desc: 16, driver: 24, device: 32, lastAvail: 40, usedIdx: 44, held: 48 } as const;

const queueBytes = (maxSize: number) => Q.held + Math.ceil(maxSize / 64) * 8;

/** The registers the driver writes for one queue (virtio-mmio QueueNum, QueueReady, QueueDesc...). */
export class QueueRegisters {
  constructor(private readonly v: DataView, private readonly o: number) {}
  get num(): number { return this.v.getUint32(this.o + Q.num, true); }
  set num(n: number) { this.v.setUint32(this.o + Q.num, n, true); }
  get ready(): boolean { return this.v.getUint32(this.o + Q.ready, true) === 1; }
  set ready(r: boolean) { this.v.setUint32(this.o + Q.ready, r ? 1 : 0, true); }
  get desc(): number { return this.v.getFloat64(this.o + Q.desc, true); }
  set desc(a: number) { this.v.setFloat64(this.o + Q.desc, a, true); }
  get driver(): number { return this.v.getFloat64(this.o + Q.driver, true); }
  set driver(a: number) { this.v.setFloat64(this.o + Q.driver, a, true); }
  get device(): number { return this.v.getFloat64(this.o + Q.device, true); }
  set device(a: number) { this.v.setFloat64(this.o + Q.device, a, true); }
}

/**
 * How far the device got in one split virtqueue: the next available-ring entry to take, the
 * next used-ring entry to fill, and the descriptor heads taken but not yet returned.
 */
export class QueueProgress {
  constructor(private readonly v: DataView, private readonly o: number, readonly maxSize: number) {}
  get lastAvail(): number { return this.v.getUint16(this.o + Q.lastAvail, true); }
  set lastAvail(i: number) { this.v.setUint16(this.o + Q.lastAvail, i, true); }
  get usedIdx(): number { return this.v.getUint16(this.o + Q.usedIdx, true); }
  set usedIdx(i: number) { this.v.setUint16(this.o + Q.usedIdx, i, true); }

  holds(head: number): boolean {
    return (this.v.getUint8(this.o + Q.held + (head >> 3)) & (1 << (head & 7))) !== 0;
  }

  hold(head: number): void {
    const at = this.o + Q.held + (head >> 3);
    this.v.setUint8(at, this.v.getUint8(at) | (1 << (head & 7)));
  }

  release(head: number): void {
    const at = this.o + Q.held + (head >> 3);
    this.v.setUint8(at, this.v.getUint8(at) & ~(1 << (head & 7)));
  }

  /** Heads held, in index order. */
  held(): number[] {
    const out: number[] = [];
    for (let byte = 0; byte * 8 < this.maxSize; byte++) {
      const bits = this.v.getUint8(this.o + Q.held + byte);
      if (bits) for (let b = 0; b < 8; b++) if (bits & (1 << b)) out.push(byte * 8 + b);
    }
    return out;
  }

  /** Start over at used index `idx` holding nothing (the driver just enabled the queue). */
  start(idx: number): void {
    new Uint8Array(this.v.buffer, this.v.byteOffset + this.o + Q.held, queueBytes(this.maxSize) - Q.held).fill(0);
    this.usedIdx = idx;
    this.lastAvail = idx;
  }
}

export class TransportState {
  private readonly v: DataView;
  /** The memory already held this device's state, left by an earlier process. */
  readonly inherited: boolean;

  /** Bytes of state memory a device with these queue sizes needs. */
  static bytesNeeded(queueSizes: readonly number[]): number {
    return HEADER + queueSizes.reduce((n, s) => n + queueBytes(s), 0);
  }

  constructor(bytes: Uint8Array, private readonly deviceId: number, private readonly queueSizes: readonly number[]) {
    const need = TransportState.bytesNeeded(queueSizes);
    if (bytes.byteLength < need) throw new Error(`virtio transport state needs ${need} bytes, got ${bytes.byteLength}`);
    this.v = new DataView(bytes.buffer, bytes.byteOffset, need);
    this.inherited = this.matches();
    if (!this.inherited) this.format();
  }

  get status(): number { return this.v.getUint32(H.status, true); }
  set status(s: number) { this.v.setUint32(H.status, s, true); }
  get interruptStatus(): number { return this.v.getUint32(H.interruptStatus, true); }
  set interruptStatus(s: number) { this.v.setUint32(H.interruptStatus, s, true); }
  get queueSel(): number { return this.v.getUint32(H.queueSel, true); }
  set queueSel(s: number) { this.v.setUint32(H.queueSel, s, true); }
  get deviceFeaturesSel(): number { return this.v.getUint32(H.deviceFeaturesSel, true); }
  set deviceFeaturesSel(s: number) { this.v.setUint32(H.deviceFeaturesSel, s, true); }
  get driverFeaturesSel(): number { return this.v.getUint32(H.driverFeaturesSel, true); }
  set driverFeaturesSel(s: number) { this.v.setUint32(H.driverFeaturesSel, s, true); }

  get driverFeatures(): bigint {
    return BigInt(this.v.getUint32(H.featuresLow, true)) | (BigInt(this.v.getUint32(H.featuresHigh, true)) << 32n);
  }

  set driverFeatures(f: bigint) {
    this.v.setUint32(H.featuresLow, Number(f & 0xffff_ffffn), true);
    this.v.setUint32(H.featuresHigh, Number((f >> 32n) & 0xffff_ffffn), true);
  }

  queue(i: number): QueueRegisters {
    return new QueueRegisters(this.v, this.queueOffset(i));
  }

  progress(i: number): QueueProgress {
    return new QueueProgress(this.v, this.queueOffset(i), this.queueSizes[i]!);
  }

  /** Power-on state: every register and queue zero. */
  format(): void {
    this.v.setUint32(H.magic, 0, true); // a process killed mid-format leaves memory that does not match
    new Uint8Array(this.v.buffer, this.v.byteOffset, this.v.byteLength).fill(0);
    this.v.setUint32(H.deviceId, this.deviceId, true);
    this.v.setUint32(H.queueCount, this.queueSizes.length, true);
    this.queueSizes.forEach((s, i) => this.v.setUint32(this.queueOffset(i) + Q.maxSize, s, true));
    this.v.setUint32(H.magic, MAGIC, true);
  }

  private matches(): boolean {
    return this.v.getUint32(H.magic, true) === MAGIC && this.v.getUint32(H.deviceId, true) === this.deviceId &&
      this.v.getUint32(H.queueCount, true) === this.queueSizes.length &&
      this.queueSizes.every((s, i) => this.v.getUint32(this.queueOffset(i) + Q.maxSize, true) === s);
  }

  private queueOffset(i: number): number {
    let o = HEADER;
    for (let q = 0; q < i; q++) o += queueBytes(this.queueSizes[q]!);
    return o;
  }
}
