// The KVM backend: hypervisors/backend.ts on Linux KVM, through the native addon (addon.ts).
//
// Threads. A KvmVm and its vCPUs belong to the thread that created them, normally the vCPU
// worker: Vcpu.run() blocks that thread in KVM_RUN, so it is never called on the Node main
// thread (whose event loop must keep serving consoles, sockets and timers). Other threads stop
// a running vCPU with kick(vcpu.kickToken()) from hypervisors/kick.ts.
//
// Exits without allocation. kvm_run is mapped once per vCPU and read through one DataView;
// the exit object is reused, and the data views handed out for I/O are cached, so a typical
// port or MMIO exit costs one native call and a few DataView reads.
import {
  ExitReason, type Capabilities, type CpuidEntry, type Hypervisor, type IoeventfdSpec, type KickToken,
  type RamRegion, type Regs, type Sregs, type Vcpu, type VcpuExit, type Vm, type VmConfig, type WiringToken,
} from '../backend.ts';
import { loadKvmAddon, RUN_KICKED, type KvmAddon } from './addon.ts';
import { measureKernelMode, runsKernelNatively, type KernelModeRates } from './kernel-mode.ts';
import { decodeCpuid, decodeRegs, decodeSregs, encodeCpuid, encodeRegs, encodeSregs, REGS_SIZE, SREGS_SIZE } from './structs.ts';
import { KvmCap, KvmExit } from './uapi.ts';
import { KvmWiring } from './wiring.ts';

const EXIT_NAMES: Record<number, string> = Object.fromEntries(Object.entries(KvmExit).map(([k, v]) => [v, `KVM_EXIT_${k}`]));
const INTERNAL_SUBERRORS: Record<number, string> = {
  1: 'emulation failure', 2: 'exception while delivering an exception', 3: 'failed to deliver an event',
  4: 'unexpected exit reason',
};

/** The largest RAM chunk one memory slot (and one ArrayBuffer) holds; bigger regions are split. */
export const MAX_RAM_CHUNK = 4 * 1024 * 1024 * 1024;

export class KvmUnavailableError extends Error {}

export interface OpenKvmOptions {
  /** Device path; /dev/kvm by default. */
  path?: string;
  /**
   * The probe's verdict, when the caller already has it (the VMM probes once on the main
   * thread and passes it to the vCPU worker). Otherwise capabilities.nativeKernelMode is
   * measured (kernelModeRates) the first time it is read.
   */
  nativeKernelMode?: boolean;
}

// One /dev/kvm fd per thread and path is enough for any number of VMs.
const deviceFds = new Map<string, number>();
// Measured once per thread and path: the probe and capabilities.nativeKernelMode agree.
const measuredRates = new Map<string, KernelModeRates>();

/** Opens KVM and checks what the backend relies on (API 12, immediate_exit for kicks). */
export function openKvm(options: OpenKvmOptions = {}): KvmHypervisor {
  const addon = loadKvmAddon();
  const path = options.path ?? '/dev/kvm';
  let fd = deviceFds.get(path);
  if (fd === undefined) {
    fd = addon.openDevice(path);
    const version = addon.getApiVersion(fd);
    if (version !== addon.constants.KVM_API_VERSION) {
      addon.closeFd(fd);
      throw new KvmUnavailableError(`${path} speaks KVM API version ${version}; tsvmm needs ${addon.constants.KVM_API_VERSION}`);
    }
    if (addon.checkExtension(fd, KvmCap.immediateExit) === 0) {
      addon.closeFd(fd);
      throw new KvmUnavailableError(`this kernel's KVM lacks KVM_CAP_IMMEDIATE_EXIT (Linux 4.11+), which tsvmm needs to stop vCPUs`);
    }
    deviceFds.set(path, fd);
  }
  return new KvmHypervisor(addon, fd, path, options.nativeKernelMode);
}

export class KvmHypervisor implements Hypervisor {
  readonly name = 'kvm' as const;
  readonly capabilities: Capabilities;

