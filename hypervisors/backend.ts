// The hypervisor backend interface: everything the VMM asks of a hypervisor, and nothing
// about which one is below. Two implementations: hypervisors/kvm (Linux KVM through the VMM's
// native module) and hypervisors/interp (a TypeScript x86 interpreter); backends.ts lists them.
//
// Threading model. A Vm and its Vcpus live on one thread: the vCPU worker thread
// (vmm/vcpu-worker.ts). `Vcpu.run()` is synchronous and blocks that thread (in KVM_RUN, or
// in the interpreter loop) until an exit the VMM must handle; the Node main thread never
// calls it. Other threads reach a running VM only through structured-clonable tokens the
// worker posts them: a vCPU's KickToken (kick.ts) and the VM's WiringToken (wiring.ts), which
// is how the main thread wires device plugins' ioeventfds and irqfds.
//
// Allocation-free exits. `run()` returns an ExitReason number and fills the vCPU's one
// reusable `exit` object; nothing is allocated per exit on the hot path.

// The x86 CPU state the interface speaks (registers, segments, CPUID) is plain data in
// base/cpu-state.ts, shared with the Linux loader that computes a kernel's entry state.
import type { CpuidEntry, Regs, Sregs } from '../base/cpu-state.ts';
import type { BusRange } from '../base/memory-map.ts';
import type { ImageArch } from '../firmware/images/recipe.ts';
export type { CpuidEntry, DescriptorTable, Regs, Segment, Sregs } from '../base/cpu-state.ts';

/** Why `Vcpu.run()` returned. Numeric so that the run loop switches on small integers. */
export const ExitReason = {
  /** Port I/O: exit.port/size/count/write/data. */
  Io: 1,
  /** Memory-mapped I/O to an address that is not RAM: exit.address/size/write/data. */
  Mmio: 2,
  /** HLT with interrupts disabled, or HLT where the backend has no in-kernel irqchip. */
  Hlt: 3,
  /** Triple fault or other CPU shutdown (a guest reset with `reboot=t`). */
  Shutdown: 4,
  /** The backend could not continue (emulation failure, bad state): exit.detail says why. */
  InternalError: 5,
  /** The vCPU was kicked (KickToken) and returned before or instead of running guest code. */
  Kicked: 6,
  /** The guest asked the platform to power off or reset (KVM_EXIT_SYSTEM_EVENT). */
  SystemEvent: 7,
} as const;
export type ExitReason = (typeof ExitReason)[keyof typeof ExitReason];

export const ExitReasonName: Record<ExitReason, string> = {
  1: 'io', 2: 'mmio', 3: 'hlt', 4: 'shutdown', 5: 'internal-error', 6: 'kicked', 7: 'system-event',
};

/**
 * Details of the last exit. One object per vCPU, overwritten by every `run()`.
 * For I/O and MMIO reads the VMM writes the value into `data` before the next `run()`;
 * the backend completes the guest's instruction with it.
 */
export interface VcpuExit {
  /** Port number (Io) or guest-physical address (Mmio). Exact below 2^53. */
  address: number;
  /** Bytes per access: 1, 2, 4 (and 8 for Mmio). */
  size: number;
  /** Repetitions of a string I/O instruction (INS/OUTS with REP); 1 otherwise. */
  count: number;
  write: boolean;
  /**
   * count × size bytes, little-endian: what the guest wrote, or where the VMM puts what the
   * guest reads. A view into backend memory (kvm_run for KVM); valid until the next run().
   */
  data: Uint8Array;
  /** Human-readable detail for InternalError, Shutdown and SystemEvent. */
  detail: string;
  /** SystemEvent type: 1 shutdown, 2 reset, 3 crash (KVM_SYSTEM_EVENT_*). */
  systemEvent: number;
}

export interface Capabilities {
  /** Interrupt controllers (PIC/IOAPIC/LAPIC) and PIT live inside the backend; HLT does not exit. */
  irqchip: boolean;
  /** Guest writes to a registered address signal an eventfd without an exit to the VMM. */
  ioeventfd: boolean;
  /** Writing an eventfd raises an interrupt line without going through the VMM. */
  irqfd: boolean;
  /** Guest user-mode and kernel-mode code run at hardware speed (false on this project's CI hosts). */
  nativeKernelMode: boolean;
}

