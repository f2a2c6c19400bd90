// The PC's CMOS real-time clock (Motorola MC146818A) at ports 0x70 (index) and 0x71 (data).
// Linux reads it once at boot for the wall-clock time (arch/x86/kernel/rtc.c, via
// mc146818_get_time) and `hwclock` may read or set it later. No interrupts (IRQ 8) are modelled:
// the periodic, alarm and update-ended flags in register C never set.
//
// The clock shows UTC: `baseUnixMs` (the host's time by default) plus the guest clock's time
// since the machine started, plus whatever offset the guest set by writing the time.

import type { PioDevice } from '../device.ts';
import type { GuestClock } from '../clock.ts';
import { RealTimeClock } from '../clock.ts';

const SECONDS = 0x00;
const MINUTES = 0x02;
const HOURS = 0x04;
const DAY_OF_WEEK = 0x06;
const DAY_OF_MONTH = 0x07;
const MONTH = 0x08;
const YEAR = 0x09;
const REG_A = 0x0a;
const REG_B = 0x0b;
const REG_C = 0x0c;
const REG_D = 0x0d;
/** The IBM PC/AT century byte (ACPI's FADT may name another; these guests have no ACPI). */
const CENTURY = 0x32;

const A_UIP = 0x80; // update in progress
// Divider 010 (32.768 kHz time base running) and rate 0110 (1024 Hz): the PC's power-on value.
const A_DEFAULT = 0x26;
const B_SET = 0x80; // updates halted while the guest sets the time
const B_BINARY = 0x04; // DM: binary instead of BCD
const B_24H = 0x02;
const D_VRT = 0x80; // valid RAM and time: the battery is fine

/** UIP is set for the 244 µs before each update (MC146818A datasheet, tBUC). */
const UIP_WINDOW_NS = 244_000;

const NMI_DISABLE = 0x80;

interface Fields {
  seconds: number;
  minutes: number;
  hours: number;
  dayOfWeek: number; // 1 = Sunday
  dayOfMonth: number;
  month: number; // 1-12
  year: number; // full year
}

export interface CmosRtcOptions {
  /** Guest time since the machine started. Default: the host's monotonic clock. */
  clock?: GuestClock;
  /** Wall-clock time (Unix ms, UTC) at guest time 0. Default: the host's time now. */
  baseUnixMs?: number;
}

export class CmosRtc implements PioDevice {
  /** First of the two ports (index, data). */
  static readonly port = 0x70;
  readonly name = 'cmos-rtc';

  private readonly clock: GuestClock;
  private readonly baseUnixMs: number;
  /** Milliseconds the guest moved the clock by setting it. */
  private offsetMs = 0;
  private index = 0;
  private nmiDisabled = false;
  /** Registers 0x0E-0x7F are battery-backed RAM; the time registers are computed on read. */
  private readonly ram = new Uint8Array(128);
  private regA = A_DEFAULT;
  private regB = B_24H;
  /** While B.SET is on, the time the guest is writing (binary fields). */
  private pending: Fields | undefined;

  constructor(options: CmosRtcOptions = {}) {
    this.clock = options.clock ?? new RealTimeClock();
    this.baseUnixMs = options.baseUnixMs ?? Date.now();
  }

  /** Bit 7 of the last index write: the PC's NMI mask. */
  nmiMasked(): boolean {
    return this.nmiDisabled;
  }

  /** The time the RTC shows now, as Unix ms. */
  unixMs(): number {
    return this.baseUnixMs + this.clock.nowNs() / 1e6 + this.offsetMs;
  }

  pioRead(port: number, size: number): number {
    if (size !== 1) return size === 2 ? 0xffff : 0xffff_ffff; // byte-wide chip
    // The index register is write-only on a PC.
    return port === CmosRtc.port ? 0xff : this.readRegister(this.index);
  }

  pioWrite(port: number, size: number, value: number): void {
    if (size !== 1) return;
    if (port === CmosRtc.port) {
      this.index = value & 0x7f;
      this.nmiDisabled = (value & NMI_DISABLE) !== 0;
    } else {
      this.writeRegister(this.index, value & 0xff);
    }
  }