  constructor(private readonly addon: KvmAddon, readonly fd: number, private readonly path: string, nativeKernelMode: boolean | undefined) {
    const has = (cap: number) => addon.checkExtension(fd, cap) > 0;
    let native = nativeKernelMode;
    const measure = () => {
      try {
        return runsKernelNatively(this.kernelModeRates());
      } catch {
        return false; // a KVM that cannot run the measuring loop runs no kernel natively either
      }
    };
    this.capabilities = {
      irqchip: has(KvmCap.irqchip) && has(KvmCap.pit2),
      ioeventfd: has(KvmCap.ioeventfd),
      irqfd: has(KvmCap.irqfd),
      // Measuring takes a VM and ~0.1 s, so only when someone asks.
      get nativeKernelMode() { return (native ??= measure()); },
    };
  }

  /** How fast guest kernel-mode code runs here against user-mode code (kernel-mode.ts), measured once. */
  kernelModeRates(): KernelModeRates {
    let rates = measuredRates.get(this.path);
    if (!rates) {
      rates = measureKernelMode(this);
      measuredRates.set(this.path, rates);
    }
    return rates;
  }

  supportedCpuid(): CpuidEntry[] {
    return decodeCpuid(new Uint8Array(this.addon.getSupportedCpuid(this.fd)));
  }

  createVm(config: VmConfig): KvmVm {
    return new KvmVm(this.addon, this.fd, config);
  }
}

export class KvmVm implements Vm {
  readonly fd: number;
  readonly ram: RamRegion[] = [];
  private readonly vcpus = new Set<KvmVcpu>();
  private readonly eventfds: KvmWiring;
  private readonly ramBuffers: ArrayBuffer[] = [];
  private destroyed = false;

  constructor(private readonly addon: KvmAddon, private readonly kvmFd: number, config: VmConfig) {
    this.fd = addon.createVm(kvmFd);
    this.eventfds = new KvmWiring(this.fd);
    try {
      if (addon.checkExtension(this.fd, KvmCap.setTssAddr) > 0) addon.setTssAddr(this.fd, config.tssAddress);
      // Before any vCPU exists, or KVM refuses it.
      if (addon.checkExtension(this.fd, KvmCap.setIdentityMapAddr) > 0) addon.setIdentityMapAddr(this.fd, config.identityMapAddress);
      addon.createIrqchip(this.fd);
      addon.createPit2(this.fd);
      let slot = 0;
      for (const spec of config.ram) {
        for (let offset = 0; offset < spec.size; offset += MAX_RAM_CHUNK) {
          this.addRam(slot++, spec.guestPhys + offset, Math.min(MAX_RAM_CHUNK, spec.size - offset));
        }
      }
    } catch (e) {
      this.destroy();
      throw e;
    }
  }

  private addRam(slot: number, guestPhys: number, size: number): void {
    const fd = this.addon.memfdCreate(`tsvmm-ram@${guestPhys.toString(16)}`, size);
    let buffer: ArrayBuffer;
    try {
      buffer = this.addon.mapFd(fd, 0, size, true);
    } catch (e) {
      this.addon.closeFd(fd);
      throw e;
    }
    const bytes = new Uint8Array(buffer);
    this.ramBuffers.push(buffer);
    this.ram.push({ guestPhys, size, fd, bytes });
    this.addon.setUserMemoryRegion(this.fd, slot, 0, guestPhys, bytes);
  }

  createVcpu(id: number): KvmVcpu {
    this.checkAlive();
    const vcpu = new KvmVcpu(this.addon, this.addon.createVcpu(this.fd, id, this.addon.getVcpuMmapSize(this.kvmFd)), id);
    this.vcpus.add(vcpu);
    return vcpu;
  }

  setIrqLine(gsi: number, level: boolean): void {
    this.addon.irqLine(this.fd, gsi, level);
  }

  /** The VM fd: KVM_IOEVENTFD and KVM_IRQFD from any thread (KvmWiring). */
  wiring(): WiringToken {
    return { backend: 'kvm', vmFd: this.fd };
  }

  /** This VM's own ioeventfds and irqfds, on the thread that owns it (tests, benchmarks). */
  assignIoeventfd(spec: IoeventfdSpec): void {
    this.eventfds.assignIoeventfd(spec);
  }

  deassignIoeventfd(spec: IoeventfdSpec): void {
    this.eventfds.deassignIoeventfd(spec);
  }

  assignIrqfd(fd: number, gsi: number): void {
    this.eventfds.assignIrqfd(fd, gsi);
  }

