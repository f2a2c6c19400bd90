// A National Semiconductor PC16550D-compatible UART ("16550A"), as found at COM1 on a PC.
//
// Transmission is instantaneous: a byte written to THR goes straight to `output`, so THR and
// the transmitter are always empty (LSR.THRE and LSR.TEMT stay set) and the vCPU never waits.
// Reception is paced by the guest: host input waits in a host-side queue and moves into the
// 16-byte RX FIFO only as the FIFO has room, so pasted text is never overrun.
//
// Behaviour follows the PC16550D datasheet where Linux's 8250 driver looks at it:
// - autoconfig: IER bits 0-3 read back, bits 4-7 read 0; MCR loopback mirrors MCR bits into
//   MSR (RTS->CTS, DTR->DSR, OUT1->RI, OUT2->DCD); FCR bit 0 makes IIR bits 6-7 read 11, which
//   is what identifies a 16550A (a 16550 without working FIFOs reads 10).
// - THRE interrupt: pending when THR becomes empty, or when IER.THRI is turned on while THR is
//   empty (Linux: "real 16550s should always reassert this interrupt whenever the transmitter
//   is idle and the interrupt is enabled", which its startup "THRE test" checks); cleared by an
//   IIR read that reports it or by a THR write.
// - RX interrupts: "data available" once the FIFO holds the trigger level; below it the
//   character-timeout interrupt fires at once (a real chip waits four character times, which
//   for an instantaneous line means now). Reading below the level turns the first into the
//   second; an empty FIFO ends both.
// - The IRQ pin is gated by MCR.OUT2 as on a PC, and loopback forces OUT2 inactive.

import type { IrqLine, PioDevice } from '../device.ts';

export const COM1_PORT = 0x3f8;
export const COM1_IRQ = 4;
/** Number of consecutive ports the UART decodes. */
export const UART_PORT_COUNT = 8;

// Register offsets.
const RBR_THR_DLL = 0;
const IER_DLM = 1;
const IIR_FCR = 2;
const LCR = 3;
const MCR = 4;
const LSR = 5;
const MSR = 6;
const SCR = 7;

const IER_RDI = 0x01; // received data available
const IER_THRI = 0x02; // THR empty
const IER_RLSI = 0x04; // receiver line status
const IER_MSI = 0x08; // modem status

const IIR_NO_INT = 0x01;
const IIR_MSI = 0x00;
const IIR_THRI = 0x02;
const IIR_RDI = 0x04;
const IIR_RLSI = 0x06;
const IIR_TIMEOUT = 0x0c;
const IIR_FIFOS_ENABLED = 0xc0;

const FCR_ENABLE = 0x01;
const FCR_CLEAR_RX = 0x02;
const FCR_TRIGGER_SHIFT = 6;
const RX_TRIGGER_LEVELS = [1, 4, 8, 14];

const LCR_DLAB = 0x80;

const MCR_DTR = 0x01;
const MCR_RTS = 0x02;
const MCR_OUT1 = 0x04;
const MCR_OUT2 = 0x08;
const MCR_LOOP = 0x10;
const MCR_MASK = 0x1f; // bits 5-7 are always 0 on a 16550A

const LSR_DR = 0x01;
const LSR_OE = 0x02;
const LSR_THRE = 0x20;
const LSR_TEMT = 0x40;

const MSR_CTS = 0x10;
const MSR_DSR = 0x20;
const MSR_RI = 0x40;
const MSR_DCD = 0x80;
const MSR_DELTA_CTS = 0x01;
const MSR_DELTA_DSR = 0x02;
const MSR_TRAILING_RI = 0x04;
const MSR_DELTA_DCD = 0x08;
/**
 * Modem inputs outside loopback: a terminal that is present and ready (carrier, DSR, CTS), so
 * a tty opened without CLOCAL does not wait for carrier and CRTSCTS never stalls output.
 */
const MSR_LINES_CONNECTED = MSR_DCD | MSR_DSR | MSR_CTS;

const FIFO_SIZE = 16;

export interface Uart16550Options {
  /** The UART's interrupt line (IRQ 4 for COM1). Set only when its level changes. */
  irq: IrqLine;
  /**
   * Receives every transmitted byte, synchronously, from the vCPU's thread. The array is reused
   * by the next call: copy it if you keep it (e.g. push it into a ring), and never block here.
   */
  output: (bytes: Uint8Array) => void;
  /** Name on the I/O bus; default "uart16550". */
  name?: string;
}

export class Uart16550 implements PioDevice {
  readonly name: string;
  private readonly irq: IrqLine;
  private readonly output: (bytes: Uint8Array) => void;
  private readonly txByte = new Uint8Array(1);

  private ier = 0;
  private lcr = 0;
  private mcr = 0;
  private lsrErrors = 0; // sticky LSR error bits 1-4, cleared by reading LSR (only OE happens here)
  private msrDeltas = 0;
  private scr = 0;
  // 115200 / 12 = 9600 baud, the customary power-on divisor; it has no effect on timing here.
  private divisor = 12;

