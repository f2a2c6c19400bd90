// The Linux loader on synthetic kernels: every path (bzImage 64/32-bit entry, PVH vmlinux,
// i386/x86-64 vmlinux without PVH) and every refusal. Real kernels: images.test.ts.
import { describe, expect, test } from 'vitest';
import { LoaderError, loadLinux, type LoadLinuxOptions } from '../../firmware/loader.ts';
import { BOOT_LAYOUT } from '../../firmware/entry/index.ts';
import { EM_386, EM_X86_64, PT_LOAD, PT_NOTE } from '../../firmware/elf.ts';
import { MiB } from '../../base/memory-map.ts';
import { buildBzImage, buildElf, note, u32le, u64le } from './support/synth.ts';
import { testGuest, type TestGuest } from './support/guest.ts';

const initrd = new Uint8Array(300_000).map((_, i) => (i * 13) & 0xff);
const cmdline = 'console=ttyS0 reboot=t panic=-1';

function load(g: TestGuest, kernel: Uint8Array, extra: Partial<LoadLinuxOptions> = {}) {
  return loadLinux({ memory: g.memory, map: g.map, kernel, initrd, cmdline, longMode: true, ...extra });
}

/** Byte-for-byte equality without vitest's slow deep diff of large arrays. */
function same(a: Uint8Array, b: Uint8Array): void {
  expect(a.length).toBe(b.length);
  expect(Buffer.from(a.buffer, a.byteOffset, a.length).equals(Buffer.from(b.buffer, b.byteOffset, b.length))).toBe(true);
}

/** Run `fn`, expect a LoaderError with exit code 2 whose message matches every pattern. */
function refused(fn: () => unknown, ...patterns: RegExp[]): string {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(LoaderError);
    expect((e as LoaderError).exitCode).toBe(2);
    for (const p of patterns) expect((e as Error).message).toMatch(p);
    return (e as Error).message;
  }
  throw new Error('expected a LoaderError');
}

function expectE820(g: TestGuest, countAt: number, tableAt: number, stride: number): void {
  expect(g.view.getUint8(countAt) || g.view.getUint32(countAt, true)).toBe(g.map.e820.length);
  g.map.e820.forEach((e, i) => {
    const o = tableAt + i * stride;
    expect([Number(g.view.getBigUint64(o, true)), Number(g.view.getBigUint64(o + 8, true)), g.view.getUint32(o + 16, true)])
      .toEqual([e.addr, e.size, e.type]);
  });
}

