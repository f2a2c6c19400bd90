// The real guest images from the recipe (built by `tsvmm image build`; CI builds them first):
// their kernels through the loader, their initramfs contents, their configs through the
// recipe check — and corrupted copies of the real kernels through every refusal.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { describe, expect, test } from 'vitest';
import { imagePaths, verifyFragments, IMAGE_ARCHS, READY_MARKER, type ImageArch } from '../../firmware/images/build.ts';
import { ARCH_RECIPES, recipePath } from '../../firmware/images/recipe.ts';
import { LoaderError, loadLinux, type LoadLinuxOptions } from '../../firmware/loader.ts';
import { parseSetupHeader, XLF_KERNEL_64 } from '../../firmware/bzimage.ts';
import { EM_386, EM_X86_64, PT_LOAD, elfNotes, parseElf } from '../../firmware/elf.ts';
import { BOOT_LAYOUT } from '../../firmware/entry/index.ts';
import { MiB } from '../../base/memory-map.ts';
import { readCpio, S_IFCHR, S_IFLNK, S_IFMT, S_IFREG } from './support/cpio.ts';
import { testGuest } from './support/guest.ts';

const built = Object.fromEntries(IMAGE_ARCHS.map((a) => [a, imagePaths(a).built])) as Record<ImageArch, boolean>;
for (const arch of IMAGE_ARCHS) {
  if (!built[arch]) {
    console.warn(`images.test: no ${arch} guest images for the current recipe in ${imagePaths(arch).dir}: ` +
      'skipping the real-kernel tests (build them with `tsvmm image build`)');
  }
}
const readelf = ['/usr/bin/readelf', '/bin/readelf'].find(existsSync);
if (!readelf) console.warn('images.test: readelf (binutils) not found: skipping the PVH-note comparison with readelf');

function refused(fn: () => unknown, ...patterns: RegExp[]): void {
  let error: unknown;
  try { fn(); } catch (e) { error = e; }
  expect(error).toBeInstanceOf(LoaderError);
  expect((error as LoaderError).exitCode).toBe(2);
  for (const p of patterns) expect((error as Error).message).toMatch(p);
}

function same(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.length).equals(Buffer.from(b.buffer, b.byteOffset, b.length));
}

