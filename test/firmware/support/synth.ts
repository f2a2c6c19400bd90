// Small, explicit builders of kernel-shaped files for loader and ELF-reader tests: an ELF32/64
// with chosen program headers and notes, and a bzImage with a chosen setup header. Real
// kernels are tested too (images.test.ts); these cover shapes real kernels never have.

export interface SynthSegment {
  type: number;
  paddr: number;
  vaddr?: bigint;
  data: Uint8Array;
  memsz?: number;
  align?: number;
}

export interface SynthElf {
  bits: 32 | 64;
  machine: number;
  type?: number;
  entry: bigint;
  segments: SynthSegment[];
}

/** A note record: namesz, descsz, type, name (NUL-terminated), desc, each padded to 4. */
export function note(name: string, type: number, desc: Uint8Array): Uint8Array {
  const nameBytes = new TextEncoder().encode(`${name}\0`);
  const pad = (n: number) => Math.ceil(n / 4) * 4;
  const out = new Uint8Array(12 + pad(nameBytes.length) + pad(desc.length));
  const v = new DataView(out.buffer);
  v.setUint32(0, nameBytes.length, true);
  v.setUint32(4, desc.length, true);
  v.setUint32(8, type, true);
  out.set(nameBytes, 12);
  out.set(desc, 12 + pad(nameBytes.length));
  return out;
}

export function u32le(value: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, value, true);
  return b;
}

export function u64le(value: bigint): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, value, true);
  return b;
}

export function buildElf(spec: SynthElf): Uint8Array {
  const ehsize = spec.bits === 32 ? 52 : 64;
  const phentsize = spec.bits === 32 ? 32 : 56;
  let offset = ehsize + phentsize * spec.segments.length;
  const placed = spec.segments.map((s) => {
    offset = Math.ceil(offset / 16) * 16;
    const at = offset;
    offset += s.data.length;
    return at;
  });
  const out = new Uint8Array(offset);
  const v = new DataView(out.buffer);
  out.set([0x7f, 0x45, 0x4c, 0x46, spec.bits === 32 ? 1 : 2, 1, 1]);
  v.setUint16(16, spec.type ?? 2, true);
  v.setUint16(18, spec.machine, true);
  v.setUint32(20, 1, true);
  if (spec.bits === 32) {
    v.setUint32(24, Number(spec.entry), true);
    v.setUint32(28, ehsize, true);
    v.setUint16(40, ehsize, true);
    v.setUint16(42, phentsize, true);
    v.setUint16(44, spec.segments.length, true);
  } else {
    v.setBigUint64(24, spec.entry, true);
    v.setBigUint64(32, BigInt(ehsize), true);
    v.setUint16(52, ehsize, true);
    v.setUint16(54, phentsize, true);
    v.setUint16(56, spec.segments.length, true);
  }
  spec.segments.forEach((s, i) => {
    const o = ehsize + i * phentsize;
    const memsz = s.memsz ?? s.data.length;
    const vaddr = s.vaddr ?? BigInt(s.paddr);
    if (spec.bits === 32) {
      v.setUint32(o, s.type, true); v.setUint32(o + 4, placed[i]!, true); v.setUint32(o + 8, Number(vaddr), true);
      v.setUint32(o + 12, s.paddr, true); v.setUint32(o + 16, s.data.length, true); v.setUint32(o + 20, memsz, true);
      v.setUint32(o + 24, 5, true); v.setUint32(o + 28, s.align ?? 4, true);
    } else {
      v.setUint32(o, s.type, true); v.setUint32(o + 4, 5, true); v.setBigUint64(o + 8, BigInt(placed[i]!), true);
      v.setBigUint64(o + 16, vaddr, true); v.setBigUint64(o + 24, BigInt(s.paddr), true);
      v.setBigUint64(o + 32, BigInt(s.data.length), true); v.setBigUint64(o + 40, BigInt(memsz), true);
      v.setBigUint64(o + 48, BigInt(s.align ?? 4), true);
    }
    out.set(s.data, placed[i]!);
  });
  return out;
}

export interface SynthBzImage {
  version?: number;
  xloadflags?: number;
  loadflags?: number;
  initSize?: number;
  prefAddress?: number;
  cmdlineSize?: number;
  initrdAddrMax?: number;
  payload?: Uint8Array;
}

/** A bzImage-shaped file: 4 setup sectors plus boot sector, then the payload. */
export function buildBzImage(spec: SynthBzImage = {}): Uint8Array {
  const payload = spec.payload ?? new Uint8Array(4096).map((_, i) => (i * 7) & 0xff);
  const setupSects = 4;
  const kernelOffset = (setupSects + 1) * 512;
  const out = new Uint8Array(kernelOffset + payload.length);
  const v = new DataView(out.buffer);
  v.setUint8(0x1f1, setupSects);
  v.setUint32(0x1f4, Math.ceil(payload.length / 16), true);
  v.setUint16(0x1fe, 0xaa55, true);
  v.setUint8(0x200, 0xeb);
  v.setUint8(0x201, 0x6a); // header ends at 0x26c (protocol 2.15 length)
  v.setUint32(0x202, 0x53726448, true);
  v.setUint16(0x206, spec.version ?? 0x020f, true);
  v.setUint8(0x211, spec.loadflags ?? 1);
  v.setUint32(0x214, 0x100000, true);
  v.setUint32(0x22c, spec.initrdAddrMax ?? 0x7fffffff, true);
  v.setUint32(0x230, 0x200000, true);
  v.setUint8(0x234, 1);
  v.setUint16(0x236, spec.xloadflags ?? 0, true);
  v.setUint32(0x238, spec.cmdlineSize ?? 2047, true);
  v.setBigUint64(0x258, BigInt(spec.prefAddress ?? 0x1000000), true);
  v.setUint32(0x260, spec.initSize ?? 0x200000, true);
  out.set(payload, kernelOffset);
  return out;
}
