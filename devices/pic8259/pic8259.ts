// The PC/AT's two cascaded Intel 8259A programmable interrupt controllers, for the interpreter
// backend (KVM has its own in the kernel). Master at 0x20/0x21, slave at 0xA0/0xA1 on the
// master's IR2, and the PIIX edge/level control registers (ELCR) at 0x4D0/0x4D1.
//
// The model follows the 8259A datasheet as Linux's i8259 driver and KVM's in-kernel PIC use it:
// fully nested priority with rotation, specific and non-specific EOI, auto-EOI, special mask,
// poll, IRR/ISR reads, and spurious IR7 when a request vanishes before INTA. One deliberate
// simplification, shared with KVM and QEMU: an edge-triggered request stays latched in IRR if the
// line drops again before it is acknowledged (a real chip would then answer with IR7).

import type { IrqLine, PioDevice } from '../device.ts';

/** One 8259A. */
class Chip {
  irr = 0; // interrupt request register
  imr = 0; // interrupt mask register
  isr = 0; // in-service register
  /** Line levels last seen, for edge detection. */
  private levels = 0;
  /** IR line that currently has the lowest priority + 1: rotation moves it (0 = IR0 highest). */
  priorityAdd = 0;
  vectorBase = 0;
  readIsr = false;
  poll = false;
  specialMask = false;
  /** 0: operational; 1, 2, 3: waiting for ICW2, ICW3, ICW4. */
  initState = 0;
  needIcw4 = false;
  single = false;
  autoEoi = false;
  rotateOnAutoEoi = false;
  specialFullyNested = false;
  /** ICW1.LTIM: all lines level-triggered. */
  levelMode = false;
  /** ELCR: per-line level triggering (PIIX). */
  elcr = 0;

  constructor(
    readonly isMaster: boolean,
    /** ELCR bits that exist: IRQ 0, 1, 2, 8 and 13 are always edge-triggered on a PC. */
    readonly elcrMask: number,
  ) {}

  levelTriggered(mask: number): boolean {
    return this.levelMode || (this.elcr & mask) !== 0;
  }

  setLine(irq: number, level: boolean): void {
    const mask = 1 << irq;
    if (this.levelTriggered(mask)) {
      // Level mode: the request follows the line.
      if (level) this.irr |= mask;
      else this.irr &= ~mask;
    } else if (level && !(this.levels & mask)) {
      this.irr |= mask; // rising edge
    }
    if (level) this.levels |= mask;
    else this.levels &= ~mask;
  }

  /** 0 for the highest-priority bit set in `mask` under the current rotation, 8 if none. */
  private priorityOf(mask: number): number {
    if (mask === 0) return 8;
    let priority = 0;
    while (!(mask & (1 << ((priority + this.priorityAdd) & 7)))) priority++;
    return priority;
  }

  /** The IR line this chip would interrupt with now, or -1. */
  pending(): number {
    const priority = this.priorityOf(this.irr & ~this.imr);
    if (priority === 8) return -1;
    // Requests must beat everything in service, except: in special mask mode masked ISR bits
    // do not block, and in special fully nested mode the master lets the slave interrupt
    // itself (the slave does its own nesting).
    let inService = this.isr;
    if (this.specialMask) inService &= ~this.imr;
    if (this.specialFullyNested && this.isMaster) inService &= ~(1 << 2);
    return priority < this.priorityOf(inService) ? (priority + this.priorityAdd) & 7 : -1;
  }

  /** INTA for line `irq`: move it from IRR to ISR (unless auto-EOI). */
  acknowledge(irq: number): void {
    const mask = 1 << irq;
    if (this.autoEoi) {
      if (this.rotateOnAutoEoi) this.priorityAdd = (irq + 1) & 7;
    } else {
      this.isr |= mask;
    }
    // A level-triggered request stays in IRR for as long as the line is high.
    if (!this.levelTriggered(mask)) this.irr &= ~mask;
  }

