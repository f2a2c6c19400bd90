// Loading Linux into guest RAM and choosing how to enter it.
//
//   bzImage      x86 boot protocol: the protected-mode kernel at 1 MiB, boot_params (zero page)
//                with the image's setup header, entered through the 64-bit protocol (startup_64
//                at load + 0x200) when the kernel has XLF_KERNEL_64 and the backend runs long mode,
//                else through the 32-bit protocol at code32_start.
//   vmlinux      ELF: PT_LOAD segments at their physical addresses. With a Xen PVH note
//                (XEN_ELFNOTE_PHYS32_ENTRY) the PVH entry and hvm_start_info; an i386 vmlinux
//                without one through the 32-bit protocol (and an x86-64 one through the 64-bit
//                protocol) with a boot_params tsvmm synthesizes.
// The initrd goes as high as the kernel allows in the RAM below the 32-bit hole, page-aligned;
// the boot structures sit at BOOT_LAYOUT. Anything tsvmm cannot boot is a LoaderError (exit 2)
// naming the problem and what to do.

import type { Regs, Sregs } from '../base/cpu-state.ts';
import type { GuestMemory } from '../base/guest-memory.ts';
import { MiB, isRam, type MemoryMap } from '../base/memory-map.ts';
import { buildBootParams } from './boot-params.ts';
import {
  BZIMAGE_LOAD_ADDRESS, XLF_KERNEL_64, formatProtocol, isBzImage, parseSetupHeader, SETUP_HEADER_START,
} from './bzimage.ts';
import { ElfError, EM_386, EM_X86_64, ET_EXEC, PT_LOAD, elfNotes, isElf, machineName, parseElf, type ElfFile } from './elf.ts';
import { BOOT_LAYOUT, enter32, enter64, enterPvh, type EntryState } from './entry/index.ts';
import { LoaderError } from './loader-error.ts';
import { XEN_ELFNOTE_PHYS32_ENTRY, writeStartInfo } from './pvh.ts';

export { LoaderError } from './loader-error.ts';

export type KernelFormat = 'bzImage' | 'elf-pvh' | 'elf32' | 'elf64';
export type EntryProtocol = 'boot32' | 'boot64' | 'pvh';

/**
 * Longest command line for a vmlinux (PVH or synthesized boot_params), in bytes without the NUL:
 * x86 Linux's COMMAND_LINE_SIZE is 2048 including the NUL and longer lines are cut off.
 */
export const ELF_CMDLINE_MAX = 2047;
/**
 * Highest initrd address for a vmlinux, which has no initrd_addr_max field: the classic boot
 * protocol default, which keeps the initrd in the directly mapped low memory of a 32-bit kernel.
 */
export const ELF_INITRD_ADDR_MAX = 0x37ff_ffff;
const PAGE = 0x1000;

export interface LoadLinuxOptions {
  memory: GuestMemory;
  map: MemoryMap;
  kernel: Uint8Array;
  initrd?: Uint8Array | undefined;
  cmdline: string;
  /** The backend can start the vCPU in long mode (KVM): use the 64-bit entry when the kernel has one. */
  longMode: boolean;
}

export interface LoadedLinux extends EntryState {
  regs: Regs;
  sregs: Sregs;
  format: KernelFormat;
  entry: EntryProtocol;
  entryAddress: number;
  /** Guest-physical [start, end) the kernel occupies (for a bzImage: until it has read the memory map). */
  kernel: { start: number; end: number };
  initrd: { addr: number; size: number } | undefined;
  cmdline: { addr: number; length: number };
  /** boot_params address (boot32/boot64) or hvm_start_info address (pvh). */
  bootInfo: number;
  /** One line for people: what was loaded where, and how it is entered. */
  summary: string;
}

export function loadLinux(options: LoadLinuxOptions): LoadedLinux {
  const { kernel } = options;
  if (kernel.length === 0) throw new LoaderError('kernel image is empty (0 bytes): pass a bzImage or a vmlinux');
  if (options.initrd && options.initrd.length === 0) throw new LoaderError('initrd is empty (0 bytes): pass an initramfs (cpio or cpio.gz) or leave --initrd out');
  if (isElf(kernel)) return loadElf(options);
  if (isBzImage(kernel)) return loadBzImage(options);
  throw new LoaderError(`kernel image is neither a bzImage nor an ELF vmlinux: ${describeBytes(kernel)}`);
}

