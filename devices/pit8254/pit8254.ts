// The Intel 8254 programmable interval timer at ports 0x40-0x43, plus the PC/AT's port 0x61
// (channel 2 gate, speaker enable, channel 2 output, refresh toggle), for the interpreter
// backend (KVM has its own in the kernel).
//
// Counters are not ticked: each channel remembers when it started counting and its state is
// computed from the guest clock when it is looked at (1.193182 MHz input clock). Channel 0's
// OUT drives IRQ 0; the run loop calls update() when nextDeadlineNs() has passed, and a halted
// CPU can sleep until then. Linux uses channel 0 in mode 2 (periodic tick) or mode 4 (one-shot
// clockevent) and as a latched clocksource, and channel 2 in mode 0, gated through port 0x61,
// to calibrate the TSC (pit_calibrate_tsc polls OUT2; quick_pit_calibrate reads the count).
//
// Simplification, as in QEMU and KVM: a new count written while a mode 2 or 3 counter runs
// takes effect at once rather than at the end of the current period.

import type { IrqLine, PioDevice } from '../device.ts';
import type { GuestClock } from '../clock.ts';

export const PIT_HZ = 1_193_182;
const NS_PER_S = 1e9;

/** Whole input-clock ticks in `ns` nanoseconds, exact for any duration a guest can see. */
export function ticksIn(ns: number): number {
  // Split off whole seconds so every product stays below 2^53 and the floor is exact.
  const s = Math.floor(ns / NS_PER_S);
  return s * PIT_HZ + Math.floor(((ns - s * NS_PER_S) * PIT_HZ) / NS_PER_S);
}

/** The shortest whole number of nanoseconds holding at least `ticks` ticks. */
export function nsForTicks(ticks: number): number {
  const s = Math.floor(ticks / PIT_HZ);
  let ns = s * NS_PER_S + Math.ceil(((ticks - s * PIT_HZ) * NS_PER_S) / PIT_HZ);
  while (ticksIn(ns) < ticks) ns++; // guard against a division that rounded down
  return ns;
}

// Read/write states (the control word's access field, 1 = LSB only, then the word's two steps).
const RW_MSB = 2;
const RW_WORD0 = 3; // LSB of a word next
const RW_WORD1 = 4; // MSB of a word next

class Channel {
  mode = 3;
  bcd = false;
  rwMode = RW_WORD0;
  readState = RW_WORD0;
  writeState = RW_WORD0;
  writeLatch = 0;
  latchedCount = 0;
  /** 0, or the read state the latched count is read with. */
  countLatched = 0;
  status = 0;
  statusLatched = false;
  /** The count N (1-65536, or 1-10000 in BCD). */
  count = 0x10000;
  /** A count has been loaded since the last control word. */
  armed = false;
  /** Modes 1 and 5 wait for a gate rising edge. */
  triggered = false;
  gate: boolean;
  /** Counting now: `baseTicks` elapsed before `startNs`, plus the ticks since. */
  counting = false;
  baseTicks = 0;
  startNs = 0;
  /** Rising edges of OUT already delivered since counting began (channel 0's IRQ). */
  edgesSeen = 0;

  constructor(gate: boolean) {
    this.gate = gate;
  }

  elapsed(now: number): number {
    return this.counting ? this.baseTicks + ticksIn(now - this.startNs) : this.baseTicks;
  }

  private started(): boolean {
    return this.armed && (this.triggered || (this.mode !== 1 && this.mode !== 5));
  }

  out(now: number): boolean {
    const mode = this.mode;
    if (!this.started()) return mode !== 0; // the state a control word sets
    if ((mode === 2 || mode === 3) && !this.gate) return true; // gate low forces OUT high
    const n = this.count;
    const d = this.elapsed(now);
    switch (mode) {
      case 0: // interrupt on terminal count: low, high at 0
      case 1: // one-shot: low after the trigger, high at 0
        return d >= n;
      case 2: // rate generator: low for the one clock at count 1
        return n < 2 || d % n !== n - 1;
      case 3: // square wave: high for the first half (the larger half when N is odd)
        return d % n < Math.ceil(n / 2);
      default: // 4, 5: strobe: low for the one clock at count 0
        return d !== n;
    }
  }

  /** The counting element as the guest reads it. */
  value(now: number): number {
    if (!this.started()) return this.encode(this.count);
    const n = this.count;
    const d = this.elapsed(now);
    const modulus = this.bcd ? 10000 : 0x10000;
    let v: number;
    if (this.mode === 2) v = n - (d % n);
    else if (this.mode === 3) v = n - ((2 * d) % n);
    else v = (((n - d) % modulus) + modulus) % modulus; // counts on past 0, wrapping
    return this.encode(v % modulus);
  }