  private readRegister(reg: number): number {
    switch (reg) {
      case REG_A: {
        const intoSecond = ((this.unixMs() % 1000) + 1000) % 1000;
        const uip = !(this.regB & B_SET) && intoSecond * 1e6 >= 1e9 - UIP_WINDOW_NS;
        return this.regA | (uip ? A_UIP : 0);
      }
      case REG_B:
        return this.regB;
      case REG_C:
        return 0; // no interrupt flags: periodic/alarm/update interrupts are not modelled
      case REG_D:
        return D_VRT;
    }
    const fields = this.pending ?? fieldsOf(this.unixMs());
    switch (reg) {
      case SECONDS: return this.encode(fields.seconds);
      case MINUTES: return this.encode(fields.minutes);
      case HOURS: return this.encodeHours(fields.hours);
      case DAY_OF_WEEK: return this.encode(fields.dayOfWeek);
      case DAY_OF_MONTH: return this.encode(fields.dayOfMonth);
      case MONTH: return this.encode(fields.month);
      case YEAR: return this.encode(fields.year % 100);
      case CENTURY: return this.encode(Math.floor(fields.year / 100));
      case 0x01: case 0x03: case 0x05: // alarm registers: plain storage
      default:
        return this.ram[reg]!;
    }
  }

  private writeRegister(reg: number, value: number): void {
    switch (reg) {
      case REG_A:
        this.regA = value & 0x7f; // UIP is read-only
        return;
      case REG_B: {
        const wasSet = (this.regB & B_SET) !== 0;
        this.regB = value;
        if (value & B_SET && !wasSet) this.pending = fieldsOf(this.unixMs());
        if (!(value & B_SET) && wasSet && this.pending) {
          this.setTime(this.pending);
          this.pending = undefined;
        }
        return;
      }
      case REG_C:
      case REG_D:
        return; // read-only
    }
    const isTime = reg <= YEAR && reg !== 0x01 && reg !== 0x03 && reg !== 0x05;
    if (!isTime && reg !== CENTURY) {
      this.ram[reg] = value;
      return;
    }
    // Writing a time field with updates running applies it at once; under B.SET it waits.
    const fields = this.pending ?? fieldsOf(this.unixMs());
    switch (reg) {
      case SECONDS: fields.seconds = this.decode(value); break;
      case MINUTES: fields.minutes = this.decode(value); break;
      case HOURS: fields.hours = this.decodeHours(value); break;
      case DAY_OF_WEEK: fields.dayOfWeek = this.decode(value); break;
      case DAY_OF_MONTH: fields.dayOfMonth = this.decode(value); break;
      case MONTH: fields.month = this.decode(value); break;
      case YEAR: fields.year = fields.year - (fields.year % 100) + this.decode(value); break;
      case CENTURY: fields.year = this.decode(value) * 100 + (fields.year % 100); break;
    }
    if (!this.pending) this.setTime(fields);
  }

  private setTime(f: Fields): void {
    const target = Date.UTC(f.year, f.month - 1, f.dayOfMonth, f.hours, f.minutes, f.seconds);
    if (Number.isNaN(target)) return; // nonsense written by the guest: keep the old time
    // Keep the sub-second phase so the next second still ticks where the guest expects.
    const now = this.unixMs();
    this.offsetMs += target - (now - (((now % 1000) + 1000) % 1000));
  }

  private encode(n: number): number {
    return this.regB & B_BINARY ? n : ((n / 10) | 0) * 16 + (n % 10);
  }

  private decode(v: number): number {
    return this.regB & B_BINARY ? v : (v >> 4) * 10 + (v & 0x0f);
  }

  private encodeHours(h: number): number {
    if (this.regB & B_24H) return this.encode(h);
    const pm = h >= 12;
    const h12 = h % 12 === 0 ? 12 : h % 12;
    return this.encode(h12) | (pm ? 0x80 : 0);
  }

  private decodeHours(v: number): number {
    if (this.regB & B_24H) return this.decode(v);
    const h12 = this.decode(v & 0x7f) % 12;
    return v & 0x80 ? h12 + 12 : h12;
  }
}

function fieldsOf(unixMs: number): Fields {
  const d = new Date(Math.floor(unixMs));
  return {
    seconds: d.getUTCSeconds(),
    minutes: d.getUTCMinutes(),
    hours: d.getUTCHours(),
    dayOfWeek: d.getUTCDay() + 1,
    dayOfMonth: d.getUTCDate(),
    month: d.getUTCMonth() + 1,
    year: d.getUTCFullYear(),
  };
}
