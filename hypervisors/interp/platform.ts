// The platform chips the interpreter backend keeps inside itself, as KVM keeps its in-kernel
// irqchip and PIT: an 8259 PIC pair and an 8254 PIT, plus the guest clock they run on.
//
//   - Port I/O to the PIC (0x20-0x21, 0xA0-0xA1, ELCR 0x4D0-0x4D1), the PIT (0x40-0x43, 0x61)
//     and the POST port 0x80 (Linux's outb_p delay) is answered here: the VMM never sees it.
//   - Vm.setIrqLine(gsi) drives the PIC; the PIC's INTR drives the CPU (Executor.intr), and the
//     CPU's INTA cycle is PicPair.acknowledge().
//   - HLT with IF=1 parks the vCPU thread until the PIT's next deadline or a kick (Atomics.wait
//     on the kick word), so an idle guest costs no host CPU. HLT with IF=0 still leaves run()
//     with ExitReason.Hlt: that is how an ACPI-less guest powers off.
//   - Idle ticks are batched: a guest kernel with a periodic tick (HZ=250) would otherwise wake
//     the host 250 times a second, and on a shared host each wake-up from a sleep costs far more
//     than the tick's guest code. So a halted CPU sleeps until IDLE_BATCH_NS past its next timer
//     deadline and then takes the due ticks back to back, each at its exact guest time: guest
//     time lags real time by at most IDLE_BATCH_NS while idle, and catches up as the ticks are
//     taken. A kick (console input) ends the sleep at once, so input sees no added latency.
//     Batching starts only once the guest has done nothing but take ticks for a while
//     (IDLE_TICKS_BEFORE_BATCHING), so the short timer waits of a booting kernel are not delayed.
//   - Time: real time (LaggingRealTimeClock) by default; with `deterministic`, time is derived from
//     the instruction count (InstructionClock) and a halted CPU jumps straight to the next timer
//     deadline, so two boots of the same guest see the same time at the same instruction. The
//     host still sleeps while guest time is ahead of real time, so an idle deterministic guest
//     costs no CPU either; how long it sleeps is invisible to the guest.
//     The TSC reads the same clock (1 tick per ns: a 1 GHz TSC), so TSC, PIT and RTC agree.

import { InstructionClock, RealTimeClock, type GuestClock } from '../../devices/clock.ts';
import { PicPair } from '../../devices/pic8259/pic8259.ts';
import { Pit8254 } from '../../devices/pit8254/pit8254.ts';
import type { PioDevice } from '../../devices/device.ts';
import type { BusRange } from '../../base/memory-map.ts';
import type { Cpu } from './cpu.ts';
import type { Executor } from './exec.ts';

/**
 * Guest time per instruction in deterministic mode. Near what the interpreter executes per
 * second of host time when it boots Linux, so guest time moves at roughly wall-clock speed
 * (see docs/interpreter-boot.md).
 */
export const DETERMINISTIC_NS_PER_INSN = 10;

/** The TSC frequency the interpreter presents: one tick per guest nanosecond. */
export const TSC_KHZ = 1_000_000;

/** How far guest time may fall behind (or, deterministic, run ahead of) real time while idle. */
export const IDLE_BATCH_NS = 16_000_000;
/** Consecutive idle ticks (halts with little work in between: about 100 ms) before batching. */
const IDLE_TICKS_BEFORE_BATCHING = 25;
/** At most this many instructions between two halts still count as an idle tick. */
const IDLE_TICK_INSNS = 20_000;

/**
 * Real time minus a lag, for the idle-tick batching described above. The lag only changes
 * while the CPU is halted (nothing reads the clock then), and guest time never goes backwards.
 */
export class LaggingRealTimeClock implements GuestClock {
  private readonly originMs = performance.now();
  private lagNs = 0;

  realNs(): number { return Math.floor((performance.now() - this.originMs) * 1e6); }
  nowNs(): number { return this.realNs() - this.lagNs; }

  /** Make guest time read `guestNs` now (a halted CPU's clock moving to its next deadline). */
  setNow(guestNs: number, realNs: number): void {
    if (guestNs <= realNs && guestNs >= realNs - this.lagNs) this.lagNs = realNs - guestNs;
  }
}

/**
 * Kernel command-line words a Linux guest needs on this platform. `tsc=reliable`: the TSC is the
 * guest clock itself (1 GHz, see defaultCpuid), whereas the PIT-and-jiffies clocksource the
 * kernel's watchdog would compare it with loses ticks whenever the guest keeps interrupts off
 * longer than a tick (console output at boot does): without it the watchdog marks the TSC unstable
 * and Linux falls back to the coarse PIT clocksource.
 */
export const LINUX_KERNEL_ARGS: readonly string[] = ['tsc=reliable'];

/** The POST port Linux's outb_p delays with. */
const POST_PORT_NUMBER = 0x80;

/** A port the platform swallows: reads give all ones, writes are ignored. */
const POST_PORT: PioDevice = { name: 'post', pioRead: (_p, size) => (size === 4 ? 0xffff_ffff : size === 2 ? 0xffff : 0xff), pioWrite: () => {} };

export interface PlatformOptions {
  deterministic: boolean;
}