/** One contiguous range of guest RAM, backed by a memfd so device processes can map it. */
export interface RamRegionSpec {
  guestPhys: number;
  size: number;
}

export interface RamRegion extends RamRegionSpec {
  /** The memfd backing this region (offset 0 = guestPhys); pass it to device processes. */
  fd: number;
  /** The host mapping of the region, shared with the guest. */
  bytes: Uint8Array;
}

export interface VmConfig {
  ram: readonly RamRegionSpec[];
  /** Guest-physical ranges KVM needs for itself on Intel (TSS, identity map); never RAM. */
  tssAddress: number;
  identityMapAddress: number;
  /**
   * Guest time derived from the instruction count instead of real time, so that two runs of the
   * same guest behave identically (`tsvmm run --deterministic`). Only backends that keep their
   * own guest clock (the interpreter) support it; the VMM refuses it for the others.
   */
  deterministic?: boolean;
}

/**
 * How another thread kicks a vCPU out of `run()`. Structured-clonable, so it can be posted
 * from the vCPU worker to the main thread; `kick(token)` in kick.ts acts on it.
 */
export type KickToken =
  | { backend: 'kvm'; slot: number }
  | { backend: 'interp'; control: SharedArrayBuffer };

/**
 * How another thread wires eventfds to a VM: structured-clonable like KickToken, posted from the
 * vCPU worker; `openWiring(token)` in wiring.ts turns it into a VmWiring on the receiving thread.
 *   kvm:    the VM fd: KVM_IOEVENTFD and KVM_IRQFD are VM-fd ioctls any thread may issue;
 *   interp: the VM's interrupt mailbox and its vCPU's kick word: ioeventfds go into the VMM
 *           module's dispatch table, irqfds are watched and pulsed through the mailbox.
 */
export type WiringToken =
  | { backend: 'kvm'; vmFd: number }
  | { backend: 'interp'; irqMailbox: SharedArrayBuffer; kick: KickToken & { backend: 'interp' } };

/**
 * A VM's ioeventfds and irqfds, usable from the thread that opened the token (the main thread,
 * where the plugin host runs), so wiring a plugin never has to interrupt the vCPU thread.
 */
export interface VmWiring {
  /** Doorbells and interrupts bypass the VMM entirely (KVM); plugins are told in VERSION. */
  readonly ioeventfdInKernel: boolean;
  readonly irqfdInKernel: boolean;
  /** Guest writes matching `spec` signal `spec.fd` without an exit to the VMM. */
  assignIoeventfd(spec: IoeventfdSpec): void;
  deassignIoeventfd(spec: IoeventfdSpec): void;
  /** Writes to `fd` pulse the interrupt line `gsi` (edge). */
  assignIrqfd(fd: number, gsi: number): void;
  deassignIrqfd(fd: number, gsi: number): void;
  /**
   * The VM is destroyed: assigning fails from now on, and deassigning only lets go of what this
   * side holds (on KVM nothing: the kernel dropped it with the VM, and the VM fd's number may
   * already name another file).
   */
  release(): void;
}

export interface IoeventfdSpec {
  /** Guest-physical address (MMIO) or port (PIO). */
  address: number;
  /** Access size to match: 1, 2, 4, 8, or 0 for any. */
  length: number;
  pio: boolean;
  /** Only writes of this value signal; undefined matches every value. */
  datamatch?: bigint;
  fd: number;
}

export interface Vcpu {
  readonly id: number;
  /** Filled by every `run()`; see VcpuExit. */
  readonly exit: VcpuExit;
  getRegs(): Regs;
  setRegs(regs: Regs): void;
  getSregs(): Sregs;
  setSregs(sregs: Sregs): void;
  setCpuid(entries: readonly CpuidEntry[]): void;
  /** Run guest code on the calling thread until an exit the VMM must handle. */
  run(): ExitReason;
  /**
   * Is the vCPU halted with interrupts disabled, so nothing but a reset can wake it? That is
   * where a guest kernel's power-off ends without ACPI. Backends whose HLT exits (Hlt) may
   * answer from that; KVM's in-kernel HLT never exits, so the VMM asks this after a kick.
   */
  haltedForGood(): boolean;
  kickToken(): KickToken;
}