for (const arch of IMAGE_ARCHS) {
  describe.skipIf(!built[arch])(`${arch} images`, () => {
    const paths = imagePaths(arch);
    const read = (p: string) => new Uint8Array(readFileSync(p));
    const bzImage = built[arch] ? read(paths.bzImage) : new Uint8Array();
    const vmlinux = built[arch] ? read(paths.vmlinux) : new Uint8Array();
    const initrd = built[arch] ? read(paths.initramfs) : new Uint8Array();
    const is64 = arch === 'x86_64';
    const cmdline = 'console=ttyS0 reboot=t panic=-1';
    const load = (kernel: Uint8Array, extra: Partial<LoadLinuxOptions> = {}) => {
      const g = testGuest(128 * MiB);
      return { g, r: loadLinux({ memory: g.memory, map: g.map, kernel, initrd, cmdline, longMode: true, ...extra }) };
    };

    test('the manifest lists every file with its size and SHA-256', () => {
      const manifest = JSON.parse(readFileSync(paths.manifest, 'utf8'));
      expect(manifest.arch).toBe(arch);
      for (const [name, info] of Object.entries(manifest.files as Record<string, { size: number; sha256: string }>)) {
        const data = readFileSync(`${paths.dir}/${name}`);
        expect(data.length, name).toBe(info.size);
        expect(createHash('sha256').update(data).digest('hex'), name).toBe(info.sha256);
      }
    });

    test('bzImage setup header', () => {
      const hdr = parseSetupHeader(bzImage);
      expect(hdr.version).toBeGreaterThanOrEqual(0x020f);
      expect(Boolean(hdr.xloadflags & XLF_KERNEL_64)).toBe(is64);
      expect(hdr.cmdlineSize).toBe(2047);
      expect(hdr.prefAddress).toBe(0x100_0000);
      expect(hdr.initSize).toBeGreaterThan(bzImage.length - hdr.kernelOffset);
    });

    test(`bzImage loads with the ${is64 ? '64' : '32'}-bit entry, boot_params from its header`, () => {
      const { g, r } = load(bzImage);
      const hdr = parseSetupHeader(bzImage);
      expect(r.format).toBe('bzImage');
      expect(r.entry).toBe(is64 ? 'boot64' : 'boot32');
      expect(r.regs.rip).toBe(is64 ? 0x100200n : 0x100000n);
      expect(same(g.bytes.subarray(0x100000, 0x100000 + bzImage.length - hdr.kernelOffset), bzImage.subarray(hdr.kernelOffset))).toBe(true);
      const bp = BOOT_LAYOUT.bootParams;
      // The header is copied as is, except the fields a loader writes.
      const written = new Set([0x1fa, 0x1fb, 0x210, 0x214, 0x215, 0x216, 0x217, 0x218, 0x219, 0x21a, 0x21b, 0x21c, 0x21d, 0x21e, 0x21f, 0x228, 0x229, 0x22a, 0x22b]);
      for (let o = 0x1f1; o < hdr.headerEnd; o++) if (!written.has(o)) expect(g.bytes[o + bp], `offset 0x${o.toString(16)}`).toBe(bzImage[o]);
      expect(g.view.getUint8(bp + 0x210)).toBe(0xff);
      expect(g.view.getUint32(bp + 0x218, true)).toBe(r.initrd!.addr);
      expect(g.view.getUint32(bp + 0x21c, true)).toBe(initrd.length);
      expect(r.initrd!.addr + initrd.length).toBeLessThanOrEqual(Math.min(hdr.initrdAddrMax + 1, 128 * MiB));
      expect(r.initrd!.addr).toBeGreaterThanOrEqual(r.kernel.end);
      expect(g.view.getUint8(bp + 0x1e8)).toBe(g.map.e820.length);
      g.map.e820.forEach((e, i) => {
        const o = bp + 0x2d0 + i * 20;
        expect([Number(g.view.getBigUint64(o, true)), Number(g.view.getBigUint64(o + 8, true)), g.view.getUint32(o + 16, true)]).toEqual([e.addr, e.size, e.type]);
      });
      const r32 = load(bzImage, { longMode: false }).r;
      expect([r32.entry, r32.regs.rip]).toEqual(['boot32', 0x100000n]);
    });

    test.skipIf(!readelf)('vmlinux PVH note matches readelf, and the kernel loads through PVH', () => {
      const elf = parseElf(vmlinux);
      expect(elf.machine).toBe(is64 ? EM_X86_64 : EM_386);
      const note = elfNotes(vmlinux, elf).find((n) => n.name === 'Xen' && n.type === 18)!;
      expect(note).toBeDefined();
      // readelf prints the note as "Xen 0x00000004 Unknown note type: (0x00000012) description data: d0 02 00 01"
      // (newer binutils name the type); the descriptor is the little-endian entry address.
      const out = execFileSync(readelf!, ['-nW', paths.vmlinux], { encoding: 'utf8' });
      const line = out.split('\n').find((l) => /^\s*Xen\s/.test(l) && /0x00000012|PHYS32_ENTRY/.test(l));
      expect(line, out).toBeDefined();
      const bytes = /description data: ([0-9a-f ]+)/.exec(line!)![1]!.trim().split(/\s+/);
      const fromReadelf = Number(`0x${bytes.reverse().join('')}`);
      const { g, r } = load(vmlinux, { longMode: is64 });
      expect([r.format, r.entry]).toEqual(['elf-pvh', 'pvh']);
      expect(r.entryAddress).toBe(fromReadelf);
      expect(r.regs.rbx).toBe(BigInt(BOOT_LAYOUT.pvhStartInfo));
      for (const s of elf.programHeaders.filter((p) => p.type === PT_LOAD)) {
        expect(same(g.bytes.subarray(s.paddr, s.paddr + s.filesz), vmlinux.subarray(s.offset, s.offset + s.filesz))).toBe(true);
      }
      const si = BOOT_LAYOUT.pvhStartInfo;
      expect(g.view.getUint32(si, true)).toBe(0x336ec578);
      expect(g.view.getUint32(si + 12, true)).toBe(1);
      const mod = Number(g.view.getBigUint64(si + 16, true));
      expect(Number(g.view.getBigUint64(mod, true))).toBe(r.initrd!.addr);
      expect(Number(g.view.getBigUint64(mod + 8, true))).toBe(initrd.length);
      expect(g.view.getUint32(si + 48, true)).toBe(g.map.e820.length);
    });

    test('vmlinux without its PVH note goes through the boot protocol at e_entry', () => {
      const elf = parseElf(vmlinux);
      const copy = vmlinux.slice();
      // Retype the Xen PHYS32_ENTRY note (18 → 0x7fff) so the loader cannot see it.
      for (const ph of elf.programHeaders.filter((p) => p.type === 4)) {
        const v = new DataView(copy.buffer, ph.offset, ph.filesz);
        for (let o = 0; o + 16 <= ph.filesz; o += 4) {
          if (v.getUint32(o, true) === 4 && v.getUint32(o + 8, true) === 18 && v.getUint32(o + 12, true) === 0x006e6558) v.setUint32(o + 8, 0x7fff, true);
        }
      }
      const { r } = load(copy, { longMode: true });
      expect([r.format, r.entry, r.regs.rip]).toEqual(is64 ? ['elf64', 'boot64', elf.entry] : ['elf32', 'boot32', elf.entry]);
    });

    test('corrupted copies of the real kernels are refused with exit code 2 and a helpful message', () => {
      refused(() => load(bzImage.subarray(0, bzImage.length >> 1)), /truncated/);
      const noMagic = bzImage.slice(); noMagic.set([0x48, 0x64, 0x72, 0x00], 0x202);
      refused(() => load(noMagic), /neither a bzImage nor an ELF/, /starts with/);
      refused(() => load(bzImage, { cmdline: `console=ttyS0 ${'x'.repeat(2100)}` }), /2114 bytes/, /2047/);
      refused(() => load(vmlinux, { cmdline: 'y'.repeat(3000) }), /3000 bytes/, /2047/);
      refused(() => loadLinux({ memory: testGuest(16 * MiB).memory, map: testGuest(16 * MiB).map, kernel: bzImage, cmdline, longMode: true }),
        /does not fit in guest RAM/, /--mem \d+M/);
      const g16 = testGuest(16 * MiB);
      refused(() => loadLinux({ memory: g16.memory, map: g16.map, kernel: vmlinux, cmdline, longMode: true }), /--mem \d+M/);
      refused(() => load(vmlinux.subarray(0, 4096)), /truncated/);
      const arm = vmlinux.slice(); arm[18] = 183; arm[19] = 0;
      refused(() => load(arm), /AArch64/);
      refused(() => load(initrd), /cpio/, /--initrd/);
    });

    test(`initramfs: /init, busybox for ${arch}, applet links, device nodes; gzip form identical`, () => {
      const entries = readCpio(initrd);
      const byName = new Map(entries.map((e) => [e.name, e]));
      const init = byName.get('init')!;
      expect((init.mode & S_IFMT) === S_IFREG && (init.mode & 0o111) !== 0).toBe(true);
      expect(Buffer.from(init.data).toString()).toBe(readFileSync(recipePath('init'), 'utf8'));
      expect(Buffer.from(init.data).toString()).toContain(`echo "${READY_MARKER}"`);
      const busybox = parseElf(byName.get('bin/busybox')!.data);
      expect(busybox.machine).toBe(is64 ? EM_X86_64 : EM_386);
      const sh = byName.get('bin/sh')!;
      // gen_init_cpio stores the link target with its NUL.
      expect([sh.mode & S_IFMT, Buffer.from(sh.data).toString().replace(/\0$/, '')]).toEqual([S_IFLNK, '/bin/busybox']);
      expect(Buffer.from(byName.get('etc/profile')!.data).toString()).toBe(readFileSync(recipePath('profile'), 'utf8'));
      const names = new Set(entries.map((e) => e.name.split('/').pop()));
      for (const tool of ['mount', 'cttyhack', 'setsid', 'awk', 'sha256sum', 'sh']) expect(names.has(tool), tool).toBe(true);
      const console = byName.get('dev/console')!;
      expect([console.mode & S_IFMT, console.rdevmajor, console.rdevminor]).toEqual([S_IFCHR, 5, 1]);
      for (const p of ['sbin/poweroff', 'sbin/reboot', 'sbin/halt']) {
        expect(Buffer.from(byName.get(p)!.data).toString()).toBe(readFileSync(recipePath('power'), 'utf8'));
      }
      expect(entries.every((e) => e.mtime === 0 && e.uid === 0 && e.gid === 0)).toBe(true);
      const gz = readFileSync(paths.initramfsGz);
      expect(gz.readUInt32LE(4)).toBe(0); // gzip -n: no timestamp
      expect(same(gunzipSync(gz), initrd)).toBe(true);
    });

    test('the built .config honours every recipe fragment line, and the check catches a dropped one', () => {
      const config = readFileSync(paths.config, 'utf8');
      const fragments = ARCH_RECIPES[arch].fragments;
      expect(() => verifyFragments(fragments, config, arch)).not.toThrow();
      expect(() => verifyFragments(fragments, config.replace(/^CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES=y$/m, ''), arch))
        .toThrow(/CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES =y/);
    });
  });
}
