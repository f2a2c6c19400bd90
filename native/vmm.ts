// The VMM's one native module (tsvmm_vmm, native/src): what it exports, typed. Functions are
// thin: fds, vCPU slots and raw struct bytes in, numbers and ArrayBuffers out; a failing system
// call throws an Error like "KVM_CREATE_VM failed: EACCES (Permission denied)" with `code`,
// `errno` and `syscall` set (see NativeError). Its parts:
//   - fd I/O (wire/fd-io.ts), the same code the device processes' module has;
//   - guest RAM and slot state as memfds;
//   - the ioregion dispatch table: the plugin host fills it on the main thread, vCPU threads
//     dispatch through it (the KVM run loop in C++, the interpreter through ioregionDispatch);
//   - KVM: /dev/kvm, VM and vCPU ioctls, the run loop and kicks (hypervisors/kvm/ builds the
//     backend on them, docs/kvm.md).
import type { FdIo } from '../wire/fd-io.ts';
import { loadModule, modulePath } from './load.ts';

export { NativeModuleMissingError } from './load.ts';

export const VMM_MODULE_PATH = modulePath('tsvmm_vmm');

/** What the module throws when a system call or ioctl fails. */
export interface NativeError extends Error {
  /** errno name: 'EACCES', 'EEXIST', ... */
  code: string;
  errno: number;
  /** The ioctl or system call: 'KVM_CREATE_VM', 'open /dev/kvm', ... */
  syscall: string;
}

export function isNativeError(e: unknown): e is NativeError {
  return e instanceof Error && typeof (e as Partial<NativeError>).code === 'string' && typeof (e as Partial<NativeError>).errno === 'number';
}

/** ioregionDispatch results. */
export const DISPATCH_MISS = 0;
export const DISPATCH_HANDLED = 1;
export const DISPATCH_FAILED = 2;

export interface NativeVcpu {
  /** Index in the process-global vCPU table: what KickTokens carry. */
  slot: number;
  fd: number;
  /** The vCPU's mmap: struct kvm_run, then the PIO data page. Release with unmap() after destroyVcpu(). */
  run: ArrayBuffer;
}

export interface VmmNative extends FdIo {
  // ---- guest RAM and slot state
  /** `sealSize`: F_SEAL_SHRINK + F_SEAL_GROW, so whoever receives the fd cannot resize it. */
  memfdCreate(name: string, size: number, sealSize?: boolean): number;
  /** A read/write MAP_SHARED mapping as a SharedArrayBuffer (shareable with worker threads). */
  mapFdShared(fd: number, offset: number, size: number): SharedArrayBuffer;

  // ---- the ioregion dispatch table (process-wide)
  /** Takes ownership of `fd`, the VMM's end of a plugin's SOCK_SEQPACKET dispatch socket. */
  ioregionOpenChannel(fd: number): number;
  ioregionCloseChannel(channel: number): void;
  ioregionAdd(id: number, bus: number, start: number, size: number, userData: bigint, flags: number, channel: number): void;
  ioregionRemove(id: number): void;
  /** A software ioeventfd (backends without KVM_IOEVENTFD): the fd is duplicated. */
  ioeventfdAdd(id: number, bus: number, address: number, length: number, fd: number, datamatch?: bigint): void;
  ioeventfdRemove(id: number): void;
  /** DISPATCH_MISS: no plugin region here; DISPATCH_HANDLED; DISPATCH_FAILED: the plugin is gone (reads got all-ones). */
  ioregionDispatch(bus: number, address: number, size: number, write: boolean, data: Uint8Array): number;
  ioregionSetTimeout(ms: number): void;
  /** An eventfd signalled whenever a vCPU thread finds a plugin dead. */
  ioregionFailureFd(): number;
  ioregionTakeFailures(): { channel: number; reason: string }[];

  // ---- KVM: /dev/kvm
  openDevice(path?: string): number;
  getApiVersion(kvmFd: number): number;
  checkExtension(fd: number, cap: number): number;
  getVcpuMmapSize(kvmFd: number): number;
  /** nent × struct kvm_cpuid_entry2 (40 bytes each). */
  getSupportedCpuid(kvmFd: number): ArrayBuffer;
  createVm(kvmFd: number, type?: number): number;
  // ---- KVM: VM (any thread may issue these on the VM fd)
  setTssAddr(vmFd: number, address: number): void;
  setIdentityMapAddr(vmFd: number, address: number): void;
  createIrqchip(vmFd: number): void;
  createPit2(vmFd: number, flags?: number): void;
  /** `memory` must be a view of a mapFd() mapping; null deletes the slot. */
  setUserMemoryRegion(vmFd: number, slot: number, flags: number, guestPhys: number, memory: Uint8Array | null): void;
  irqLine(vmFd: number, irq: number, level: boolean): void;
  ioeventfd(vmFd: number, address: number, length: number, fd: number, flags: number, datamatch?: bigint): void;
  irqfd(vmFd: number, fd: number, gsi: number, flags?: number, resamplefd?: number): void;
  // ---- KVM: vCPU (named by slot; usable only on the thread that created it, except kick)
  createVcpu(vmFd: number, id: number, mmapSize: number): NativeVcpu;
  destroyVcpu(slot: number): void;
  getRegs(slot: number, out: Uint8Array): void;
  setRegs(slot: number, regs: Uint8Array): void;
  getSregs(slot: number, out: Uint8Array): void;
  setSregs(slot: number, sregs: Uint8Array): void;
  setCpuid2(slot: number, entries: Uint8Array): void;
  /** KVM_GET_MP_STATE: 0 runnable, 3 halted, ... */
  getMpState(slot: number): number;
  /**
   * KVM_RUN: the kvm_run exit_reason, or `runKicked` (-1). Blocks the calling thread. Exits that
   * hit the ioregion dispatch table are completed inside and never returned.
   */
  run(slot: number): number;
  readonly runKicked: number;
  /** From any thread. False when no vCPU is registered in the slot. */
  kick(slot: number): boolean;
  /** One-shot kick after `ms` milliseconds; 0 disarms. Owner thread only. */
  armKickTimer(slot: number, ms: number): void;
  readonly constants: {
    KVM_API_VERSION: number;
    sizeofKvmRun: number;
    sizeofKvmRegs: number;
    sizeofKvmSregs: number;
    sizeofKvmCpuidEntry2: number;
    offsetofExitReason: number;
    offsetofExitUnion: number;
    kickSignal: number;
  };
}

let loaded: VmmNative | undefined;

/** The module, loaded once per thread. Throws NativeModuleMissingError when it is not built. */
export function vmmNative(): VmmNative {
  return (loaded ??= loadModule('tsvmm_vmm') as VmmNative);
}

/**
 * Guest RAM that both worker threads (as a SharedArrayBuffer) and plugin processes (through the
 * memfd) can use: what a backend without its own memfd RAM (the interpreter) allocates so that
 * plugins can do DMA. The fd stays open for the life of the VM (plugins receive copies).
 */
export function sharedGuestRam(name: string, size: number): { fd: number; buffer: SharedArrayBuffer } {
  const n = vmmNative();
  const fd = n.memfdCreate(name, size);
  return { fd, buffer: n.mapFdShared(fd, 0, size) };
}