function loadBzImage(o: LoadLinuxOptions): LoadedLinux {
  const hdr = parseSetupHeader(o.kernel);
  const load = BZIMAGE_LOAD_ADDRESS;
  const payload = o.kernel.subarray(hdr.kernelOffset);
  // The decompressor runs from max(load, pref_address) and needs init_size bytes there before it
  // looks at the memory map (a relocatable kernel still never goes below LOAD_PHYSICAL_ADDR).
  const end = Math.max(load + payload.length, Math.max(load, hdr.prefAddress) + hdr.initSize);
  requireRam(o.map, load, end, `the kernel (${fmtSize(payload.length)}, init_size ${fmtSize(hdr.initSize)} from ` +
    `0x${Math.max(load, hdr.prefAddress).toString(16)})`);
  o.memory.write(load, payload, 'load kernel');

  const cmdline = writeCmdline(o, Math.min(hdr.cmdlineSize, BOOT_LAYOUT.cmdlineCapacity - 1), `this kernel's cmdline_size`);
  const initrd = o.initrd && placeInitrd(o, Math.min(hdr.initrdAddrMax, 2 ** 32 - 1), end, 'initrd_addr_max');
  const bp = buildBootParams({
    setupHeader: o.kernel.subarray(SETUP_HEADER_START, hdr.headerEnd),
    code32Start: load,
    cmdlineAddr: cmdline.addr,
    cmdlineSize: hdr.cmdlineSize,
    ...(initrd ? { initrd } : {}),
    e820: o.map.e820,
  });
  o.memory.write(BOOT_LAYOUT.bootParams, bp, 'write boot_params');

  const use64 = o.longMode && (hdr.xloadflags & XLF_KERNEL_64) !== 0;
  const entryAddress = use64 ? load + 0x200 : load;
  const state = use64
    ? enter64(o.memory, { entry: entryAddress, bootParams: BOOT_LAYOUT.bootParams })
    : enter32(o.memory, { entry: entryAddress, bootParams: BOOT_LAYOUT.bootParams });
  const kind = `bzImage (boot protocol ${formatProtocol(hdr.version)}, ${(hdr.xloadflags & XLF_KERNEL_64) ? '64-bit' : '32-bit'} kernel)`;
  return finish(state, 'bzImage', use64 ? 'boot64' : 'boot32', entryAddress, { start: load, end }, initrd, cmdline,
    BOOT_LAYOUT.bootParams, kind);
}

function loadElf(o: LoadLinuxOptions): LoadedLinux {
  let elf: ElfFile;
  try {
    elf = parseElf(o.kernel);
  } catch (e) {
    if (e instanceof ElfError) throw new LoaderError(`kernel ELF: ${e.message}`);
    throw e;
  }
  if (elf.machine !== EM_386 && elf.machine !== EM_X86_64) {
    throw new LoaderError(`kernel is an ELF file for ${machineName(elf.machine)}; tsvmm runs x86 guests: pass an i386 or x86-64 kernel`);
  }
  if (elf.type !== ET_EXEC) {
    throw new LoaderError(`kernel ELF has type ${elf.type}, not an executable (2): pass the vmlinux from the top of the kernel build tree, not an object or module`);
  }
  const segments = elf.programHeaders.filter((p) => p.type === PT_LOAD && p.memsz > 0);
  if (segments.length === 0) throw new LoaderError('kernel ELF has no loadable segments: is it really a vmlinux?');

  let start = Infinity;
  let end = 0;
  for (const s of segments) {
    if (s.paddr < BOOT_LAYOUT.end) {
      throw new LoaderError(`kernel ELF has a segment at 0x${s.paddr.toString(16)}, inside tsvmm's boot area below ` +
        `0x${BOOT_LAYOUT.end.toString(16)}: link the kernel at 1 MiB or higher (CONFIG_PHYSICAL_START)`);
    }
    start = Math.min(start, s.paddr);
    end = Math.max(end, s.paddr + s.memsz);
  }
  requireRam(o.map, start, end, `the kernel (ELF segments 0x${start.toString(16)}-0x${end.toString(16)})`);
  for (const s of segments) {
    o.memory.write(s.paddr, o.kernel.subarray(s.offset, s.offset + s.filesz), 'load kernel segment');
    o.memory.fill(s.paddr + s.filesz, s.memsz - s.filesz, 0);
  }

  const pvhEntry = findPvhEntry(o.kernel, elf);
  const bits = elf.machine === EM_X86_64 ? 'x86-64' : 'i386';
  if (pvhEntry !== undefined) {
    requireInside(segments, pvhEntry, 'PVH entry point');
    const cmdline = writeCmdline(o, ELF_CMDLINE_MAX, 'the vmlinux limit (COMMAND_LINE_SIZE)');
    const initrd = o.initrd && placeInitrd(o, ELF_INITRD_ADDR_MAX, end, 'the vmlinux initrd limit');
    const startInfo = writeStartInfo(o.memory, { cmdlineAddr: cmdline.addr, ...(initrd ? { initrd } : {}), e820: o.map.e820 });
    const state = enterPvh(o.memory, { entry: pvhEntry, startInfo });
    return finish(state, 'elf-pvh', 'pvh', pvhEntry, { start, end }, initrd, cmdline, startInfo, `${bits} vmlinux with a PVH note`);
  }

  const entryAddress = Number(elf.entry);
  requireInside(segments, entryAddress, 'ELF entry point');
  if (elf.bits === 64 && !o.longMode) {
    throw new LoaderError('this x86-64 vmlinux has no PVH note, so it can only be entered in 64-bit mode, which this backend ' +
      'cannot start: build the kernel with CONFIG_PVH=y, or boot its bzImage');
  }
  const cmdline = writeCmdline(o, ELF_CMDLINE_MAX, 'the vmlinux limit (COMMAND_LINE_SIZE)');
  const initrd = o.initrd && placeInitrd(o, ELF_INITRD_ADDR_MAX, end, 'the vmlinux initrd limit');
  const bp = buildBootParams({
    cmdlineAddr: cmdline.addr, cmdlineSize: ELF_CMDLINE_MAX, ...(initrd ? { initrd } : {}), e820: o.map.e820,
  });
  o.memory.write(BOOT_LAYOUT.bootParams, bp, 'write boot_params');
  if (elf.bits === 64) {
    const state = enter64(o.memory, { entry: entryAddress, bootParams: BOOT_LAYOUT.bootParams });
    return finish(state, 'elf64', 'boot64', entryAddress, { start, end }, initrd, cmdline, BOOT_LAYOUT.bootParams, `${bits} vmlinux without a PVH note`);
  }
  const state = enter32(o.memory, { entry: entryAddress, bootParams: BOOT_LAYOUT.bootParams });
  return finish(state, 'elf32', 'boot32', entryAddress, { start, end }, initrd, cmdline, BOOT_LAYOUT.bootParams, `${bits} vmlinux without a PVH note`);
}