  private fifoEnabled = false;
  private rxTrigger = 1;
  private readonly rxFifo = new Uint8Array(FIFO_SIZE);
  private rxHead = 0;
  private rxCount = 0;
  private lastRx = 0;

  /** THR-empty interrupt latch (see the file comment for when it sets and clears). */
  private thrPending = true;
  /** The interrupt identification currently presented in IIR bits 0-3. */
  private iirId = IIR_NO_INT;
  private irqLevel = false;

  // Host-side input waiting for FIFO room: chunks consumed front to back.
  private readonly hostQueue: Uint8Array[] = [];
  private hostOffset = 0;
  private hostBytes = 0;

  constructor(options: Uart16550Options) {
    this.irq = options.irq;
    this.output = options.output;
    this.name = options.name ?? 'uart16550';
  }

  // ---- host side ----

  /** Queue bytes typed or pasted by the user; they enter the RX FIFO as the guest drains it. */
  receive(bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    this.hostQueue.push(bytes.slice()); // the caller may reuse its buffer
    this.hostBytes += bytes.length;
    this.fillRxFifo();
    this.updateInterrupt();
  }

  /** Bytes accepted by receive() that have not yet entered the RX FIFO. */
  queuedInput(): number {
    return this.hostBytes;
  }

  /** True when nothing waits in the host queue: the VMM may hand over more input now. */
  wantsInput(): boolean {
    return this.hostBytes === 0;
  }

  /** The current level of the IRQ line (what the last irq.set() call said). */
  irqAsserted(): boolean {
    return this.irqLevel;
  }

  // ---- guest side ----

  pioRead(port: number, size: number): number {
    // ISA splits wider accesses into byte accesses at consecutive ports.
    let value = this.readRegister(port & 7);
    for (let i = 1; i < size; i++) value |= this.readRegister((port + i) & 7) << (8 * i);
    return value >>> 0;
  }

  pioWrite(port: number, size: number, value: number): void {
    for (let i = 0; i < size; i++) this.writeRegister((port + i) & 7, (value >>> (8 * i)) & 0xff);
  }

  private readRegister(offset: number): number {
    const dlab = (this.lcr & LCR_DLAB) !== 0;
    switch (offset) {
      case RBR_THR_DLL:
        return dlab ? this.divisor & 0xff : this.readRbr();
      case IER_DLM:
        return dlab ? this.divisor >>> 8 : this.ier;
      case IIR_FCR: {
        const id = this.iirId;
        // Reading IIR acknowledges a THRE interrupt, and only when IIR reports it.
        if (id === IIR_THRI) {
          this.thrPending = false;
          this.updateInterrupt();
        }
        return id | (this.fifoEnabled ? IIR_FIFOS_ENABLED : 0);
      }
      case LCR:
        return this.lcr;
      case MCR:
        return this.mcr;
      case LSR: {
        const lsr = this.lsr();
        if (this.lsrErrors !== 0) {
          this.lsrErrors = 0;
          this.updateInterrupt();
        }
        return lsr;
      }
      case MSR: {
        const msr = this.modemInputs() | this.msrDeltas;
        if (this.msrDeltas !== 0) {
          this.msrDeltas = 0;
          this.updateInterrupt();
        }
        return msr;
      }
      default:
        return this.scr;
    }
  }

  private writeRegister(offset: number, value: number): void {
    const dlab = (this.lcr & LCR_DLAB) !== 0;
    switch (offset) {
      case RBR_THR_DLL:
        if (dlab) this.divisor = (this.divisor & 0xff00) | value;
        else this.writeThr(value);
        return;
      case IER_DLM:
        if (dlab) this.divisor = (this.divisor & 0x00ff) | (value << 8);
        else this.writeIer(value & 0x0f);
        return;
      case IIR_FCR:
        this.writeFcr(value);
        return;
      case LCR:
        this.lcr = value;
        return;
      case MCR:
        this.writeMcr(value & MCR_MASK);
        return;
      case LSR:
      case MSR:
        return; // read-only (LSR writes are a factory test mode on real parts)
      case SCR:
        this.scr = value;
        return;
    }
  }

  private writeThr(value: number): void {
    this.thrPending = false;
    if (this.mcr & MCR_LOOP) {
      // Loopback: the transmitter feeds the receiver instead of the line.
      if (this.rxCount === this.rxCapacity()) this.lsrErrors |= LSR_OE;
      else this.pushRx(value);
    } else {
      this.txByte[0] = value;
      this.output(this.txByte);
    }
    // The byte left THR at once, so THR is empty again: that is a new THRE event.
    this.thrPending = true;
    this.updateInterrupt();
  }

