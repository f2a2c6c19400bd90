// Plugin interrupts on the interpreter, which has no irqfd: the main thread's wiring (wiring.ts)
// watches each plugin's irqfd and, when it is written, posts "pulse GSI n" here and kicks the
// vCPU; the vCPU, which owns the interrupt controller, takes every pending pulse when the kick
// arrives. One SharedArrayBuffer word carries them (a bit per GSI 0-31). Pulses of one line
// coalesce, like eventfd writes do, which is why devices keep their interrupt status in registers.
export class IrqMailbox {
  readonly buffer: SharedArrayBuffer;
  private readonly word: Int32Array;

  /** Pass `buffer` (from the other side's mailbox) to share it; omit to create one. */
  constructor(buffer?: SharedArrayBuffer) {
    this.buffer = buffer ?? new SharedArrayBuffer(4);
    this.word = new Int32Array(this.buffer);
  }

  /** Main thread: request a pulse of `gsi` (then kick the vCPU so it takes it soon). */
  post(gsi: number): void {
    if (!Number.isInteger(gsi) || gsi < 0 || gsi > 31) throw new RangeError(`IrqMailbox: GSI ${gsi} is outside 0-31`);
    Atomics.or(this.word, 0, 1 << gsi);
  }

  /** Worker: pulse every pending line (level high then low). Returns whether any was pending. */
  take(setIrqLine: (gsi: number, level: boolean) => void): boolean {
    let bits = Atomics.exchange(this.word, 0, 0);
    if (bits === 0) return false;
    for (let gsi = 0; bits !== 0; gsi++, bits >>>= 1) {
      if (bits & 1) {
        setIrqLine(gsi, true);
        setIrqLine(gsi, false);
      }
    }
    return true;
  }
}