describe('bzImage', () => {
  const bz64 = buildBzImage({ xloadflags: 1 });
  const bp = BOOT_LAYOUT.bootParams;

  test('64-bit entry: kernel at 1 MiB, boot_params with header, loader id, cmdline, initrd and e820', () => {
    const g = testGuest(128 * MiB);
    const r = load(g, bz64);
    expect([r.format, r.entry, r.entryAddress]).toEqual(['bzImage', 'boot64', 0x100200]);
    expect(r.regs.rip).toBe(0x100200n);
    expect(r.regs.rsi).toBe(BigInt(bp));
    expect(r.sregs.efer & 0x400n).toBe(0x400n);
    same(g.bytes.subarray(0x100000, 0x100000 + 4096), bz64.subarray(2560));
    expect(g.bytes.subarray(bp + 0x1f1, bp + 0x26c)).toEqual(
      (() => { const h = bz64.slice(0x1f1, 0x26c); h[0x210 - 0x1f1] = 0xff; h[0x1fa - 0x1f1] = 0xff; h[0x1fb - 0x1f1] = 0xff;
        new DataView(h.buffer).setUint32(0x228 - 0x1f1, BOOT_LAYOUT.cmdline, true);
        new DataView(h.buffer).setUint32(0x218 - 0x1f1, r.initrd!.addr, true);
        new DataView(h.buffer).setUint32(0x21c - 0x1f1, initrd.length, true); return h; })());
    expect(g.view.getUint8(bp + 0x210)).toBe(0xff);
    expect(g.view.getUint32(bp + 0x228, true)).toBe(BOOT_LAYOUT.cmdline);
    expect(g.cstring(BOOT_LAYOUT.cmdline)).toBe(cmdline);
    expect(g.view.getUint32(bp + 0x214, true)).toBe(0x100000);
    const addr = g.view.getUint32(bp + 0x218, true);
    expect(addr).toBe(r.initrd!.addr);
    expect(g.view.getUint32(bp + 0x21c, true)).toBe(initrd.length);
    expect(addr % 4096).toBe(0);
    expect(addr + initrd.length).toBeLessThanOrEqual(128 * MiB);
    expect(addr + initrd.length).toBeGreaterThan(128 * MiB - 4096 - initrd.length % 4096 - 1);
    same(g.bytes.subarray(addr, addr + initrd.length), initrd);
    expectE820(g, bp + 0x1e8, bp + 0x2d0, 20);
    expect(r.summary).toMatch(/bzImage .*64-bit boot protocol at 0x100200.*initrd/);
  });

  test('32-bit entry when the backend has no long mode, or the kernel no 64-bit entry', () => {
    for (const [kernel, longMode] of [[bz64, false], [buildBzImage({ xloadflags: 0 }), true]] as const) {
      const g = testGuest(64 * MiB);
      const r = load(g, kernel, { longMode });
      expect([r.entry, r.regs.rip, r.regs.rsi]).toEqual(['boot32', 0x100000n, BigInt(bp)]);
      expect(r.sregs.cs.selector).toBe(0x10);
      expect(r.sregs.cr0 & 0x80000000n).toBe(0n);
    }
  });

  test('the initrd stays below initrd_addr_max and above the kernel', () => {
    const g = testGuest(256 * MiB);
    const r = load(g, buildBzImage({ initrdAddrMax: 0x01ff_ffff }));
    expect(r.initrd!.addr + initrd.length).toBeLessThanOrEqual(0x0200_0000);
    expect(r.initrd!.addr).toBeGreaterThanOrEqual(r.kernel.end);
  });

  test('no initrd: ramdisk fields stay 0', () => {
    const g = testGuest(64 * MiB);
    const r = loadLinux({ memory: g.memory, map: g.map, kernel: bz64, cmdline: '', longMode: true });
    expect(r.initrd).toBeUndefined();
    expect(g.view.getUint32(bp + 0x218, true)).toBe(0);
    expect(g.view.getUint32(bp + 0x21c, true)).toBe(0);
  });

  test('refusals name the problem and the fix', () => {
    const g = testGuest(64 * MiB);
    refused(() => load(g, bz64.subarray(0, 3000)), /truncated/, /promises 6656 bytes/);
    const noMagic = bz64.slice(); noMagic.set([0, 0, 0, 0], 0x202);
    refused(() => load(g, noMagic), /neither a bzImage nor an ELF/, /starts with 00 00/);
    const noFlag = bz64.slice(); noFlag[0x1fe] = 0;
    refused(() => load(g, noFlag), /boot_flag/);
    refused(() => load(g, buildBzImage({ version: 0x0204 })), /protocol 2\.04/, /2\.10/);
    refused(() => load(g, buildBzImage({ loadflags: 0 })), /zImage/);
    refused(() => load(g, bz64, { cmdline: 'x'.repeat(2048) }), /2048 bytes/, /cmdline_size is 2047/, /shorten/);
    refused(() => load(g, bz64, { cmdline: 'a\0b' }), /NUL/);
    refused(() => load(testGuest(16 * MiB), buildBzImage({ initSize: 8 * MiB })), /does not fit in guest RAM: it needs RAM up to 24 MiB/, /low RAM ends at 16 MiB/, /--mem 64M/);
    refused(() => load(testGuest(32 * MiB), bz64, { initrd: new Uint8Array(16 * MiB) }), /initrd of 16 MiB does not fit/, /ends at 18 MiB/, /--mem 96M/);
    refused(() => load(testGuest(256 * MiB), buildBzImage({ initrdAddrMax: 0x01ff_ffff }), { initrd: new Uint8Array(20 * MiB) }),
      /initrd_addr_max 0x1ffffff/, /smaller initrd/);
    refused(() => load(g, new Uint8Array(0)), /empty/);
    refused(() => load(g, bz64, { initrd: new Uint8Array(0) }), /initrd is empty/);
  });

  test('files that are not kernels say what they look like', () => {
    const g = testGuest(64 * MiB);
    const text = new TextEncoder().encode('hello, world! this is text');
    refused(() => load(g, text), /68 65 6c 6c 6f/, /"hello, world! th"/, /bzImage/);
    refused(() => load(g, new Uint8Array([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3])), /gzip/, /--initrd/);
    refused(() => load(g, new TextEncoder().encode('070701000000')), /cpio/, /--initrd/);
    refused(() => load(g, new Uint8Array([0x4d, 0x5a, 0x90, 0])), /PE\/EFI/, /only 4 bytes/);
  });
});