  private encode(v: number): number {
    v %= this.bcd ? 10000 : 0x10000;
    if (!this.bcd) return v;
    return ((v / 1000) | 0) * 0x1000 + (((v / 100) | 0) % 10) * 0x100 + (((v / 10) | 0) % 10) * 0x10 + (v % 10);
  }

  /** Rising edges of OUT after `d` ticks of counting: when channel 0 interrupts. */
  edgesUpTo(d: number): number {
    const n = this.count;
    switch (this.mode) {
      case 2:
      case 3:
        return Math.floor(d / n);
      case 0:
      case 1:
        return d >= n ? 1 : 0;
      default:
        return d >= n + 1 ? 1 : 0; // the strobe's low clock ends one tick after 0
    }
  }

  /** Elapsed ticks at which the next rising edge comes, or Infinity if none will. */
  nextEdgeTicks(): number {
    if (!this.started() || !this.counting) return Infinity;
    switch (this.mode) {
      case 2:
      case 3:
        return (this.edgesSeen + 1) * this.count;
      case 0:
      case 1:
        return this.edgesSeen === 0 ? this.count : Infinity;
      default:
        return this.edgesSeen === 0 ? this.count + 1 : Infinity;
    }
  }

  restart(now: number): void {
    this.baseTicks = 0;
    this.startNs = now;
    this.edgesSeen = 0;
    this.counting = this.gate || this.mode === 1 || this.mode === 5;
  }

  control(now: number, value: number): void {
    const access = (value >> 4) & 3;
    if (access === 0) {
      this.latch(now);
      return;
    }
    this.rwMode = access;
    this.readState = access;
    this.writeState = access;
    this.countLatched = 0;
    let mode = (value >> 1) & 7;
    if (mode > 5) mode -= 4; // modes 6 and 7 are aliases of 2 and 3
    this.mode = mode;
    this.bcd = (value & 1) !== 0;
    // A control word stops the counter until a count is written.
    this.armed = false;
    this.triggered = false;
    this.counting = false;
    this.baseTicks = 0;
    this.edgesSeen = 0;
  }

  latch(now: number): void {
    if (this.countLatched) return; // the first latch holds until read
    this.latchedCount = this.value(now);
    this.countLatched = this.rwMode;
  }

  latchStatus(now: number): void {
    if (this.statusLatched) return;
    this.status =
      (this.out(now) ? 0x80 : 0) |
      (this.armed ? 0 : 0x40) | // NULL COUNT: no count loaded since the control word
      (this.rwMode << 4) |
      (this.mode << 1) |
      (this.bcd ? 1 : 0);
    this.statusLatched = true;
  }

  read(now: number): number {
    if (this.statusLatched) {
      this.statusLatched = false;
      return this.status;
    }
    if (this.countLatched) {
      const v = this.latchedCount;
      switch (this.countLatched) {
        case RW_MSB:
          this.countLatched = 0;
          return v >> 8;
        case RW_WORD0:
          this.countLatched = RW_MSB;
          return v & 0xff;
        default:
          this.countLatched = 0;
          return v & 0xff;
      }
    }
    const v = this.value(now);
    switch (this.readState) {
      case RW_MSB:
        return v >> 8;
      case RW_WORD0:
        this.readState = RW_WORD1;
        return v & 0xff;
      case RW_WORD1:
        this.readState = RW_WORD0;
        return v >> 8;
      default:
        return v & 0xff;
    }
  }

  write(now: number, value: number): void {
    switch (this.writeState) {
      case RW_MSB:
        this.load(now, value << 8);
        return;
      case RW_WORD0:
        this.writeLatch = value;
        this.writeState = RW_WORD1;
        return;
      case RW_WORD1:
        this.writeState = RW_WORD0;
        this.load(now, this.writeLatch | (value << 8));
        return;
      default:
        this.load(now, value);
    }
  }

  private load(now: number, raw: number): void {
    let n = raw;
    if (this.bcd) n = (raw >> 12) * 1000 + ((raw >> 8) & 15) * 100 + ((raw >> 4) & 15) * 10 + (raw & 15);
    if (n === 0) n = this.bcd ? 10000 : 0x10000; // 0 is the largest count
    this.count = n;
    this.armed = true;
    // Modes 1 and 5 load the count and wait for a trigger; a retrigger reloads it.
    if (this.mode === 1 || this.mode === 5) {
      this.counting = this.triggered;
      return;
    }
    this.restart(now);
  }

