// The in-process platform: every device the VMM itself answers for, as one declarative list —
// what it is, where it answers, and how it is made. The vCPU worker builds its I/O bus from the
// list (buildPlatformBus); the plugin host's region registry reserves the same ranges
// (platformRanges), so no plugin can claim them. Adding an in-process device is one entry here
// (docs/architecture.md).
//
// The last two entries are the device plugins' slots: accesses there go to the VMM module's
// dispatch table, which the plugin host fills (on KVM the run loop completes most of them in C++
// before they reach the bus at all).
import type { Bus, BusRange } from '../base/memory-map.ts';
import { DEVICE_WINDOW } from '../base/memory-map.ts';
import { PIO_SLOT_WINDOW } from '../base/slots.ts';
import type { GuestClock } from '../devices/clock.ts';
import type { IrqLine, MmioDevice, PioDevice } from '../devices/device.ts';
import { CmosRtc } from '../devices/cmos-rtc/cmos-rtc.ts';
import { I8042 } from '../devices/i8042/i8042.ts';
import { Uart16550 } from '../devices/uart16550/uart16550.ts';
import { IoBus, type ExitDispatcher } from './io-bus.ts';
import { pluginDispatcher } from './plugin-host/dispatch.ts';

/** What a platform device may use of the machine it is built into. */
export interface PlatformContext {
  /** Interrupt line `gsi` of the VM. */
  irq(gsi: number): IrqLine;
  /** The backend's guest clock where it keeps one (the interpreter's); undefined: host time. */
  clock: GuestClock | undefined;
  /** `--deterministic`: guest time from the instruction count, the RTC at a fixed date. */
  deterministic: boolean;
  /** The guest's serial console (ttyS0): its output, and where keystrokes for it arrive. */
  serialOutput(bytes: Uint8Array): void;
  onSerialInput(receive: (bytes: Uint8Array) => void): void;
  /** Pulse the platform's reset line (the machine resets). */
  reset(): void;
}

/** One list entry: a device at one or more ranges of one bus. */
export type PlatformDevice =
  | { name: string; bus: 'pio'; ranges: readonly Range[]; create(ctx: PlatformContext): PioDevice }
  | { name: string; bus: 'mmio'; ranges: readonly Range[]; create(ctx: PlatformContext): MmioDevice }
  | { name: string; bus: Bus; ranges: readonly Range[]; plugins: true; create(): ExitDispatcher };

interface Range {
  start: number;
  size: number;
}

const COM1 = { port: 0x3f8, irq: 4 } as const;
/** What the CMOS RTC reads at boot with --deterministic (2026-01-01T00:00:00Z). */
export const DETERMINISTIC_EPOCH_MS = Date.UTC(2026, 0, 1);

export const PLATFORM_DEVICES: readonly PlatformDevice[] = [
  {
    name: 'ttyS0 (16550A)', bus: 'pio', ranges: [{ start: COM1.port, size: 8 }],
    create(ctx) {
      const uart = new Uart16550({ irq: ctx.irq(COM1.irq), output: (bytes) => ctx.serialOutput(bytes) });
      ctx.onSerialInput((bytes) => uart.receive(bytes));
      return uart;
    },
  },
  {
    name: 'i8042', bus: 'pio', ranges: I8042.ports.map((start) => ({ start, size: 1 })),
    create: (ctx) => new I8042({ onReset: () => ctx.reset() }),
  },
  {
    // It follows the backend's guest clock where there is one (the interpreter's may run on the
    // instruction count); with --deterministic it also starts at a fixed date.
    name: 'CMOS RTC', bus: 'pio', ranges: [{ start: CmosRtc.port, size: 2 }],
    create: (ctx) => new CmosRtc({ clock: ctx.clock, baseUnixMs: ctx.deterministic ? DETERMINISTIC_EPOCH_MS : undefined }),
  },
  { name: 'device plugin slots (MMIO)', bus: 'mmio', ranges: [DEVICE_WINDOW], plugins: true, create: () => pluginDispatcher },
  { name: 'device plugin slots (ports)', bus: 'pio', ranges: [PIO_SLOT_WINDOW], plugins: true, create: () => pluginDispatcher },
];

/** The ranges the platform devices answer, for the region registry (the plugin slots are the plugins'). */
export function platformRanges(devices: readonly PlatformDevice[] = PLATFORM_DEVICES): BusRange[] {
  return devices.filter((d) => !('plugins' in d)).flatMap((d) => d.ranges.map((r) => ({ bus: d.bus, start: r.start, size: r.size, name: d.name })));
}

/** A fresh bus with a fresh instance of every device (at machine start and at each reset). */
export function buildPlatformBus(ctx: PlatformContext, devices: readonly PlatformDevice[] = PLATFORM_DEVICES): IoBus {
  const bus = new IoBus();
  for (const d of devices) {
    if ('plugins' in d) {
      const dispatcher = d.create();
      for (const r of d.ranges) bus.addDispatcher(d.bus, r.start, r.size, dispatcher);
    } else if (d.bus === 'pio') {
      const device = d.create(ctx);
      for (const r of d.ranges) bus.addPio(r.start, r.size, device);
    } else {
      const device = d.create(ctx);
      for (const r of d.ranges) bus.addMmio(r.start, r.size, device);
    }
  }
  return bus;
}