export class InterpPlatform {
  /** The ports answered here, never seen by the VMM: its region registry keeps them free. */
  static readonly claims: readonly BusRange[] = [
    ...PicPair.portRanges.map((r) => ({ bus: 'pio' as const, start: r.port, size: r.count, name: '8259 PIC pair (in the interpreter)' })),
    ...Pit8254.portRanges.map((r) => ({ bus: 'pio' as const, start: r.port, size: r.count, name: '8254 PIT (in the interpreter)' })),
    { bus: 'pio', start: POST_PORT_NUMBER, size: 1, name: 'POST port (in the interpreter)' },
  ];

  readonly clock: GuestClock;
  readonly pic: PicPair;
  readonly pit: Pit8254;
  private readonly deterministic: boolean;
  /** Real time since creation: how far a deterministic guest's clock may run ahead when idle. */
  private readonly wall = new RealTimeClock();
  /** Port -> index into `devices` + 1 (0: not a platform port, exit to the VMM). */
  private readonly portMap = new Uint8Array(0x10000);
  private readonly devices: PioDevice[] = [];
  private cpu: Cpu | null = null;
  private executor: Executor | null = null;
  private control: Int32Array | null = null;
  /** Consecutive halts with at most IDLE_TICK_INSNS instructions between them. */
  private idleTicks = 0;
  private icountAtPark = 0;

  constructor(options: PlatformOptions) {
    this.deterministic = options.deterministic;
    this.clock = options.deterministic
      ? new InstructionClock(() => (this.cpu === null ? 0 : this.cpu.icount), DETERMINISTIC_NS_PER_INSN)
      : new LaggingRealTimeClock();
    this.pic = new PicPair({ onIntr: (level) => { if (this.executor !== null) this.executor.intr = level; } });
    this.pit = new Pit8254({ clock: this.clock, irq: this.pic.irqLine(0) });
    for (const r of PicPair.portRanges) this.map(this.pic, r.port, r.count);
    for (const r of Pit8254.portRanges) this.map(this.pit, r.port, r.count);
    this.map(POST_PORT, POST_PORT_NUMBER, 1);
  }

  private map(dev: PioDevice, port: number, count: number): void {
    this.devices.push(dev);
    this.portMap.fill(this.devices.length, port, port + count);
  }

  /** Wire the boot vCPU: interrupts from the PIC, timers polled between blocks, HLT parking. */
  attach(cpu: Cpu, executor: Executor, control: SharedArrayBuffer): void {
    this.cpu = cpu;
    this.executor = executor;
    this.control = new Int32Array(control);
    const clock = this.clock;
    cpu.tscSource = () => BigInt(clock.nowNs());
    executor.irqSource = { ack: () => this.pic.acknowledge() };
    executor.intr = this.pic.hasInterrupt();
    executor.poll = () => this.poll();
    executor.park = () => this.park();
  }

  /** True when `port` is served here rather than by the VMM. */
  ownsPort(port: number): boolean {
    return this.portMap[port] !== 0;
  }

  pioRead(port: number, size: number): number {
    return this.devices[this.portMap[port] - 1].pioRead(port, size);
  }

  pioWrite(port: number, size: number, value: number): void {
    this.devices[this.portMap[port] - 1].pioWrite(port, size, value);
  }

  /** Deliver timer interrupts that are due. Cheap: one clock read when nothing is due. */
  poll(): void {
    if (this.clock.nowNs() >= this.pit.nextDeadlineNs()) this.pit.update();
  }

  /**
   * The CPU is halted with interrupts enabled and nothing pending: wait for the next timer
   * deadline or a kick. Returns early on a kick; the executor re-checks both.
   */
  private park(): void {
    const deadline = this.pit.nextDeadlineNs();
    const control = this.control!;
    const icount = this.cpu!.icount;
    this.idleTicks = icount - this.icountAtPark <= IDLE_TICK_INSNS ? this.idleTicks + 1 : 0;
    this.icountAtPark = icount;
    const batchNs = this.idleTicks >= IDLE_TICKS_BEFORE_BATCHING ? IDLE_BATCH_NS : 0;
    if (this.deterministic && deadline !== Infinity) {
      // Guest time jumps over the idle period at once; the host then sleeps off any lead the
      // guest clock has over real time (woken early by a kick, which the executor then sees).
      // Sleeping only once the lead exceeds IDLE_BATCH_NS batches idle ticks, as below.
      (this.clock as InstructionClock).skipTo(deadline);
      const leadNs = deadline - this.wall.nowNs();
      if (leadNs > batchNs) Atomics.wait(control, 0, 0, leadNs / 1e6);
      return;
    }
    if (deadline === Infinity) {
      Atomics.wait(control, 0, 0);
      this.idleTicks = 0;
      return;
    }
    const clock = this.clock as LaggingRealTimeClock;
    let real = clock.realNs();
    if (deadline > real) {
      // Not yet due in real time: sleep past it by the batch window (or until a kick).
      if (Atomics.wait(control, 0, 0, (deadline + batchNs - real) / 1e6) !== 'timed-out') this.idleTicks = 0;
      real = clock.realNs();
    }
    // Move guest time to the deadline if real time has reached it (or to no further than that
    // if a kick ended the sleep early); the executor's poll then delivers the tick.
    clock.setNow(Math.min(deadline, real), real);
  }
}