export interface Vm {
  readonly ram: readonly RamRegion[];
  createVcpu(id: number): Vcpu;
  /**
   * The guest's clock, for backends that keep one (the interpreter: real time, or instruction
   * count with VmConfig.deterministic). The VMM's timed devices (the CMOS RTC) should follow it.
   * Undefined where the guest runs on the host's clock (KVM).
   */
  readonly clock?: { nowNs(): number };
  /** Set the level of an interrupt line (a GSI: 0-15 ISA IRQs through the PIC/IOAPIC). */
  setIrqLine(gsi: number, level: boolean): void;
  /** The token through which another thread wires ioeventfds and irqfds (after createVcpu). */
  wiring(): WiringToken;
  /**
   * The VMM rewrote guest memory behind the guest's back (a kernel reloaded for a reset):
   * backends that cache decoded guest code drop those caches. Nothing to do on KVM.
   */
  invalidateCodeCaches(): void;
  /** Release every resource (vCPUs, memory, fds). The Vm is unusable afterwards. */
  destroy(): void;
}

export interface Hypervisor {
  readonly name: BackendName;
  readonly capabilities: Capabilities;
  /** CPUID leaves this backend can present to a guest (KVM_GET_SUPPORTED_CPUID). */
  supportedCpuid(): CpuidEntry[];
  createVm(config: VmConfig): Vm;
}

export type BackendName = 'kvm' | 'interp';

/** What probing a backend found, before any VM exists. */
export interface BackendProbe {
  /** The backend can create and run VMs here. */
  available: boolean;
  /** A Linux guest runs usefully (KVM: guest kernel code runs at hardware speed). */
  runsLinux: boolean;
  /** For people: what was found and, when something is missing, how to fix it. */
  reason: string;
  /** What open() needs from the probe; structured-clonable, since it travels to the vCPU worker. */
  openOptions: unknown;
}

/**
 * A backend as the VMM sees it before opening it: the static facts the main thread needs to set
 * a machine up (decided here, never by comparing backend names), a probe, and how to open it on
 * the vCPU worker. Each backend's descriptor.ts holds one; backends.ts lists them.
 */
export interface BackendDescriptor {
  readonly name: BackendName;
  /** For messages: "KVM", "interpreter". */
  readonly title: string;
  /** The CPU is 64-bit: a kernel that can be entered in long mode is entered so. */
  readonly longMode: boolean;
  /**
   * HLT is handled inside the backend (an in-kernel irqchip), so a guest that halts for good
   * (Linux's power-off without ACPI) never exits: the VMM must ask Vcpu.haltedForGood() now and
   * then. Backends whose HLT with interrupts off exits (ExitReason.Hlt) need no polling.
   */
  readonly hltNeedsPolling: boolean;
  /** Guest time can follow the instruction count (VmConfig.deterministic, `--deterministic`). */
  readonly deterministicClock: boolean;
  /** Kernel command-line words a Linux guest needs on this backend's platform. */
  readonly kernelArgs: readonly string[];
  /** The built-in guest that suits this backend. */
  readonly guest: GuestFit;
  /** Ports and MMIO ranges the backend serves itself (in-kernel PIC, PIT, ...): nobody else may claim them. */
  readonly claims: readonly BusRange[];
  /** Whether and how well the backend runs here; cheap for backends that always do. */
  probe(): Promise<BackendProbe>;
  /** Open the backend (on the vCPU worker) with its probe's openOptions. */
  open(options: unknown): Promise<Hypervisor>;
}

/** Which of tsvmm's own guest images a backend boots. */
export interface GuestFit {
  /** The architectures it runs, preferred first. */
  archs: readonly ImageArch[];
  /** For messages: "32-bit x86". */
  cpu: string;
  /** bzImage through the boot protocol, or the uncompressed vmlinux (nothing to decompress). */
  kernel: 'bzImage' | 'vmlinux';
  /** gzip-compressed or raw cpio. */
  initrd: 'gzip' | 'raw';
  /** What a host needs for this backend, for advice ("on a host with hardware virtualization"). */
  needs?: string;
}
