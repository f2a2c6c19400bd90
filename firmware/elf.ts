// A small ELF reader: the file header, program headers and PT_NOTE notes of 32- and 64-bit
// little-endian ELF files. That is all a kernel loader needs (sections and symbols are not
// read). Every offset and size read from the file is checked against the file before use, so
// a truncated or hostile file yields an ElfError, never an out-of-range read.
// Why hand-written rather than an npm package: see docs/firmware.md.

export const ELF_MAGIC = [0x7f, 0x45, 0x4c, 0x46] as const; // "\x7fELF"
export const EM_386 = 3;
export const EM_X86_64 = 62;
export const ET_EXEC = 2;
export const PT_LOAD = 1;
export const PT_NOTE = 4;

const MACHINE_NAMES: Record<number, string> = {
  2: 'SPARC', 3: 'i386', 8: 'MIPS', 20: 'PowerPC', 21: 'PowerPC64', 22: 's390', 40: 'ARM', 50: 'IA-64',
  62: 'x86-64', 183: 'AArch64', 243: 'RISC-V', 258: 'LoongArch',
};

export function machineName(machine: number): string {
  return MACHINE_NAMES[machine] ?? `machine ${machine}`;
}

export class ElfError extends Error {}

export interface ProgramHeader {
  type: number;
  flags: number;
  offset: number;
  /** Virtual address: bigint because x86-64 kernels link at 0xffffffff8.......... */
  vaddr: bigint;
  paddr: number;
  filesz: number;
  memsz: number;
  align: number;
}

export interface ElfNote {
  name: string;
  type: number;
  desc: Uint8Array;
}

export interface ElfFile {
  bits: 32 | 64;
  type: number;
  machine: number;
  entry: bigint;
  programHeaders: ProgramHeader[];
}

export function isElf(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && ELF_MAGIC.every((b, i) => bytes[i] === b);
}

/** Reads little-endian integers, refusing any read past the end of the file. */
class Reader {
  private readonly view: DataView;
  constructor(readonly bytes: Uint8Array) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  check(offset: number, size: number, what: string): void {
    if (offset < 0 || size < 0 || offset + size > this.bytes.length) {
      throw new ElfError(`${what} (bytes ${offset}..${offset + size}) lies beyond the end of the ${this.bytes.length}-byte file: is it truncated?`);
    }
  }
  u8(o: number): number { this.check(o, 1, 'ELF field'); return this.view.getUint8(o); }
  u16(o: number): number { this.check(o, 2, 'ELF field'); return this.view.getUint16(o, true); }
  u32(o: number): number { this.check(o, 4, 'ELF field'); return this.view.getUint32(o, true); }
  u64(o: number): bigint { this.check(o, 8, 'ELF field'); return this.view.getBigUint64(o, true); }
  /** A 64-bit field that must be an exact JS number (offsets, sizes, physical addresses). */
  n64(o: number, what: string): number {
    const v = this.u64(o);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new ElfError(`${what} 0x${v.toString(16)} is too large`);
    return Number(v);
  }
}

export function parseElf(bytes: Uint8Array): ElfFile {
  if (!isElf(bytes)) throw new ElfError('not an ELF file (no \\x7fELF magic)');
  const r = new Reader(bytes);
  r.check(0, 52, 'ELF header');
  const cls = r.u8(4);
  if (cls !== 1 && cls !== 2) throw new ElfError(`unknown ELF class ${cls} (expected 1 = 32-bit or 2 = 64-bit)`);
  if (r.u8(5) !== 1) throw new ElfError(`ELF data encoding ${r.u8(5)} is not little-endian: not an x86 file`);
  if (r.u8(6) !== 1) throw new ElfError(`unknown ELF version ${r.u8(6)}`);
  const bits = cls === 1 ? 32 : 64;
  if (bits === 64) r.check(0, 64, 'ELF header');
  const type = r.u16(16);
  const machine = r.u16(18);
  const entry = bits === 32 ? BigInt(r.u32(24)) : r.u64(24);
  const phoff = bits === 32 ? r.u32(28) : r.n64(32, 'program header offset');
  const phentsize = r.u16(bits === 32 ? 42 : 54);
  const phnum = r.u16(bits === 32 ? 44 : 56);
  const minEntry = bits === 32 ? 32 : 56;
  if (phnum > 0 && phentsize < minEntry) throw new ElfError(`program header entry size ${phentsize} is smaller than ${minEntry}`);
  r.check(phoff, phnum * phentsize, 'ELF program header table');

  const programHeaders: ProgramHeader[] = [];
  for (let i = 0; i < phnum; i++) {
    const o = phoff + i * phentsize;
    const ph: ProgramHeader = bits === 32
      ? {
        type: r.u32(o), offset: r.u32(o + 4), vaddr: BigInt(r.u32(o + 8)), paddr: r.u32(o + 12),
        filesz: r.u32(o + 16), memsz: r.u32(o + 20), flags: r.u32(o + 24), align: r.u32(o + 28),
      }
      : {
        type: r.u32(o), flags: r.u32(o + 4), offset: r.n64(o + 8, 'segment offset'), vaddr: r.u64(o + 16),
        paddr: r.n64(o + 24, 'segment physical address'), filesz: r.n64(o + 32, 'segment file size'),
        memsz: r.n64(o + 40, 'segment memory size'), align: r.n64(o + 48, 'segment alignment'),
      };
    if (ph.type === PT_LOAD || ph.type === PT_NOTE) {
      r.check(ph.offset, ph.filesz, `segment ${i} contents`);
      if (ph.type === PT_LOAD && ph.filesz > ph.memsz) {
        throw new ElfError(`segment ${i} has more file bytes (${ph.filesz}) than memory bytes (${ph.memsz})`);
      }
    }
    programHeaders.push(ph);
  }
  return { bits, type, machine, entry, programHeaders };
}

/** The notes of every PT_NOTE segment, in file order. */
export function elfNotes(bytes: Uint8Array, elf: ElfFile): ElfNote[] {
  const r = new Reader(bytes);
  const notes: ElfNote[] = [];
  const decoder = new TextDecoder();
  for (const ph of elf.programHeaders) {
    if (ph.type !== PT_NOTE) continue;
    // Padding is to 4 bytes, or 8 when the segment says so (GNU property notes). It is counted
    // from the start of the segment: descriptor at align(12 + namesz), next note at align(desc end).
    const pad = ph.align === 8 ? 8 : 4;
    const up = (n: number): number => ph.offset + Math.ceil((n - ph.offset) / pad) * pad;
    const end = ph.offset + ph.filesz;
    let o = ph.offset;
    while (o + 12 <= end) {
      const namesz = r.u32(o);
      const descsz = r.u32(o + 4);
      const type = r.u32(o + 8);
      const nameAt = o + 12;
      const descAt = up(nameAt + namesz);
      if (descAt + descsz > end) throw new ElfError(`note at file offset ${o} runs past the end of its segment`);
      // The name is NUL-terminated and namesz counts the NUL.
      const name = decoder.decode(bytes.subarray(nameAt, nameAt + Math.max(0, namesz - 1)));
      notes.push({ name, type, desc: bytes.slice(descAt, descAt + descsz) });
      o = up(descAt + descsz);
    }
  }
  return notes;
}