  writeCommand(value: number): void {
    if (value & 0x10) {
      this.icw1(value);
    } else if (value & 0x08) {
      // OCW3
      if (value & 0x04) this.poll = true;
      if (value & 0x02) this.readIsr = (value & 0x01) !== 0;
      if (value & 0x40) this.specialMask = (value & 0x20) !== 0;
    } else {
      this.ocw2(value);
    }
  }

  private icw1(value: number): void {
    // Initialization clears IMR and ISR, drops edge memory (so a line held high must rise
    // again), assigns IR7 lowest priority, and leaves special mask mode and status reads.
    this.levels = 0;
    this.irr &= this.elcr;
    this.imr = 0;
    this.isr = 0;
    this.priorityAdd = 0;
    this.readIsr = false;
    this.poll = false;
    this.specialMask = false;
    this.autoEoi = false;
    this.rotateOnAutoEoi = false;
    this.specialFullyNested = false;
    this.needIcw4 = (value & 0x01) !== 0;
    this.single = (value & 0x02) !== 0;
    this.levelMode = (value & 0x08) !== 0;
    this.initState = 1;
  }

  private ocw2(value: number): void {
    const level = value & 7;
    switch (value >> 5) {
      case 0: // rotate in auto-EOI mode: clear
      case 4: // rotate in auto-EOI mode: set
        this.rotateOnAutoEoi = value >> 7 === 1;
        return;
      case 1: // non-specific EOI
      case 5: { // rotate on non-specific EOI
        const priority = this.priorityOf(this.isr);
        if (priority === 8) return;
        const irq = (priority + this.priorityAdd) & 7;
        this.isr &= ~(1 << irq);
        if (value >> 5 === 5) this.priorityAdd = (irq + 1) & 7;
        return;
      }
      case 3: // specific EOI
        this.isr &= ~(1 << level);
        return;
      case 6: // set priority: `level` becomes the lowest
        this.priorityAdd = (level + 1) & 7;
        return;
      case 7: // rotate on specific EOI
        this.isr &= ~(1 << level);
        this.priorityAdd = (level + 1) & 7;
        return;
      // case 2: no operation
    }
  }

  writeData(value: number): void {
    switch (this.initState) {
      case 0: // OCW1
        this.imr = value;
        return;
      case 1: // ICW2: vector base (the low 3 bits are the IR number on an 8086)
        this.vectorBase = value & 0xf8;
        this.initState = this.single ? (this.needIcw4 ? 3 : 0) : 2;
        return;
      case 2: // ICW3: cascade wiring, fixed on a PC
        this.initState = this.needIcw4 ? 3 : 0;
        return;
      case 3: // ICW4
        this.specialFullyNested = (value & 0x10) !== 0;
        this.autoEoi = (value & 0x02) !== 0;
        this.initState = 0;
        return;
    }
  }

  readCommand(): number {
    return this.readIsr ? this.isr : this.irr;
  }
}

export interface PortRange {
  port: number;
  count: number;
}

export interface PicPairOptions {
  /**
   * Called whenever INTR to the CPU changes, for a CPU that keeps its own copy of the pin
   * (the alternative is polling hasInterrupt()). Called synchronously; do not re-enter the PIC.
   */
  onIntr?: (level: boolean) => void;
}

/** The master/slave pair, as the CPU and the I/O bus see it. */
export class PicPair implements PioDevice {
  /** The I/O port ranges to register this device at. */
  static readonly portRanges: readonly PortRange[] = [
    { port: 0x20, count: 2 },
    { port: 0xa0, count: 2 },
    { port: 0x4d0, count: 2 },
  ];
  readonly name = 'pic8259';

  private readonly master = new Chip(true, 0xf8);
  private readonly slave = new Chip(false, 0xde);
  /** INTR to the CPU: cached so the interpreter can test it before every instruction. */
  private intr = false;
  private readonly lines: IrqLine[] = [];
  private readonly onIntr: ((level: boolean) => void) | undefined;

  constructor(options: PicPairOptions = {}) {
    this.onIntr = options.onIntr;
    for (let i = 0; i < 16; i++) this.lines.push({ set: (level) => this.setIrq(i, level) });
  }