/** The XEN_ELFNOTE_PHYS32_ENTRY address, if the kernel has the note (4- or 8-byte descriptor). */
export function findPvhEntry(kernel: Uint8Array, elf: ElfFile): number | undefined {
  let notes;
  try {
    notes = elfNotes(kernel, elf);
  } catch (e) {
    if (e instanceof ElfError) throw new LoaderError(`kernel ELF notes: ${e.message}`);
    throw e;
  }
  const note = notes.find((n) => n.name === 'Xen' && n.type === XEN_ELFNOTE_PHYS32_ENTRY);
  if (!note) return undefined;
  const v = new DataView(note.desc.buffer, note.desc.byteOffset, note.desc.byteLength);
  if (note.desc.length === 4) return v.getUint32(0, true);
  if (note.desc.length === 8) {
    const entry = v.getBigUint64(0, true);
    if (entry >= 2n ** 32n) throw new LoaderError(`kernel's PVH entry 0x${entry.toString(16)} is above 4 GiB: corrupt note`);
    return Number(entry);
  }
  throw new LoaderError(`kernel's PVH entry note has a ${note.desc.length}-byte descriptor (expected 4 or 8): corrupt note`);
}

function requireInside(segments: readonly { paddr: number; filesz: number }[], addr: number, what: string): void {
  if (!segments.some((s) => addr >= s.paddr && addr < s.paddr + s.filesz)) {
    throw new LoaderError(`kernel's ${what} 0x${addr.toString(16)} is not inside any loaded segment: corrupt vmlinux`);
  }
}

/** Throw unless [start, end) is guest RAM, saying how much --mem would make it fit. */
function requireRam(map: MemoryMap, start: number, end: number, what: string): void {
  if (isRam(map, start, end - start)) return;
  throw new LoaderError(`${what} does not fit in guest RAM: it needs RAM up to ${fmtSize(end)} but the guest's ` +
    `low RAM ends at ${fmtSize(lowRamEnd(map))}: use --mem ${suggestMem(end)} or more`);
}

function lowRamEnd(map: MemoryMap): number {
  const low = map.ram.find((r) => r.start === 0);
  return low ? low.start + low.size : 0;
}

/** A round --mem value comfortably above `bytes` (loading is not running: leave room). */
function suggestMem(bytes: number): string {
  const mib = Math.ceil(bytes / MiB);
  return `${Math.max(64, Math.ceil((mib + 32) / 32) * 32)}M`;
}