  deassignIrqfd(fd: number, gsi: number): void {
    this.eventfds.deassignIrqfd(fd, gsi);
  }

  /** KVM executes guest memory as it is: there is no cache of decoded code to drop. */
  invalidateCodeCaches(): void {}

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const vcpu of this.vcpus) vcpu.destroy();
    this.vcpus.clear();
    // The VM fd first: KVM then drops its references to guest RAM before we unmap it.
    this.addon.closeFd(this.fd);
    for (const buffer of this.ramBuffers) this.addon.unmap(buffer);
    for (const region of this.ram) this.addon.closeFd(region.fd);
    this.ramBuffers.length = 0;
  }

  private checkAlive(): void {
    if (this.destroyed) throw new Error('this VM has been destroyed');
  }
}

// kvm_run offsets (struct kvm_run, see ../../../shared/reference/kvm-x86.md).
const RUN_EXIT = 32;
const IO_DIRECTION = RUN_EXIT;        // u8: 0 in, 1 out
const IO_SIZE = RUN_EXIT + 1;         // u8
const IO_PORT = RUN_EXIT + 2;         // u16
const IO_COUNT = RUN_EXIT + 4;        // u32
const IO_DATA_OFFSET = RUN_EXIT + 8;  // u64, from the start of the mapping
const MMIO_PHYS_ADDR = RUN_EXIT;      // u64
const MMIO_DATA = RUN_EXIT + 8;       // u8[8]
const MMIO_LEN = RUN_EXIT + 16;       // u32
const MMIO_IS_WRITE = RUN_EXIT + 20;  // u8

export class KvmVcpu implements Vcpu {
  readonly exit: VcpuExit = { address: 0, size: 0, count: 0, write: false, data: new Uint8Array(0), detail: '', systemEvent: 0 };
  readonly slot: number;
  readonly fd: number;
  private readonly runBuffer: ArrayBuffer;
  private readonly run8: Uint8Array;
  private readonly runView: DataView;
  // MMIO data views by access length (1..8): the data field never moves.
  private readonly mmioViews: Uint8Array[];
  // The last port-I/O data view; single (non-string) accesses always reuse it.
  private ioView: Uint8Array;
  private ioOffset = -1;
  private readonly scratchRegs = new Uint8Array(REGS_SIZE);
  private readonly scratchSregs = new Uint8Array(SREGS_SIZE);
  private destroyed = false;

  constructor(private readonly addon: KvmAddon, native: { slot: number; fd: number; run: ArrayBuffer }, readonly id: number) {
    this.slot = native.slot;
    this.fd = native.fd;
    this.runBuffer = native.run;
    this.run8 = new Uint8Array(native.run);
    this.runView = new DataView(native.run);
    this.mmioViews = Array.from({ length: 9 }, (_, len) => this.run8.subarray(MMIO_DATA, MMIO_DATA + len));
    this.ioView = this.run8.subarray(0, 0);
  }

  getRegs(): Regs {
    this.addon.getRegs(this.slot, this.scratchRegs);
    return decodeRegs(this.scratchRegs);
  }

  setRegs(regs: Regs): void {
    encodeRegs(regs, this.scratchRegs);
    this.addon.setRegs(this.slot, this.scratchRegs);
  }

  getSregs(): Sregs {
    this.addon.getSregs(this.slot, this.scratchSregs);
    return decodeSregs(this.scratchSregs);
  }

  setSregs(sregs: Sregs): void {
    // Read first so the pending-interrupt bitmap, which Sregs does not carry, is preserved.
    this.addon.getSregs(this.slot, this.scratchSregs);
    encodeSregs(sregs, this.scratchSregs);
    this.addon.setSregs(this.slot, this.scratchSregs);
  }

  setCpuid(entries: readonly CpuidEntry[]): void {
    this.addon.setCpuid2(this.slot, encodeCpuid(entries));
  }

  haltedForGood(): boolean {
    const KVM_MP_STATE_HALTED = 3;
    const IF = 0x200n;
    return this.addon.getMpState(this.slot) === KVM_MP_STATE_HALTED && (this.getRegs().rflags & IF) === 0n;
  }