  /**
   * Drive ISA IRQ `line` (0-15). As on a PC/AT, the ISA bus's IRQ 2 pin arrives at IRQ 9: IR2 of
   * the master is wired to the slave.
   */
  setIrq(line: number, level: boolean): void {
    if (line === 2) line = 9;
    if (line < 8) this.master.setLine(line, level);
    else if (line < 16) this.slave.setLine(line - 8, level);
    else throw new RangeError(`IRQ ${line} does not exist on the 8259 pair (0-15)`);
    this.update();
  }

  /** The IrqLine for ISA IRQ `line`, to hand to a device model. */
  irqLine(line: number): IrqLine {
    const l = this.lines[line === 2 ? 9 : line];
    if (!l) throw new RangeError(`IRQ ${line} does not exist on the 8259 pair (0-15)`);
    return l;
  }

  /** True while the master asserts INTR: the CPU should take an interrupt when IF=1. */
  hasInterrupt(): boolean {
    return this.intr;
  }

  /**
   * The CPU's INTA cycle: returns the vector to dispatch and moves the request into service.
   * Called with no request pending (it vanished), it returns the spurious IR7 vector of the
   * chip concerned without setting any ISR bit, as the datasheet specifies.
   */
  acknowledge(): number {
    const master = this.master;
    let vector: number;
    const irq = master.pending();
    if (irq < 0) {
      vector = master.vectorBase + 7;
    } else {
      master.acknowledge(irq);
      if (irq === 2 && !master.single) {
        const slave = this.slave;
        const irq2 = slave.pending();
        if (irq2 >= 0) slave.acknowledge(irq2);
        vector = slave.vectorBase + (irq2 >= 0 ? irq2 : 7);
      } else {
        vector = master.vectorBase + irq;
      }
    }
    this.update();
    return vector;
  }

  pioRead(port: number, size: number): number {
    if (size !== 1) return size === 2 ? 0xffff : 0xffff_ffff; // byte-wide registers
    switch (port) {
      case 0x20: return this.readCommand(this.master);
      case 0x21: return this.master.imr;
      case 0xa0: return this.readCommand(this.slave);
      case 0xa1: return this.slave.imr;
      case 0x4d0: return this.master.elcr;
      case 0x4d1: return this.slave.elcr;
      default: return 0xff;
    }
  }

  pioWrite(port: number, size: number, value: number): void {
    if (size !== 1) return;
    value &= 0xff;
    switch (port) {
      case 0x20: this.master.writeCommand(value); break;
      case 0x21: this.master.writeData(value); break;
      case 0xa0: this.slave.writeCommand(value); break;
      case 0xa1: this.slave.writeData(value); break;
      case 0x4d0: this.master.elcr = value & this.master.elcrMask; break;
      case 0x4d1: this.slave.elcr = value & this.slave.elcrMask; break;
      default: return;
    }
    this.update();
  }

  /** IRR, ISR and IMR of both chips, for diagnostics. */
  state(): { irr: number; isr: number; imr: number } {
    const m = this.master, s = this.slave;
    return { irr: m.irr | (s.irr << 8), isr: m.isr | (s.isr << 8), imr: m.imr | (s.imr << 8) };
  }

  /** OCW3 poll: the read acknowledges the highest request: 0x80 | IR, or 0 if none. */
  private readCommand(chip: Chip): number {
    if (!chip.poll) return chip.readCommand();
    chip.poll = false;
    const irq = chip.pending();
    if (irq < 0) return 0;
    chip.acknowledge(irq);
    this.update();
    return 0x80 | irq;
  }

  /** Propagate the slave's INT to the master's IR2 and the master's INT to the CPU. */
  private update(): void {
    this.master.setLine(2, this.slave.pending() >= 0);
    const intr = this.master.pending() >= 0;
    if (intr !== this.intr) {
      this.intr = intr;
      this.onIntr?.(intr);
    }
  }
}
