// The ELF reader: synthetic files of both classes, hostile/truncated files, and real binaries
// on this host compared with binutils' readelf.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import { ElfError, EM_386, EM_X86_64, PT_LOAD, PT_NOTE, elfNotes, isElf, parseElf } from '../../firmware/elf.ts';
import { buildElf, note, u32le } from './support/synth.ts';

describe('synthetic ELF files', () => {
  for (const bits of [32, 64] as const) {
    test(`ELF${bits}: header, program headers and notes`, () => {
      const code = new Uint8Array(100).fill(0x90);
      const notes = new Uint8Array([...note('GNU', 3, new Uint8Array([1, 2, 3, 4, 5])), ...note('Xen', 18, u32le(0x1000010))]);
      const vaddr = bits === 64 ? 0xffffffff81000000n : 0xc1000000n;
      const file = buildElf({
        bits, machine: bits === 64 ? EM_X86_64 : EM_386, entry: 0x1000000n,
        segments: [
          { type: PT_LOAD, paddr: 0x1000000, vaddr, data: code, memsz: 0x3000, align: 0x200000 },
          { type: PT_NOTE, paddr: 0x1003000, data: notes },
        ],
      });
      expect(isElf(file)).toBe(true);
      const elf = parseElf(file);
      expect(elf.bits).toBe(bits);
      expect(elf.machine).toBe(bits === 64 ? EM_X86_64 : EM_386);
      expect(elf.entry).toBe(0x1000000n);
      expect(elf.programHeaders).toHaveLength(2);
      expect(elf.programHeaders[0]).toMatchObject({ type: PT_LOAD, paddr: 0x1000000, vaddr, filesz: 100, memsz: 0x3000, align: 0x200000 });
      const load = elf.programHeaders[0]!;
      expect(file.subarray(load.offset, load.offset + load.filesz)).toEqual(code);
      const found = elfNotes(file, elf);
      expect(found.map((n) => [n.name, n.type, n.desc.length])).toEqual([['GNU', 3, 5], ['Xen', 18, 4]]);
      expect(found[1]!.desc).toEqual(u32le(0x1000010));
    });
  }

  test('every truncation of a valid file is refused with ElfError, never a crash or a wrong read', () => {
    const file = buildElf({
      bits: 64, machine: EM_X86_64, entry: 0x1000000n,
      segments: [{ type: PT_LOAD, paddr: 0x1000000, data: new Uint8Array(64).fill(1) }, { type: PT_NOTE, paddr: 0, data: note('Xen', 18, u32le(1)) }],
    });
    for (let len = 4; len < file.length; len++) {
      expect(() => { const elf = parseElf(file.subarray(0, len)); elfNotes(file.subarray(0, len), elf); }, `length ${len}`).toThrow(ElfError);
    }
  });

  test('refuses big-endian files, unknown classes, filesz > memsz and notes overrunning their segment', () => {
    const good = buildElf({ bits: 32, machine: EM_386, entry: 0n, segments: [{ type: PT_LOAD, paddr: 0x100000, data: new Uint8Array(16) }] });
    const be = good.slice(); be[5] = 2;
    expect(() => parseElf(be)).toThrow(/little-endian/);
    const cls = good.slice(); cls[4] = 7;
    expect(() => parseElf(cls)).toThrow(/class 7/);
    const bigFile = buildElf({ bits: 32, machine: EM_386, entry: 0n, segments: [{ type: PT_LOAD, paddr: 0x100000, data: new Uint8Array(16), memsz: 8 }] });
    expect(() => parseElf(bigFile)).toThrow(/more file bytes/);
    const n = note('Xen', 18, u32le(1));
    new DataView(n.buffer).setUint32(4, 400, true); // descsz past the segment
    const badNote = buildElf({ bits: 32, machine: EM_386, entry: 0n, segments: [{ type: PT_NOTE, paddr: 0, data: n }] });
    expect(() => elfNotes(badNote, parseElf(badNote))).toThrow(/runs past/);
    expect(() => parseElf(new TextEncoder().encode('hello'))).toThrow(/not an ELF/);
  });
});

// Differential: the reader against readelf on real binaries of this host.
const readelf = ['/usr/bin/readelf', '/bin/readelf'].find(existsSync);
if (!readelf) console.warn('elf.test: readelf (binutils) not found: skipping the comparison with real binaries');

describe.skipIf(!readelf)('real binaries compared with readelf', () => {
  for (const path of ['/bin/true', '/usr/bin/node', process.execPath].filter((p, i, a) => existsSync(p) && a.indexOf(p) === i)) {
    test(`${path}: program headers and notes match readelf`, () => {
      const bytes = new Uint8Array(readFileSync(path));
      const elf = parseElf(bytes);
      const out = execFileSync(readelf!, ['-lW', path], { encoding: 'utf8' });
      // "  LOAD 0x000000 0x0000000000000000 0x0000000000000000 0x0032b8 0x0032b8 R   0x1000"
      const loads = [...out.matchAll(/^\s+LOAD\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)/gm)]
        .map((m) => ({ offset: parseInt(m[1]!, 16), vaddr: BigInt(`0x${m[2]}`), paddr: parseInt(m[3]!, 16), filesz: parseInt(m[4]!, 16), memsz: parseInt(m[5]!, 16) }));
      expect(loads.length).toBeGreaterThan(0);
      expect(elf.programHeaders.filter((p) => p.type === PT_LOAD).map(({ offset, vaddr, paddr, filesz, memsz }) => ({ offset, vaddr, paddr, filesz, memsz }))).toEqual(loads);
      const noteOwners = [...execFileSync(readelf!, ['-nW', path], { encoding: 'utf8' }).matchAll(/^\s+(\S+)\s+0x[0-9a-f]+\s+NT_/gm)].map((m) => m[1]);
      // readelf -n reads note sections; PT_NOTE segments cover the same notes in an executable.
      expect(elfNotes(bytes, elf).map((n) => n.name).sort()).toEqual(noteOwners.sort());
    });
  }
});