  run(): ExitReason {
    const reason = this.addon.run(this.slot);
    const exit = this.exit;
    const v = this.runView;
    switch (reason) {
      case KvmExit.IO: {
        const size = v.getUint8(IO_SIZE);
        const count = v.getUint32(IO_COUNT, true);
        const offset = v.getUint32(IO_DATA_OFFSET, true);
        const length = size * count;
        if (offset !== this.ioOffset || length !== this.ioView.length) {
          this.ioView = this.run8.subarray(offset, offset + length);
          this.ioOffset = offset;
        }
        exit.address = v.getUint16(IO_PORT, true);
        exit.size = size;
        exit.count = count;
        exit.write = v.getUint8(IO_DIRECTION) === 1;
        exit.data = this.ioView;
        exit.detail = '';
        return ExitReason.Io;
      }
      case KvmExit.MMIO: {
        const length = v.getUint32(MMIO_LEN, true);
        // Two halves instead of getBigUint64: no BigInt allocated per exit.
        exit.address = v.getUint32(MMIO_PHYS_ADDR + 4, true) * 0x1_0000_0000 + v.getUint32(MMIO_PHYS_ADDR, true);
        exit.size = length;
        exit.count = 1;
        exit.write = v.getUint8(MMIO_IS_WRITE) !== 0;
        exit.data = this.mmioViews[length] ?? this.mmioViews[8]!;
        exit.detail = '';
        return ExitReason.Mmio;
      }
      case RUN_KICKED:
        exit.detail = '';
        return ExitReason.Kicked;
      case KvmExit.HLT:
        exit.detail = '';
        return ExitReason.Hlt;
      case KvmExit.SHUTDOWN:
        exit.detail = 'the vCPU shut down (triple fault)';
        return ExitReason.Shutdown;
      case KvmExit.SYSTEM_EVENT:
        exit.systemEvent = v.getUint32(RUN_EXIT, true);
        exit.detail = `KVM_EXIT_SYSTEM_EVENT type ${exit.systemEvent} (${['', 'shutdown', 'reset', 'crash', 'wakeup', 'suspend', 'SEV termination'][exit.systemEvent] ?? 'unknown'})`;
        return ExitReason.SystemEvent;
      case KvmExit.INTERNAL_ERROR:
        exit.detail = this.internalErrorDetail();
        return ExitReason.InternalError;
      case KvmExit.FAIL_ENTRY:
        exit.detail = `KVM_EXIT_FAIL_ENTRY: the CPU refused to enter the guest (hardware reason 0x${v.getBigUint64(RUN_EXIT, true).toString(16)}); the vCPU state is invalid`;
        return ExitReason.InternalError;
      case KvmExit.UNKNOWN:
        exit.detail = `KVM_EXIT_UNKNOWN (hardware exit reason 0x${v.getBigUint64(RUN_EXIT, true).toString(16)})`;
        return ExitReason.InternalError;
      default:
        exit.detail = `unexpected exit ${EXIT_NAMES[reason] ?? reason} (tsvmm does not enable it)`;
        return ExitReason.InternalError;
    }
  }

  private internalErrorDetail(): string {
    const v = this.runView;
    const suberror = v.getUint32(RUN_EXIT, true);
    const ndata = Math.min(v.getUint32(RUN_EXIT + 4, true), 16);
    const data = Array.from({ length: ndata }, (_, i) => `0x${v.getBigUint64(RUN_EXIT + 8 + i * 8, true).toString(16)}`);
    let rip = '';
    try {
      rip = ` at rip 0x${this.getRegs().rip.toString(16)}`;
    } catch { /* the state may be unreadable; the suberror is what matters */ }
    return `KVM_EXIT_INTERNAL_ERROR: ${INTERNAL_SUBERRORS[suberror] ?? 'suberror'} (${suberror})${rip}` +
      (data.length ? `, data [${data.join(', ')}]` : '');
  }

  kickToken(): KickToken {
    return { backend: 'kvm', slot: this.slot };
  }

  /** Kick this vCPU after `ms` milliseconds (0 disarms): a bound for runs that must not hang. */
  armKickTimer(ms: number): void {
    this.addon.armKickTimer(this.slot, ms);
  }

  /** Closes the vCPU. Called by KvmVm.destroy(); on its own only by the owning thread. */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.addon.destroyVcpu(this.slot);
    this.addon.unmap(this.runBuffer);
  }
}
