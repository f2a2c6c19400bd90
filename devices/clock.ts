// Guest time for the platform chips (PIT, RTC) of the interpreter backend. Devices read time
// only through GuestClock, so the same models run on real time or, for reproducible runs, on
// time derived from the number of instructions the CPU has executed.
//
// Nanoseconds as a plain number: exact to 2^53 ns (104 days of guest uptime), and cheap to read
// on every port access, which a bigint is not.

export interface GuestClock {
  /** Guest time in nanoseconds since the machine was created; never goes backwards. */
  nowNs(): number;
}

/** Follows the host's monotonic clock. */
export class RealTimeClock implements GuestClock {
  private readonly originMs = performance.now();

  nowNs(): number {
    return Math.floor((performance.now() - this.originMs) * 1e6);
  }
}

/**
 * `--deterministic`: time advances by a fixed amount per executed instruction, so two runs of
 * the same guest see the same time at the same instruction. While the CPU is halted nothing
 * executes, so the run loop moves time forward explicitly with skipTo (to the next timer
 * deadline), exactly as real time would have passed.
 */
export class InstructionClock implements GuestClock {
  private idleNs = 0;

  /**
   * @param instructions the CPU's executed-instruction counter
   * @param nsPerInstruction guest time per instruction, e.g. 10 for a 100 MIPS guest
   */
  constructor(
    private readonly instructions: () => number,
    private readonly nsPerInstruction: number,
  ) {
    if (!(nsPerInstruction > 0)) throw new RangeError(`nsPerInstruction must be > 0, got ${nsPerInstruction}`);
  }

  nowNs(): number {
    return this.instructions() * this.nsPerInstruction + this.idleNs;
  }

  /** Advance time to `ns` if it lies in the future (a halted CPU waiting for a timer). */
  skipTo(ns: number): void {
    const now = this.nowNs();
    if (ns > now) this.idleNs += ns - now;
  }
}

/** Time that moves only when told to: for tests and for callers that own their own time base. */
export class ManualClock implements GuestClock {
  constructor(private ns = 0) {}

  nowNs(): number {
    return this.ns;
  }

  advance(ns: number): void {
    if (ns < 0) throw new RangeError(`a clock cannot go backwards (advance by ${ns} ns)`);
    this.ns += ns;
  }

  set(ns: number): void {
    if (ns < this.ns) throw new RangeError(`a clock cannot go backwards (${this.ns} -> ${ns} ns)`);
    this.ns = ns;
  }
}
