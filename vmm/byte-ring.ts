// A single-producer single-consumer byte ring in a SharedArrayBuffer, for console bytes between
// the vCPU worker and the main thread. The producer never blocks: when the consumer falls
// behind, new bytes are dropped and counted, so a stalled terminal can never stall a vCPU.
//
// Header (Int32 words): HEAD is the producer's write count, TAIL the consumer's read count
// (both wrap as uint32; capacity is a power of two), DROPPED counts bytes lost to a full ring,
// SIGNAL is bumped on every push so the consumer can Atomics.wait / waitAsync on it.

const HEAD = 0;
const TAIL = 1;
const DROPPED = 2;
const SIGNAL = 3;
const HEADER_BYTES = 16;

export class ByteRing {
  readonly buffer: SharedArrayBuffer;
  private readonly header: Int32Array;
  private readonly data: Uint8Array;
  private readonly mask: number;

  /** Create a ring of `capacity` bytes (a power of two), or attach to an existing buffer. */
  constructor(bufferOrCapacity: SharedArrayBuffer | number) {
    if (typeof bufferOrCapacity === 'number') {
      const capacity = bufferOrCapacity;
      if (capacity < 16 || (capacity & (capacity - 1)) !== 0) throw new RangeError(`ring capacity ${capacity} is not a power of two >= 16`);
      this.buffer = new SharedArrayBuffer(HEADER_BYTES + capacity);
    } else {
      this.buffer = bufferOrCapacity;
    }
    this.header = new Int32Array(this.buffer, 0, HEADER_BYTES / 4);
    this.data = new Uint8Array(this.buffer, HEADER_BYTES);
    this.mask = this.data.length - 1;
  }

  /** Producer side. Returns how many bytes were stored (the rest were dropped). */
  push(bytes: Uint8Array): number {
    const head = Atomics.load(this.header, HEAD) >>> 0;
    const tail = Atomics.load(this.header, TAIL) >>> 0;
    const free = this.data.length - ((head - tail) >>> 0);
    const n = Math.min(free, bytes.length);
    for (let i = 0; i < n; i++) this.data[(head + i) & this.mask] = bytes[i]!;
    Atomics.store(this.header, HEAD, (head + n) | 0);
    if (n < bytes.length) Atomics.add(this.header, DROPPED, bytes.length - n);
    Atomics.add(this.header, SIGNAL, 1);
    Atomics.notify(this.header, SIGNAL);
    return n;
  }

  /** Producer side, one byte: the UART's hot path. */
  pushByte(byte: number): void {
    const head = Atomics.load(this.header, HEAD) >>> 0;
    const tail = Atomics.load(this.header, TAIL) >>> 0;
    if (((head - tail) >>> 0) >= this.data.length) {
      Atomics.add(this.header, DROPPED, 1);
      return;
    }
    this.data[head & this.mask] = byte;
    Atomics.store(this.header, HEAD, (head + 1) | 0);
    Atomics.add(this.header, SIGNAL, 1);
    Atomics.notify(this.header, SIGNAL);
  }

  /** Consumer side: everything buffered, or undefined when empty. */
  drain(): Uint8Array | undefined {
    const head = Atomics.load(this.header, HEAD) >>> 0;
    const tail = Atomics.load(this.header, TAIL) >>> 0;
    const n = (head - tail) >>> 0;
    if (n === 0) return undefined;
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.data[(tail + i) & this.mask]!;
    Atomics.store(this.header, TAIL, head | 0);
    // A producer that chooses to wait for room (tests, bulk transfers) waits on TAIL.
    Atomics.notify(this.header, TAIL);
    return out;
  }

  isEmpty(): boolean {
    return Atomics.load(this.header, HEAD) === Atomics.load(this.header, TAIL);
  }

  /** Bytes dropped so far because the consumer fell behind. */
  get dropped(): number {
    return Atomics.load(this.header, DROPPED);
  }

  /** Resolves when something was pushed after `seen` (a value from `signal`). */
  async waitForData(seen: number): Promise<void> {
    const r = Atomics.waitAsync(this.header, SIGNAL, seen);
    if (r.async) await r.value;
  }

  /** Wake a consumer waiting in waitForData without adding data (to let it see a shutdown). */
  wake(): void {
    Atomics.add(this.header, SIGNAL, 1);
    Atomics.notify(this.header, SIGNAL);
  }

  get signal(): number {
    return Atomics.load(this.header, SIGNAL);
  }
}
