// The last N bytes of one console's output, for viewers that connect late or reconnect: they
// replay it so their screen is complete. Positions are absolute byte counts since the console
// started (`total`), so the server can tell which bytes each viewer already has without
// keeping a second copy of anything still in flight.

export const DEFAULT_SCROLLBACK_BYTES = 1 << 20;

export class Scrollback {
  private readonly data: Uint8Array;
  /** Bytes ever written; the ring holds the last min(total, capacity) of them. */
  private written = 0;

  constructor(readonly capacity: number = DEFAULT_SCROLLBACK_BYTES) {
    if (!Number.isInteger(capacity) || capacity <= 0) throw new RangeError(`scrollback capacity must be a positive integer, got ${capacity}`);
    this.data = new Uint8Array(capacity);
  }

  get total(): number {
    return this.written;
  }

  /** Absolute position of the oldest byte still held. */
  get start(): number {
    return Math.max(0, this.written - this.capacity);
  }

  write(bytes: Uint8Array): void {
    const cap = this.capacity;
    // Only the tail can survive a write longer than the ring.
    const src = bytes.length > cap ? bytes.subarray(bytes.length - cap) : bytes;
    const skipped = bytes.length - src.length;
    const at = (this.written + skipped) % cap;
    const first = Math.min(src.length, cap - at);
    this.data.set(src.subarray(0, first), at);
    if (first < src.length) this.data.set(src.subarray(first), 0);
    this.written += bytes.length;
  }

  /**
   * A fresh copy of the bytes at absolute positions [from, to). Throws when part of that range
   * has already been overwritten: callers must not ask for bytes they let fall out of the ring.
   */
  slice(from: number = this.start, to: number = this.written): Buffer {
    if (from < this.start || to > this.written || from > to) {
      throw new RangeError(`scrollback range [${from}, ${to}) is outside the held range [${this.start}, ${this.written})`);
    }
    const out = Buffer.allocUnsafe(to - from);
    const cap = this.capacity;
    const at = from % cap;
    const first = Math.min(out.length, cap - at);
    out.set(this.data.subarray(at, at + first), 0);
    if (first < out.length) out.set(this.data.subarray(0, out.length - first), first);
    return out;
  }
}
