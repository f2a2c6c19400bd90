// The PC/AT keyboard controller (Intel 8042) at ports 0x60 (data) and 0x64 (status/command),
// with no keyboard or mouse attached. What it is for:
// - the reset line: command 0xFE (pulse output port bit 0), or writing the output port with
//   bit 0 clear (command 0xD1), resets the CPU. Linux's BOOT_KBD reboot does the former.
// - a controller that answers Linux's i8042 driver probe quickly instead of timing out:
//   self-test (0xAA -> 0x55), the command byte (0x20/0x60), interface tests, AUX loopback
//   (0xD3), and "no device" (timeout status + 0xFF) for bytes sent to the absent keyboard or mouse.
// Commands complete instantly, so the input buffer is never full (status bit 1 stays clear):
// the kb_wait()/empty_8042() polling loops end at once.
//
// Port 0x61 (speaker, PIT channel 2 gate, NMI status) is not part of the 8042; the PIT model
// owns it.

import type { IrqLine, PioDevice } from '../device.ts';

const DATA_PORT = 0x60;
const STATUS_PORT = 0x64;

const STATUS_OBF = 0x01; // output buffer full
const STATUS_SYS = 0x04; // system flag: self-test passed
const STATUS_CMD = 0x08; // last write was to the command port
const STATUS_UNLOCKED = 0x10; // keyboard inhibit switch off
const STATUS_AUX_OBF = 0x20; // the byte in the output buffer is from the mouse
const STATUS_TIMEOUT = 0x40;

const CTR_KBD_INT = 0x01;
const CTR_AUX_INT = 0x02;
const CTR_SYS = 0x04;
const CTR_KBD_DISABLE = 0x10;
const CTR_AUX_DISABLE = 0x20;
const CTR_XLATE = 0x40;

const OUTPUT_PORT_RESET = 0x01; // low = CPU reset asserted
const OUTPUT_PORT_A20 = 0x02;

export interface I8042Options {
  /** Called when the guest pulses the CPU reset line. */
  onReset: () => void;
  /** IRQ 1: raised while a keyboard-channel byte waits and the command byte enables it. */
  kbdIrq?: IrqLine;
  /** IRQ 12: the same for the mouse channel. */
  auxIrq?: IrqLine;
}

export class I8042 implements PioDevice {
  /** The ports it decodes (each one byte wide). */
  static readonly ports: readonly number[] = [DATA_PORT, STATUS_PORT];
  readonly name = 'i8042';

  private readonly onReset: () => void;
  private readonly kbdIrq: IrqLine | undefined;
  private readonly auxIrq: IrqLine | undefined;

  private status = STATUS_SYS | STATUS_UNLOCKED;
  // What a PC BIOS leaves: keyboard interrupt on, system flag, scancode translation.
  private ctr = CTR_KBD_INT | CTR_SYS | CTR_XLATE;
  private outputPort = OUTPUT_PORT_RESET | OUTPUT_PORT_A20;
  private outputBuffer = 0;
  /** The command whose data byte the next write to port 0x60 supplies. */
  private pendingCommand = 0;
  private kbdLevel = false;
  private auxLevel = false;

  constructor(options: I8042Options) {
    this.onReset = options.onReset;
    this.kbdIrq = options.kbdIrq;
    this.auxIrq = options.auxIrq;
  }

  /** Whether the A20 gate is open (output port bit 1). */
  a20Enabled(): boolean {
    return (this.outputPort & OUTPUT_PORT_A20) !== 0;
  }

  pioRead(port: number, size: number): number {
    if (size !== 1) return size === 2 ? 0xffff : 0xffff_ffff;
    if (port === STATUS_PORT) return this.status;
    // Reading the data port empties the output buffer; an empty one reads the last byte again.
    this.status &= ~(STATUS_OBF | STATUS_AUX_OBF | STATUS_TIMEOUT);
    this.updateIrqs();
    return this.outputBuffer;
  }

  pioWrite(port: number, size: number, value: number): void {
    if (size !== 1) return;
    value &= 0xff;
    if (port === STATUS_PORT) {
      this.status |= STATUS_CMD;
      this.command(value);
    } else {
      this.status &= ~STATUS_CMD;
      this.data(value);
    }
  }

  private command(cmd: number): void {
    this.pendingCommand = 0;
    switch (cmd) {
      case 0x20: // read command byte
        this.reply(this.ctr);
        return;
      case 0x60: // write command byte
      case 0xd1: // write output port
      case 0xd2: // write keyboard output buffer
      case 0xd3: // write AUX output buffer (loopback)
      case 0xd4: // write to the AUX device
        this.pendingCommand = cmd;
        return;
      case 0xa7: // disable AUX
        this.ctr |= CTR_AUX_DISABLE;
        return;
      case 0xa8: // enable AUX
        this.ctr &= ~CTR_AUX_DISABLE;
        return;
      case 0xa9: // AUX interface test: 0 = ok
      case 0xab: // keyboard interface test: 0 = ok
        this.reply(0x00);
        return;
      case 0xaa: // controller self-test
        this.status |= STATUS_SYS;
        this.reply(0x55);
        return;
      case 0xad: // disable keyboard
        this.ctr |= CTR_KBD_DISABLE;
        return;
      case 0xae: // enable keyboard
        this.ctr &= ~CTR_KBD_DISABLE;
        return;
      case 0xd0: // read output port
        this.reply(this.outputPort);
        return;
    }
    // 0xF0-0xFF pulse the output port bits whose mask bit (low nibble) is 0; bit 0 is reset.
    if (cmd >= 0xf0 && !(cmd & 0x01)) this.onReset();
  }

  private data(value: number): void {
    const cmd = this.pendingCommand;
    this.pendingCommand = 0;
    switch (cmd) {
      case 0x60:
        this.ctr = value;
        this.status = (this.status & ~STATUS_SYS) | (value & CTR_SYS);
        this.updateIrqs();
        return;
      case 0xd1:
        this.outputPort = value;
        if (!(value & OUTPUT_PORT_RESET)) this.onReset();
        return;
      case 0xd2:
        this.reply(value);
        return;
      case 0xd3:
        this.reply(value, true);
        return;
      case 0xd4: // to the mouse, which is absent
        this.noDevice(true);
        return;
      default: // to the keyboard, which is absent
        this.noDevice(false);
    }
  }

  /** A byte sent to an absent device times out: the controller reports 0xFF with TIMEOUT. */
  private noDevice(aux: boolean): void {
    this.reply(0xff, aux);
    this.status |= STATUS_TIMEOUT;
  }

  private reply(value: number, aux = false): void {
    this.outputBuffer = value;
    this.status = (this.status & ~STATUS_AUX_OBF) | STATUS_OBF | (aux ? STATUS_AUX_OBF : 0);
    this.updateIrqs();
  }

  private updateIrqs(): void {
    const full = (this.status & STATUS_OBF) !== 0;
    const aux = (this.status & STATUS_AUX_OBF) !== 0;
    const kbd = full && !aux && (this.ctr & CTR_KBD_INT) !== 0;
    const mouse = full && aux && (this.ctr & CTR_AUX_INT) !== 0;
    if (kbd !== this.kbdLevel) {
      this.kbdLevel = kbd;
      this.kbdIrq?.set(kbd);
    }
    if (mouse !== this.auxLevel) {
      this.auxLevel = mouse;
      this.auxIrq?.set(mouse);
    }
  }
}