  setGate(now: number, gate: boolean): void {
    if (gate === this.gate) return;
    this.gate = gate;
    if (!this.armed) return;
    switch (this.mode) {
      case 0:
      case 4: // the gate pauses and resumes counting
        if (gate) {
          this.startNs = now;
          this.counting = true;
        } else {
          this.baseTicks = this.elapsed(now);
          this.counting = false;
        }
        return;
      case 2:
      case 3: // low stops the counter; a rising edge restarts the period
        if (gate) this.restart(now);
        else this.counting = false;
        return;
      default: // 1, 5: a rising edge (re)triggers
        if (gate) {
          this.triggered = true;
          this.restart(now);
        }
    }
  }
}

export interface Pit8254Options {
  clock: GuestClock;
  /** IRQ 0, driven by channel 0's OUT. */
  irq: IrqLine;
}

export class Pit8254 implements PioDevice {
  /** The I/O port ranges to register this device at. */
  static readonly portRanges: readonly { port: number; count: number }[] = [
    { port: 0x40, count: 4 },
    { port: 0x61, count: 1 },
  ];
  readonly name = 'pit8254';

  private readonly clock: GuestClock;
  private readonly irq: IrqLine;
  // Gates of channels 0 and 1 are tied high on a PC; channel 2's comes from port 0x61 bit 0.
  private readonly channels = [new Channel(true), new Channel(true), new Channel(false)];
  /** Port 0x61 bits 0-3: gate 2, speaker data, parity and I/O check enables. */
  private port61 = 0;
  private irqLevel = false;
  private deadline = Infinity;

  constructor(options: Pit8254Options) {
    this.clock = options.clock;
    this.irq = options.irq;
    // Power-on state as a BIOS leaves it: channel 0 in mode 3 with count 65536 (18.2 Hz).
    const now = this.clock.nowNs();
    for (const ch of this.channels) {
      ch.armed = true;
      ch.restart(now);
    }
    this.sync(now);
  }

  /** Guest time (ns) of channel 0's next rising OUT edge (an IRQ 0 request), or Infinity. */
  nextDeadlineNs(): number {
    return this.deadline;
  }

  /** Bring IRQ 0 up to date with the guest clock: call when nextDeadlineNs() has passed. */
  update(): void {
    this.sync(this.clock.nowNs());
  }

  pioRead(port: number, size: number): number {
    if (size !== 1) return size === 2 ? 0xffff : 0xffff_ffff; // byte-wide registers
    const now = this.clock.nowNs();
    if (port === 0x61) {
      // Bit 4 toggles with every DRAM refresh request (15.085 µs), bit 5 is OUT2.
      const refresh = Math.floor(now / 15_085) & 1;
      return this.port61 | (refresh << 4) | (this.channels[2]!.out(now) ? 0x20 : 0);
    }
    if (port === 0x43) return 0xff; // the control word register is write-only
    return this.channels[port - 0x40]!.read(now);
  }

  pioWrite(port: number, size: number, value: number): void {
    if (size !== 1) return;
    value &= 0xff;
    const now = this.clock.nowNs();
    this.sync(now); // deliver what the old programming owed before changing it
    if (port === 0x61) {
      this.port61 = value & 0x0f;
      this.channels[2]!.setGate(now, (value & 1) !== 0);
    } else if (port === 0x43) {
      const select = value >> 6;
      if (select === 3) {
        // Read-back: bit 5 clear latches counts, bit 4 clear latches status, bits 1-3 pick channels.
        for (let i = 0; i < 3; i++) {
          if (!(value & (2 << i))) continue;
          const ch = this.channels[i]!;
          if (!(value & 0x20)) ch.latch(now);
          if (!(value & 0x10)) ch.latchStatus(now);
        }
      } else {
        this.channels[select]!.control(now, value);
      }
    } else {
      this.channels[port - 0x40]!.write(now, value);
    }
    this.sync(now);
  }

  /** Deliver channel 0's rising edges up to `now`, set IRQ 0 to OUT0, and recompute the deadline. */
  private sync(now: number): void {
    const ch = this.channels[0]!;
    if (ch.counting) {
      const edges = ch.edgesUpTo(ch.elapsed(now));
      if (edges > ch.edgesSeen) {
        // Missed periods coalesce into one request, as on a PIC that has not yet acknowledged.
        ch.edgesSeen = edges;
        if (this.irqLevel) this.irq.set(false);
        this.irq.set(true);
        this.irqLevel = true;
      }
    }
    const out = ch.out(now);
    if (out !== this.irqLevel) {
      this.irqLevel = out;
      this.irq.set(out);
    }
    const next = ch.nextEdgeTicks();
    this.deadline = next === Infinity ? Infinity : ch.startNs + nsForTicks(next - ch.baseTicks);
  }
}