describe('vmlinux (ELF)', () => {
  const code = new Uint8Array(0x2000).map((_, i) => (i * 5) & 0xff);
  function vmlinux(bits: 32 | 64, pvh: Uint8Array | null, extra: { machine?: number; type?: number; paddr?: number; entry?: bigint } = {}) {
    const paddr = extra.paddr ?? 0x100_0000;
    return buildElf({
      bits, machine: extra.machine ?? (bits === 64 ? EM_X86_64 : EM_386), entry: extra.entry ?? BigInt(paddr), ...(extra.type ? { type: extra.type } : {}),
      segments: [
        { type: PT_LOAD, paddr, vaddr: bits === 64 ? 0xffffffff81000000n : 0xc1000000n, data: code, memsz: 0x5000 },
        ...(pvh ? [{ type: PT_NOTE, paddr: 0, data: note('Xen', 18, pvh) }] : []),
      ],
    });
  }

  for (const [bits, desc] of [[32, u32le(0x1000100)], [64, u64le(0x1000100n)]] as const) {
    test(`PVH (${bits}-bit ELF, ${desc.length}-byte note): segments at physical addresses, hvm_start_info, EBX`, () => {
      const g = testGuest(64 * MiB);
      g.bytes.fill(0xee, 0x1000000 + 0x2000, 0x1000000 + 0x5000); // bss must be zeroed
      const r = load(g, vmlinux(bits, desc), { longMode: bits === 64 });
      expect([r.format, r.entry, r.entryAddress]).toEqual(['elf-pvh', 'pvh', 0x1000100]);
      expect(r.regs.rbx).toBe(BigInt(BOOT_LAYOUT.pvhStartInfo));
      expect(r.sregs.cr0).toBe(0x11n);
      same(g.bytes.subarray(0x1000000, 0x1002000), code);
      expect(g.bytes.subarray(0x1002000, 0x1005000).every((b) => b === 0)).toBe(true);
      const si = BOOT_LAYOUT.pvhStartInfo;
      const v = g.view;
      expect(v.getUint32(si, true)).toBe(0x336ec578);
      expect(v.getUint32(si + 4, true)).toBe(1);
      expect(v.getUint32(si + 12, true)).toBe(1); // nr_modules
      const mod = Number(v.getBigUint64(si + 16, true));
      expect(Number(v.getBigUint64(mod, true))).toBe(r.initrd!.addr);
      expect(Number(v.getBigUint64(mod + 8, true))).toBe(initrd.length);
      same(g.bytes.subarray(r.initrd!.addr, r.initrd!.addr + initrd.length), initrd);
      expect(g.cstring(Number(v.getBigUint64(si + 24, true)))).toBe(cmdline);
      expect(v.getBigUint64(si + 32, true)).toBe(0n); // no RSDP
      const memmap = Number(v.getBigUint64(si + 40, true));
      expectE820(g, si + 48, memmap, 24);
    });
  }

  test('PVH without initrd has no modules; the command line limit is 2047 bytes', () => {
    const g = testGuest(64 * MiB);
    loadLinux({ memory: g.memory, map: g.map, kernel: vmlinux(32, u32le(0x1000000)), cmdline: 'x'.repeat(2047), longMode: false });
    expect(g.view.getUint32(BOOT_LAYOUT.pvhStartInfo + 12, true)).toBe(0);
    expect(g.view.getBigUint64(BOOT_LAYOUT.pvhStartInfo + 16, true)).toBe(0n);
    refused(() => load(g, vmlinux(32, u32le(0x1000000)), { cmdline: 'x'.repeat(2048) }), /2048 bytes/, /2047/);
  });

  test('i386 vmlinux without PVH: 32-bit protocol at e_entry with a synthesized boot_params', () => {
    const g = testGuest(64 * MiB);
    const r = load(g, vmlinux(32, null, { entry: 0x1000040n }));
    expect([r.format, r.entry, r.regs.rip, r.regs.rsi]).toEqual(['elf32', 'boot32', 0x1000040n, BigInt(BOOT_LAYOUT.bootParams)]);
    const bp = BOOT_LAYOUT.bootParams;
    expect(g.view.getUint32(bp + 0x202, true)).toBe(0x53726448);
    expect(g.view.getUint16(bp + 0x1fe, true)).toBe(0xaa55);
    expect(g.view.getUint16(bp + 0x206, true)).toBe(0x020f);
    expect(g.view.getUint8(bp + 0x211) & 1).toBe(1);
    expect(g.view.getUint8(bp + 0x210)).toBe(0xff);
    expect(g.cstring(g.view.getUint32(bp + 0x228, true))).toBe(cmdline);
    expect(g.view.getUint32(bp + 0x218, true)).toBe(r.initrd!.addr);
    expect(g.view.getUint32(bp + 0x218, true) + initrd.length).toBeLessThanOrEqual(0x3800_0000);
    expectE820(g, bp + 0x1e8, bp + 0x2d0, 20);
  });

  test('x86-64 vmlinux without PVH: 64-bit protocol with long mode, refused without', () => {
    const g = testGuest(64 * MiB);
    const r = load(g, vmlinux(64, null));
    expect([r.format, r.entry, r.regs.rip]).toEqual(['elf64', 'boot64', 0x1000000n]);
    refused(() => load(g, vmlinux(64, null), { longMode: false }), /no PVH note/, /CONFIG_PVH=y/);
  });

  test('refusals: wrong machine, not an executable, boot-area overlap, too little RAM, bad entry, truncation', () => {
    const g = testGuest(16 * MiB);
    refused(() => load(g, vmlinux(64, null, { machine: 183 })), /AArch64/, /x86/);
    refused(() => load(g, vmlinux(32, null, { machine: 40 })), /ARM/);
    refused(() => load(g, vmlinux(32, null, { type: 3 })), /not an executable/);
    refused(() => load(g, vmlinux(32, null, { paddr: 0x8000 })), /boot area/);
    refused(() => load(g, vmlinux(32, null)), /does not fit in guest RAM/, /--mem 64M/);
    refused(() => load(testGuest(64 * MiB), vmlinux(32, u32le(0x2000000))), /PVH entry point 0x2000000 is not inside/);
    refused(() => load(testGuest(64 * MiB), vmlinux(32, new Uint8Array(2))), /2-byte descriptor/);
    const full = vmlinux(32, u32le(0x1000000));
    refused(() => load(testGuest(64 * MiB), full.subarray(0, 100)), /kernel ELF/, /truncated/);
  });
});
