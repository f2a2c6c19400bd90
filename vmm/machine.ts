// Builds a machine on the vCPU worker thread: a VM from the memory map, the Linux kernel loaded
// into it, the boot vCPU in its entry state, and the in-process platform devices on the I/O bus.
// A reset requested by the user reloads the kernel into the same VM, so device processes keep
// their mappings of guest RAM.
import type { Hypervisor, Vcpu, Vm } from '../hypervisors/backend.ts';
import { loadLinux, type LoadedLinux } from '../firmware/loader.ts';
import { Uart16550 } from '../devices/uart16550/uart16550.ts';
import { I8042 } from '../devices/i8042/i8042.ts';
import { CmosRtc } from '../devices/cmos-rtc/cmos-rtc.ts';
import { GuestMemory } from '../base/guest-memory.ts';
import { IoBus } from './io-bus.ts';
import { KVM_IDENTITY_MAP, KVM_TSS, buildMemoryMap, type MemoryMap } from '../base/memory-map.ts';
import { ByteRing } from './byte-ring.ts';
import type { MachineSpec } from './worker-protocol.ts';

export const COM1 = { port: 0x3f8, irq: 4 } as const;
/** What the CMOS RTC reads at boot with --deterministic (2026-01-01T00:00:00Z). */
export const DETERMINISTIC_EPOCH_MS = Date.UTC(2026, 0, 1);

/** Port ranges of the in-process devices; device plugins may not claim them. */
export const PLATFORM_PORTS: readonly { bus: 'pio'; start: number; size: number; name: string }[] = [
  { bus: 'pio', start: COM1.port, size: 8, name: 'ttyS0 (16550A)' },
  ...I8042.ports.map((start) => ({ bus: 'pio' as const, start, size: 1, name: 'i8042' })),
  { bus: 'pio', start: CmosRtc.port, size: 2, name: 'CMOS RTC' },
];

export interface Machine {
  vm: Vm;
  vcpu: Vcpu;
  /** The in-process devices; replaced by reset(). */
  bus: IoBus;
  memory: GuestMemory;
  /** One line for people: what was loaded and how it is entered. */
  boot: string;
  takeInput(): void;
  resetRequested(): boolean;
  /** Power-cycle in place: fresh devices, the kernel loaded again, the vCPU at its entry. */
  reset(): void;
  destroy(): void;
}

export function buildMachine(hv: Hypervisor, spec: MachineSpec): Machine {
  const map = buildMemoryMap(spec.memBytes);
  const vm = hv.createVm({
    ram: map.ram.map((r) => ({ guestPhys: r.start, size: r.size })),
    tssAddress: KVM_TSS.start,
    identityMapAddress: KVM_IDENTITY_MAP.start,
    deterministic: spec.deterministic,
  });
  try {
    const memory = new GuestMemory(vm.ram.map((r) => ({ guestPhys: r.guestPhys, bytes: r.bytes })));
    const loaded = load(memory, map, spec);
    const vcpu = vm.createVcpu(0);
    vcpu.setCpuid(hv.supportedCpuid());
    enter(vcpu, loaded);
    const serialIn = new ByteRing(spec.serialIn);
    let devices = platformDevices(vm, spec);
    const machine: Machine = {
      vm,
      vcpu,
      bus: devices.bus,
      memory,
      boot: loaded.summary,
      takeInput() {
        const bytes = serialIn.drain();
        if (bytes) devices.uart.receive(bytes);
      },
      resetRequested: () => devices.resetLine(),
      reset() {
        devices = platformDevices(vm, spec);
        machine.bus = devices.bus;
        enter(vcpu, load(memory, map, spec));
        vm.invalidateCodeCaches();
      },
      destroy: () => vm.destroy(),
    };
    return machine;
  } catch (e) {
    vm.destroy();
    throw e;
  }
}

function load(memory: GuestMemory, map: MemoryMap, spec: MachineSpec): LoadedLinux {
  return loadLinux({ memory, map, kernel: spec.kernel, initrd: spec.initrd, cmdline: spec.cmdline, longMode: spec.longMode });
}

function enter(vcpu: Vcpu, loaded: LoadedLinux): void {
  vcpu.setSregs(loaded.sregs);
  vcpu.setRegs(loaded.regs);
}

function platformDevices(vm: Vm, spec: MachineSpec) {
  const serialOut = new ByteRing(spec.serialOut);
  const bus = new IoBus();
  const uart = new Uart16550({
    irq: { set: (level) => vm.setIrqLine(COM1.irq, level) },
    output: (bytes) => serialOut.push(bytes),
  });
  bus.addPio(COM1.port, 8, uart);
  let reset = false;
  const i8042 = new I8042({ onReset: () => { reset = true; } });
  for (const port of I8042.ports) bus.addPio(port, 1, i8042);
  // The RTC follows the backend's guest clock where it has one (the interpreter's may run on
  // the instruction count); with --deterministic it also starts at a fixed date.
  const rtc = new CmosRtc({ clock: vm.clock, baseUnixMs: spec.deterministic ? DETERMINISTIC_EPOCH_MS : undefined });
  bus.addPio(CmosRtc.port, 2, rtc);
  return { bus, uart, resetLine: () => reset };
}
