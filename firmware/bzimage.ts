// The bzImage setup header (Documentation/arch/x86/boot.rst): parsing and validation. Offsets
// are file offsets, which are also the field offsets inside boot_params.

import { LoaderError } from './loader-error.ts';

export const SETUP_HEADER_START = 0x1f1;
export const HDRS_MAGIC = 0x53726448; // "HdrS"
export const BOOT_FLAG = 0xaa55;
export const LOADED_HIGH = 1 << 0;
export const XLF_KERNEL_64 = 1 << 0;
export const XLF_CAN_BE_LOADED_ABOVE_4G = 1 << 1;
/** tsvmm needs init_size and pref_address (2.10) to know how much RAM the kernel occupies. */
export const MIN_PROTOCOL = 0x020a;
/** Where a bzImage's protected-mode kernel is loaded (and code32_start points). */
export const BZIMAGE_LOAD_ADDRESS = 0x10_0000;

export const HDR = {
  setupSects: 0x1f1,
  syssize: 0x1f4,
  vidMode: 0x1fa,
  bootFlag: 0x1fe,
  jump: 0x200,
  header: 0x202,
  version: 0x206,
  typeOfLoader: 0x210,
  loadflags: 0x211,
  code32Start: 0x214,
  ramdiskImage: 0x218,
  ramdiskSize: 0x21c,
  cmdLinePtr: 0x228,
  initrdAddrMax: 0x22c,
  kernelAlignment: 0x230,
  relocatableKernel: 0x234,
  xloadflags: 0x236,
  cmdlineSize: 0x238,
  prefAddress: 0x258,
  initSize: 0x260,
} as const;

export interface SetupHeader {
  /** Protocol version, (major << 8) | minor. */
  version: number;
  setupSects: number;
  /** File offset of the protected-mode kernel: (setup_sects + 1) * 512. */
  kernelOffset: number;
  /** Bytes of protected-mode kernel the header claims (syssize * 16). */
  kernelSize: number;
  loadflags: number;
  xloadflags: number;
  code32Start: number;
  initrdAddrMax: number;
  kernelAlignment: number;
  relocatable: boolean;
  /** Max command line length in bytes, excluding the NUL. */
  cmdlineSize: number;
  prefAddress: number;
  /** Bytes the kernel needs from its runtime start address before it reads the memory map. */
  initSize: number;
  /** File range [SETUP_HEADER_START, headerEnd) is the header to copy into boot_params. */
  headerEnd: number;
}

export function isBzImage(bytes: Uint8Array): boolean {
  return bytes.length >= HDR.header + 4 && view(bytes).getUint32(HDR.header, true) === HDRS_MAGIC;
}

function view(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

export function formatProtocol(version: number): string {
  return `${version >> 8}.${(version & 0xff).toString().padStart(2, '0')}`;
}

/** Parse and validate the setup header of a bzImage; LoaderError names what is wrong. */
export function parseSetupHeader(bytes: Uint8Array): SetupHeader {
  const v = view(bytes);
  if (bytes.length < 0x270) {
    throw new LoaderError(`kernel image is only ${bytes.length} bytes: too short for a bzImage setup header (truncated?)`);
  }
  if (v.getUint32(HDR.header, true) !== HDRS_MAGIC) {
    throw new LoaderError('kernel image has no "HdrS" boot protocol header at offset 0x202: not a bzImage');
  }
  if (v.getUint16(HDR.bootFlag, true) !== BOOT_FLAG) {
    throw new LoaderError(`kernel image has boot_flag 0x${v.getUint16(HDR.bootFlag, true).toString(16)} at 0x1fe instead of 0xaa55: corrupt bzImage`);
  }
  const version = v.getUint16(HDR.version, true);
  if (version < MIN_PROTOCOL) {
    throw new LoaderError(`kernel uses boot protocol ${formatProtocol(version)}; tsvmm needs ${formatProtocol(MIN_PROTOCOL)} ` +
      'or later (Linux 2.6.31+): use a newer kernel');
  }
  const loadflags = v.getUint8(HDR.loadflags);
  if (!(loadflags & LOADED_HIGH)) {
    throw new LoaderError('kernel is a zImage (loaded low, below 1 MiB), not a bzImage: tsvmm boots bzImage or vmlinux kernels');
  }
  const setupSects = v.getUint8(HDR.setupSects) || 4;
  const kernelOffset = (setupSects + 1) * 512;
  const kernelSize = v.getUint32(HDR.syssize, true) * 16;
  if (kernelOffset + kernelSize > bytes.length) {
    throw new LoaderError(`kernel image is truncated: its header promises ${kernelOffset + kernelSize} bytes ` +
      `(setup ${kernelOffset} + kernel ${kernelSize}) but the file has ${bytes.length}`);
  }
  const headerEnd = HDR.jump + 2 + v.getUint8(HDR.jump + 1);
  if (headerEnd < HDR.initSize + 4 || headerEnd > kernelOffset) {
    throw new LoaderError(`kernel image has an implausible setup header length (ends at 0x${headerEnd.toString(16)}): corrupt bzImage`);
  }
  const initSize = v.getUint32(HDR.initSize, true);
  if (initSize === 0) throw new LoaderError('kernel image has init_size 0 in its setup header: corrupt bzImage');
  return {
    version,
    setupSects,
    kernelOffset,
    kernelSize,
    loadflags,
    xloadflags: version >= 0x020c ? v.getUint16(HDR.xloadflags, true) : 0,
    code32Start: v.getUint32(HDR.code32Start, true),
    initrdAddrMax: v.getUint32(HDR.initrdAddrMax, true),
    kernelAlignment: v.getUint32(HDR.kernelAlignment, true),
    relocatable: v.getUint8(HDR.relocatableKernel) !== 0,
    cmdlineSize: version >= 0x0206 ? v.getUint32(HDR.cmdlineSize, true) : 255,
    prefAddress: Number(v.getBigUint64(HDR.prefAddress, true)),
    initSize,
    headerEnd,
  };
}
