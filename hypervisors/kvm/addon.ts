// The native KVM addon (src/, built by `npm install` through node-gyp) and its TypeScript types.
// Functions are thin: fds, vCPU slots and raw struct bytes in, numbers and ArrayBuffers out; a
// failing ioctl throws an Error like "KVM_CREATE_VM failed: EACCES (Permission denied)" with
// `code`, `errno` and `syscall` set (see KvmError). kvm.ts builds the backend interface on it.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** What the addon throws when a system call or ioctl fails. */
export interface KvmError extends Error {
  /** errno name: 'EACCES', 'EEXIST', ... */
  code: string;
  errno: number;
  /** The ioctl or system call: 'KVM_CREATE_VM', 'open /dev/kvm', ... */
  syscall: string;
}

export function isKvmError(e: unknown): e is KvmError {
  return e instanceof Error && typeof (e as Partial<KvmError>).code === 'string' && typeof (e as Partial<KvmError>).errno === 'number';
}

export interface NativeVcpu {
  /** Index in the process-global vCPU table: what KickTokens carry. */
  slot: number;
  fd: number;
  /** The vCPU's mmap: struct kvm_run, then the PIO data page. Release with unmap() after destroyVcpu(). */
  run: ArrayBuffer;
}

export interface KvmAddon {
  // /dev/kvm
  openDevice(path?: string): number;
  getApiVersion(kvmFd: number): number;
  checkExtension(fd: number, cap: number): number;
  getVcpuMmapSize(kvmFd: number): number;
  /** nent × struct kvm_cpuid_entry2 (40 bytes each). */
  getSupportedCpuid(kvmFd: number): ArrayBuffer;
  createVm(kvmFd: number, type?: number): number;
  // VM
  setTssAddr(vmFd: number, address: number): void;
  setIdentityMapAddr(vmFd: number, address: number): void;
  createIrqchip(vmFd: number): void;
  createPit2(vmFd: number, flags?: number): void;
  /** `memory` must be a view of a mapFd() mapping; null deletes the slot. */
  setUserMemoryRegion(vmFd: number, slot: number, flags: number, guestPhys: number, memory: Uint8Array | null): void;
  irqLine(vmFd: number, irq: number, level: boolean): void;
  ioeventfd(vmFd: number, address: number, length: number, fd: number, flags: number, datamatch?: bigint): void;
  irqfd(vmFd: number, fd: number, gsi: number, flags?: number, resamplefd?: number): void;
  // vCPU (named by slot; usable only on the thread that created it, except kick)
  createVcpu(vmFd: number, id: number, mmapSize: number): NativeVcpu;
  destroyVcpu(slot: number): void;
  getRegs(slot: number, out: Uint8Array): void;
  setRegs(slot: number, regs: Uint8Array): void;
  getSregs(slot: number, out: Uint8Array): void;
  setSregs(slot: number, sregs: Uint8Array): void;
  setCpuid2(slot: number, entries: Uint8Array): void;
  /** KVM_GET_MP_STATE: 0 runnable, 3 halted, ... */
  getMpState(slot: number): number;
  /** KVM_RUN: the kvm_run exit_reason, or `runKicked` (-1). Blocks the calling thread. */
  run(slot: number): number;
  readonly runKicked: number;
  /** From any thread. False when no vCPU is registered in the slot. */
  kick(slot: number): boolean;
  /** One-shot kick after `ms` milliseconds; 0 disarms. Owner thread only. */
  armKickTimer(slot: number, ms: number): void;
  // Shared memory
  memfdCreate(name: string, size: number): number;
  /** MAP_SHARED mapping of `fd` as an external ArrayBuffer (at most 4 GiB). */
  mapFd(fd: number, size: number, writable: boolean, offset?: number): ArrayBuffer;
  /** Unmaps a mapFd()/createVcpu() buffer and detaches it: its views become empty, never dangling. */
  unmap(buffer: ArrayBuffer): void;
  close(fd: number): void;
  // eventfd
  eventfdCreate(initial?: number, nonblocking?: boolean): number;
  /** The counter (reset to 0); 0n on an empty non-blocking eventfd. */
  eventfdRead(fd: number): bigint;
  eventfdWrite(fd: number, value?: bigint | number): void;
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

/** What addon.run() returns for a kick (KVM exit reasons are >= 0); checked against the addon at load. */
export const RUN_KICKED = -1;

export const ADDON_PATH = fileURLToPath(new URL('./build/Release/tsvmm_kvm.node', import.meta.url));

export class KvmAddonMissingError extends Error {}

let cached: KvmAddon | undefined;

/** Loads the addon once per thread (each worker loads it into its own isolate; native state is shared). */
export function loadKvmAddon(): KvmAddon {
  if (cached) return cached;
  if (process.platform !== 'linux') {
    throw new KvmAddonMissingError(`the KVM backend needs Linux (this is ${process.platform})`);
  }
  if (!existsSync(ADDON_PATH)) {
    throw new KvmAddonMissingError(
      `the KVM addon is not built (${ADDON_PATH} is missing): run \`npm install\`, or ` +
      '`npx node-gyp rebuild --directory hypervisors/kvm` (needs a C++ compiler, make and python3)');
  }
  const addon = createRequire(import.meta.url)(ADDON_PATH) as KvmAddon;
  checkLayouts(addon);
  return (cached = addon);
}

// The TypeScript side reads kvm_run and the register structs at fixed offsets (uapi, stable);
// refuse to run if the header the addon was built against disagrees.
function checkLayouts(addon: KvmAddon): void {
  const c = addon.constants;
  const expected = { sizeofKvmRegs: 144, sizeofKvmSregs: 312, sizeofKvmCpuidEntry2: 40, offsetofExitReason: 8, offsetofExitUnion: 32 };
  for (const [name, value] of Object.entries(expected)) {
    const actual = c[name as keyof typeof expected];
    if (actual !== value) throw new Error(`KVM addon layout mismatch: ${name} is ${actual}, expected ${value}`);
  }
  if (addon.runKicked !== RUN_KICKED) throw new Error(`KVM addon mismatch: runKicked is ${addon.runKicked}, expected ${RUN_KICKED}`);
}
