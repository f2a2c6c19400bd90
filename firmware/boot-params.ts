// The x86 boot protocol's "zero page" (struct boot_params, 4 KiB; zero-page.rst): what a
// direct-boot loader fills in. Built as bytes here, written into guest RAM by the loader.

import type { E820Entry } from '../base/memory-map.ts';
import { BOOT_FLAG, HDR, HDRS_MAGIC, LOADED_HIGH, SETUP_HEADER_START } from './bzimage.ts';
import { LoaderError } from './loader-error.ts';

export const BOOT_PARAMS_SIZE = 0x1000;
export const BP = {
  extRamdiskImage: 0x0c0,
  extRamdiskSize: 0x0c4,
  extCmdLinePtr: 0x0c8,
  e820Entries: 0x1e8,
  hardwareSubarch: 0x23c,
  e820Table: 0x2d0,
} as const;
export const E820_MAX_ENTRIES_ZEROPAGE = 128;
export const E820_ENTRY_SIZE = 20;
/** No boot loader ID assigned (boot.rst: 0xFF = "undefined"). */
export const TYPE_OF_LOADER_UNDEFINED = 0xff;
/** Protocol version written into a synthesized header (for vmlinux booted through the 32-bit protocol). */
export const SYNTH_PROTOCOL = 0x020f;

export interface BootParamsSpec {
  /**
   * The kernel's setup header bytes (file range 0x1F1 .. end of header) for a bzImage; absent
   * for a vmlinux, whose boot_params get a minimal synthesized header instead.
   */
  setupHeader?: Uint8Array;
  /** Where the protected-mode kernel is loaded (code32_start). */
  code32Start?: number;
  cmdlineAddr: number;
  /** Max command line length for a synthesized header. */
  cmdlineSize: number;
  initrd?: { addr: number; size: number };
  e820: readonly E820Entry[];
}

export function buildBootParams(spec: BootParamsSpec): Uint8Array {
  const bp = new Uint8Array(BOOT_PARAMS_SIZE);
  const v = new DataView(bp.buffer);
  if (spec.setupHeader) {
    bp.set(spec.setupHeader, SETUP_HEADER_START);
  } else {
    v.setUint16(HDR.bootFlag, BOOT_FLAG, true);
    v.setUint32(HDR.header, HDRS_MAGIC, true);
    v.setUint16(HDR.version, SYNTH_PROTOCOL, true);
    v.setUint8(HDR.loadflags, LOADED_HIGH);
    v.setUint32(HDR.cmdlineSize, spec.cmdlineSize, true);
  }
  v.setUint16(HDR.vidMode, 0xffff, true); // "normal": no video mode change
  v.setUint8(HDR.typeOfLoader, TYPE_OF_LOADER_UNDEFINED);
  if (spec.code32Start !== undefined) v.setUint32(HDR.code32Start, spec.code32Start, true);
  setSplit(v, HDR.cmdLinePtr, BP.extCmdLinePtr, spec.cmdlineAddr);
  setSplit(v, HDR.ramdiskImage, BP.extRamdiskImage, spec.initrd?.addr ?? 0);
  setSplit(v, HDR.ramdiskSize, BP.extRamdiskSize, spec.initrd?.size ?? 0);
  v.setUint32(BP.hardwareSubarch, 0, true); // X86_SUBARCH_PC

  if (spec.e820.length > E820_MAX_ENTRIES_ZEROPAGE) {
    throw new LoaderError(`the memory map has ${spec.e820.length} entries; boot_params holds ${E820_MAX_ENTRIES_ZEROPAGE}`);
  }
  v.setUint8(BP.e820Entries, spec.e820.length);
  spec.e820.forEach((e, i) => {
    const o = BP.e820Table + i * E820_ENTRY_SIZE;
    v.setBigUint64(o, BigInt(e.addr), true);
    v.setBigUint64(o + 8, BigInt(e.size), true);
    v.setUint32(o + 16, e.type, true);
  });
  return bp;
}

/** A 64-bit value stored as a low 32-bit header field and a high 32-bit ext_ field. */
function setSplit(v: DataView, low: number, high: number, value: number): void {
  v.setUint32(low, value >>> 0, true);
  v.setUint32(high, Math.floor(value / 2 ** 32), true);
}
