// Builds a machine on the vCPU worker thread: a VM from the memory map, the Linux kernel loaded
// into it, the boot vCPU in its entry state, and the in-process platform devices on the I/O bus.
// A reset requested by the user reloads the kernel into the same VM, so device processes keep
// their mappings of guest RAM.
import type { Hypervisor, Vcpu, Vm } from '../hypervisors/backend.ts';
import { loadLinux, type LoadedLinux } from '../firmware/loader.ts';
import { GuestMemory } from '../base/guest-memory.ts';
import { KVM_IDENTITY_MAP, KVM_TSS, buildMemoryMap, type MemoryMap } from '../base/memory-map.ts';
import type { IoBus } from './io-bus.ts';
import { ByteRing } from './byte-ring.ts';
import { buildPlatformBus } from './platform.ts';
import type { MachineSpec } from './worker-protocol.ts';

export interface Machine {
  vm: Vm;
  vcpu: Vcpu;
  /** The in-process platform devices; replaced by reset(). */
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
    let platform = platformOf(vm, spec);
    const machine: Machine = {
      vm,
      vcpu,
      bus: platform.bus,
      memory,
      boot: loaded.summary,
      takeInput() {
        const bytes = serialIn.drain();
        if (bytes) platform.input(bytes);
      },
      resetRequested: () => platform.resetRequested(),
      reset() {
        platform = platformOf(vm, spec);
        machine.bus = platform.bus;
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

/** A fresh set of platform devices on a fresh bus, wired to this VM. */
function platformOf(vm: Vm, spec: MachineSpec) {
  const serialOut = new ByteRing(spec.serialOut);
  let serialInput: ((bytes: Uint8Array) => void) | undefined;
  let reset = false;
  const bus = buildPlatformBus({
    irq: (gsi) => ({ set: (level) => vm.setIrqLine(gsi, level) }),
    clock: vm.clock,
    deterministic: spec.deterministic,
    serialOutput: (bytes) => serialOut.push(bytes),
    onSerialInput: (receive) => { serialInput = receive; },
    reset: () => { reset = true; },
  });
  return { bus, input: (bytes: Uint8Array) => serialInput?.(bytes), resetRequested: () => reset };
}