  private writeIer(value: number): void {
    const enabling = value & ~this.ier & IER_THRI;
    this.ier = value;
    // Turning THRI on while THR is empty raises the THRE interrupt (THR is always empty here).
    if (enabling) this.thrPending = true;
    this.updateInterrupt();
  }

  private writeFcr(value: number): void {
    // Datasheet: FCR0 must be set for the other bits to be programmed; changing FCR0 in
    // either direction empties both FIFOs.
    const enable = (value & FCR_ENABLE) !== 0;
    if (enable !== this.fifoEnabled) {
      this.fifoEnabled = enable;
      this.clearRx();
    }
    if (enable) {
      // Bit 2 (clear TX) needs nothing: the TX FIFO is always empty here.
      if (value & FCR_CLEAR_RX) this.clearRx();
      this.rxTrigger = RX_TRIGGER_LEVELS[value >>> FCR_TRIGGER_SHIFT]!;
    } else {
      this.rxTrigger = 1;
    }
    this.fillRxFifo();
    this.updateInterrupt();
  }

  private writeMcr(value: number): void {
    const before = this.modemInputs();
    this.mcr = value;
    const after = this.modemInputs();
    const changed = before ^ after;
    if (changed & MSR_CTS) this.msrDeltas |= MSR_DELTA_CTS;
    if (changed & MSR_DSR) this.msrDeltas |= MSR_DELTA_DSR;
    if (changed & MSR_DCD) this.msrDeltas |= MSR_DELTA_DCD;
    if (before & ~after & MSR_RI) this.msrDeltas |= MSR_TRAILING_RI; // TERI: RI went 1 -> 0
    this.fillRxFifo(); // leaving loopback reconnects the receiver to the host line
    this.updateInterrupt();
  }

  /** MSR bits 4-7: the modem inputs, which loopback wires to MCR's outputs. */
  private modemInputs(): number {
    const mcr = this.mcr;
    if (!(mcr & MCR_LOOP)) return MSR_LINES_CONNECTED;
    return (
      (mcr & MCR_RTS ? MSR_CTS : 0) |
      (mcr & MCR_DTR ? MSR_DSR : 0) |
      (mcr & MCR_OUT1 ? MSR_RI : 0) |
      (mcr & MCR_OUT2 ? MSR_DCD : 0)
    );
  }

  private lsr(): number {
    return LSR_THRE | LSR_TEMT | this.lsrErrors | (this.rxCount > 0 ? LSR_DR : 0);
  }

  private readRbr(): number {
    if (this.rxCount > 0) {
      this.lastRx = this.rxFifo[this.rxHead]!;
      this.rxHead = (this.rxHead + 1) % FIFO_SIZE;
      this.rxCount--;
      this.fillRxFifo();
      this.updateInterrupt();
    }
    // An empty RBR reads back the last character, as the holding register keeps it.
    return this.lastRx;
  }

  // ---- receive FIFO ----

  /** 16 bytes with FIFOs on; the single receiver holding register in 16450 mode. */
  private rxCapacity(): number {
    return this.fifoEnabled ? FIFO_SIZE : 1;
  }

  private pushRx(value: number): void {
    this.rxFifo[(this.rxHead + this.rxCount) % FIFO_SIZE] = value;
    this.rxCount++;
  }

  private clearRx(): void {
    this.rxHead = 0;
    this.rxCount = 0;
  }

  /** Move host input into the RX FIFO while it has room (never in loopback: the line is cut). */
  private fillRxFifo(): void {
    if (this.hostBytes === 0 || this.mcr & MCR_LOOP) return;
    const capacity = this.rxCapacity();
    while (this.rxCount < capacity && this.hostBytes > 0) {
      const chunk = this.hostQueue[0]!;
      this.pushRx(chunk[this.hostOffset++]!);
      this.hostBytes--;
      if (this.hostOffset === chunk.length) {
        this.hostQueue.shift();
        this.hostOffset = 0;
      }
    }
  }

  // ---- interrupts ----

  /** Recompute IIR by the datasheet's priority order and drive the IRQ pin. */
  private updateInterrupt(): void {
    const ier = this.ier;
    let id = IIR_NO_INT;
    if (ier & IER_RLSI && this.lsrErrors !== 0) id = IIR_RLSI;
    else if (ier & IER_RDI && this.rxCount > 0) id = this.rxCount >= this.rxTrigger ? IIR_RDI : IIR_TIMEOUT;
    else if (ier & IER_THRI && this.thrPending) id = IIR_THRI;
    else if (ier & IER_MSI && this.msrDeltas !== 0) id = IIR_MSI;
    this.iirId = id;
    // On a PC the UART's INTR pin reaches the PIC through a buffer enabled by OUT2.
    const level = id !== IIR_NO_INT && (this.mcr & (MCR_OUT2 | MCR_LOOP)) === MCR_OUT2;
    if (level !== this.irqLevel) {
      this.irqLevel = level;
      this.irq.set(level);
    }
  }
}