function writeCmdline(o: LoadLinuxOptions, limit: number, limitName: string): { addr: number; length: number } {
  if (o.cmdline.includes('\0')) throw new LoaderError('kernel command line contains a NUL character: remove it');
  const bytes = new TextEncoder().encode(o.cmdline);
  if (bytes.length > limit) {
    throw new LoaderError(`kernel command line is ${bytes.length} bytes; ${limitName} is ${limit}: shorten it`);
  }
  const addr = BOOT_LAYOUT.cmdline;
  o.memory.write(addr, bytes, 'write command line');
  o.memory.fill(addr + bytes.length, 1, 0);
  return { addr, length: bytes.length };
}

/** As high as allowed in low RAM, page-aligned, above the kernel. */
function placeInitrd(o: LoadLinuxOptions, maxAddr: number, kernelEnd: number, maxName: string): { addr: number; size: number } {
  const size = o.initrd!.length;
  const ramTop = lowRamEnd(o.map);
  const top = Math.min(maxAddr + 1, ramTop);
  const addr = Math.floor((top - size) / PAGE) * PAGE;
  const floor = Math.ceil(kernelEnd / PAGE) * PAGE;
  if (addr < floor) {
    if (top < ramTop) {
      throw new LoaderError(`initrd of ${fmtSize(size)} does not fit between the kernel (ends at ${fmtSize(kernelEnd)}) and ` +
        `${maxName} 0x${maxAddr.toString(16)}: use a smaller initrd`);
    }
    throw new LoaderError(`initrd of ${fmtSize(size)} does not fit in guest RAM above the kernel (which ends at ` +
      `${fmtSize(kernelEnd)}; RAM ends at ${fmtSize(ramTop)}): use --mem ${suggestMem(floor + size)} or more`);
  }
  o.memory.write(addr, o.initrd!, 'load initrd');
  return { addr, size };
}

function finish(state: EntryState, format: KernelFormat, entry: EntryProtocol, entryAddress: number,
  kernel: { start: number; end: number }, initrd: { addr: number; size: number } | undefined,
  cmdline: { addr: number; length: number }, bootInfo: number, kind: string): LoadedLinux {
  const how = { boot32: '32-bit boot protocol', boot64: '64-bit boot protocol', pvh: 'PVH' }[entry];
  const summary = `${kind} at 0x${kernel.start.toString(16)}-0x${kernel.end.toString(16)}, entered through ${how} ` +
    `at 0x${entryAddress.toString(16)}; ${initrd ? `initrd ${fmtSize(initrd.size)} at 0x${initrd.addr.toString(16)}` : 'no initrd'}; ` +
    `command line ${cmdline.length} bytes`;
  return { ...state, format, entry, entryAddress, kernel, initrd, cmdline, bootInfo, summary };
}

function fmtSize(bytes: number): string {
  if (bytes >= MiB) return `${+(bytes / MiB).toFixed(1)} MiB`;
  if (bytes >= 1024) return `${+(bytes / 1024).toFixed(1)} KiB`;
  return `${bytes} bytes`;
}

const SIGNATURES: readonly [number[], string][] = [
  [[0x1f, 0x8b], 'gzip-compressed data: decompress it, or if it is an initramfs pass it with --initrd'],
  [[0x30, 0x37, 0x30, 0x37, 0x30], 'a cpio archive (an initramfs?): pass it with --initrd'],
  [[0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00], 'xz-compressed data: decompress it first'],
  [[0x28, 0xb5, 0x2f, 0xfd], 'zstd-compressed data: decompress it first'],
  [[0x42, 0x5a, 0x68], 'bzip2-compressed data: decompress it first'],
  [[0x4d, 0x5a], 'a PE/EFI executable without a Linux boot header: pass a bzImage or vmlinux'],
  [[0x23, 0x21], 'a script, not a kernel'],
];

/** "starts with 1f 8b 08 00 ... (".....") — looks like gzip-compressed data: ..." */
export function describeBytes(bytes: Uint8Array): string {
  const head = bytes.subarray(0, 16);
  const hex = [...head].map((b) => b.toString(16).padStart(2, '0')).join(' ');
  const ascii = [...head].map((b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : '.')).join('');
  const sig = SIGNATURES.find(([magic]) => magic.every((b, i) => bytes[i] === b));
  const hint = sig ? ` — looks like ${sig[1]}` : ' — pass a bzImage (arch/x86/boot/bzImage) or a vmlinux ELF';
  return `it starts with ${hex} ("${ascii}")${bytes.length < 16 ? ` and is only ${bytes.length} bytes` : ''}${hint}`;
}
