// String instructions (MOVS, STOS, LODS, CMPS, SCAS) with REP prefixes. i.imm = element
// size (1, 2, 4), i.seg = source segment (DS unless overridden), destination is always ES.
// REP MOVS/STOS with DF=0 copy page-sized chunks straight between RAM views.

import type { Cpu } from './cpu.ts';
import { alu } from './ops-alu.ts';
import type { Insn } from './insn.ts';

function rd(c: Cpu, lin: number, size: number): number {
  return size === 1 ? c.read8(lin) : size === 2 ? c.read16(lin) : c.read32(lin);
}
function wr(c: Cpu, lin: number, v: number, size: number): void {
  if (size === 1) c.write8(lin, v); else if (size === 2) c.write16(lin, v); else c.write32(lin, v);
}
function step(c: Cpu, size: number): number { return (c.eflags & 0x400) !== 0 ? -size : size; }

// Index registers: ESI/EDI or SI/DI (a16), ECX or CX.
function getSi(c: Cpu, i: Insn): number { return i.a16 ? c.r16[12] : c.r[6]; }
function getDi(c: Cpu, i: Insn): number { return i.a16 ? c.r16[14] : c.r[7]; }
function setSi(c: Cpu, i: Insn, v: number): void { if (i.a16) c.r16[12] = v; else c.r[6] = v; }
function setDi(c: Cpu, i: Insn, v: number): void { if (i.a16) c.r16[14] = v; else c.r[7] = v; }
function getCx(c: Cpu, i: Insn): number { return i.a16 ? c.r16[2] : c.r[1]; }
function setCx(c: Cpu, i: Insn, v: number): void { if (i.a16) c.r16[2] = v; else c.r[1] = v; }

export function movs(c: Cpu, i: Insn): void {
  const size = i.imm, d = step(c, size);
  if (i.rep === 0) {
    const v = rd(c, (c.segBase[i.seg] + getSi(c, i)) | 0, size);
    wr(c, (c.segBase[0] + getDi(c, i)) | 0, v, size);
    setSi(c, i, (getSi(c, i) + d) | 0); setDi(c, i, (getDi(c, i) + d) | 0);
    return;
  }
  let n = getCx(c, i) >>> 0;
  while (n !== 0) {
    const si = getSi(c, i), di = getDi(c, i);
    const src = (c.segBase[i.seg] + si) | 0, dst = (c.segBase[0] + di) | 0;
    if (d > 0 && !i.a16) {
      // Bulk: as many elements as fit in both pages, when both translate in the TLB.
      const xs = c.tlbR[src >>> 12], xd = c.tlbW[dst >>> 12];
      if (xs !== -1 && xd !== -1) {
        const room = Math.min(0x1000 - (src & 0xfff), 0x1000 - (dst & 0xfff));
        let k = Math.floor(room / size);
        if (k > n) k = n;
        if (k > 0) {
          const ps = src ^ xs, pd = dst ^ xd, bytes = k * size;
          // Overlap with dst just above src must replicate like the element-wise loop.
          if (pd > ps && pd < ps + bytes) { k = 0; }
          else {
            c.mem.copyWithin(pd, ps, ps + bytes);
            n -= k;
            setSi(c, i, (si + bytes) | 0); setDi(c, i, (di + bytes) | 0); setCx(c, i, n);
            continue;
          }
        }
      }
    }
    const v = rd(c, src, size);
    wr(c, dst, v, size);
    n--;
    setSi(c, i, (si + d) | 0); setDi(c, i, (di + d) | 0); setCx(c, i, n);
    if (c.stop !== 0) { if (n !== 0) { c.eip = (c.base + i.off) | 0; c.stop = 2; } return; }
  }
}

export function stos(c: Cpu, i: Insn): void {
  const size = i.imm, d = step(c, size);
  const v = size === 1 ? c.r8[0] : size === 2 ? c.r16[0] : c.r[0];
  if (i.rep === 0) {
    wr(c, (c.segBase[0] + getDi(c, i)) | 0, v, size);
    setDi(c, i, (getDi(c, i) + d) | 0);
    return;
  }
  let n = getCx(c, i) >>> 0;
  while (n !== 0) {
    const di = getDi(c, i);
    const dst = (c.segBase[0] + di) | 0;
    if (d > 0 && !i.a16) {
      const xd = c.tlbW[dst >>> 12];
      if (xd !== -1) {
        let k = Math.floor((0x1000 - (dst & 0xfff)) / size);
        if (k > n) k = n;
        if (k > 0) {
          const pd = dst ^ xd;
          if (size === 1) c.mem.fill(v & 0xff, pd, pd + k);
          else if (size === 4 && (pd & 3) === 0) c.mem32.fill(v, pd >>> 2, (pd >>> 2) + k);
          else for (let j = 0; j < k; j++) { const p = pd + j * size; c.mem[p] = v; c.mem[p + 1] = v >> 8; if (size === 4) { c.mem[p + 2] = v >> 16; c.mem[p + 3] = v >> 24; } }
          n -= k;
          setDi(c, i, (di + k * size) | 0); setCx(c, i, n);
          continue;
        }
      }
    }
    wr(c, dst, v, size);
    n--;
    setDi(c, i, (di + d) | 0); setCx(c, i, n);
    if (c.stop !== 0) { if (n !== 0) { c.eip = (c.base + i.off) | 0; c.stop = 2; } return; }
  }
}

export function lods(c: Cpu, i: Insn): void {
  const size = i.imm, d = step(c, size);
  let n = i.rep === 0 ? 1 : getCx(c, i) >>> 0;
  while (n !== 0) {
    const si = getSi(c, i);
    const v = rd(c, (c.segBase[i.seg] + si) | 0, size);
    if (size === 1) c.r8[0] = v; else if (size === 2) c.r16[0] = v; else c.r[0] = v;
    setSi(c, i, (si + d) | 0);
    n--;
    if (i.rep !== 0) setCx(c, i, n);
  }
}

/** CMPS (op 0) and SCAS (op 1); REPE (rep 1) stops on not-equal, REPNE (rep 2) on equal. */
export function cmps(c: Cpu, i: Insn): void {
  const size = i.imm, d = step(c, size), sh = 32 - size * 8;
  let n = i.rep === 0 ? 1 : getCx(c, i) >>> 0;
  while (n !== 0) {
    const di = getDi(c, i);
    let a: number;
    if (i.op === 0) {
      const si = getSi(c, i);
      a = rd(c, (c.segBase[i.seg] + si) | 0, size);
      const b = rd(c, (c.segBase[0] + di) | 0, size);
      alu(c, 7, a, b, sh);
      setSi(c, i, (si + d) | 0);
    } else {
      a = size === 1 ? c.r8[0] : size === 2 ? c.r16[0] : c.r[0];
      alu(c, 7, a, rd(c, (c.segBase[0] + di) | 0, size), sh);
    }
    setDi(c, i, (di + d) | 0);
    n--;
    if (i.rep === 0) return;
    setCx(c, i, n);
    const zf = (c.ccRes << sh) === 0;
    if (i.rep === 1 ? !zf : zf) return;
  }
}
