// Data movement: MOV, LEA, XCHG, PUSH/POP, PUSHA/POPA, ENTER/LEAVE, XLAT.
// Register indexes follow the operand-size convention of ops-alu.ts.

import type { Cpu } from './cpu.ts';
import { ea, eaOffset, type Insn } from './insn.ts';

export function movEG32r(c: Cpu, i: Insn): void { c.r[i.rm] = c.r[i.reg]; }
export function movEG16r(c: Cpu, i: Insn): void { c.r16[i.rm] = c.r16[i.reg]; }
export function movEG8r(c: Cpu, i: Insn): void { c.r8[i.rm] = c.r8[i.reg]; }
export function movEG32m(c: Cpu, i: Insn): void { c.write32(ea(c, i), c.r[i.reg]); }
export function movEG16m(c: Cpu, i: Insn): void { c.write16(ea(c, i), c.r16[i.reg]); }
export function movEG8m(c: Cpu, i: Insn): void { c.write8(ea(c, i), c.r8[i.reg]); }
export function movGE32m(c: Cpu, i: Insn): void { c.r[i.reg] = c.read32(ea(c, i)); }
export function movGE16m(c: Cpu, i: Insn): void { c.r16[i.reg] = c.read16(ea(c, i)); }
export function movGE8m(c: Cpu, i: Insn): void { c.r8[i.reg] = c.read8(ea(c, i)); }
export function movEI32r(c: Cpu, i: Insn): void { c.r[i.rm] = i.imm; }
export function movEI16r(c: Cpu, i: Insn): void { c.r16[i.rm] = i.imm; }
export function movEI8r(c: Cpu, i: Insn): void { c.r8[i.rm] = i.imm; }
export function movEI32m(c: Cpu, i: Insn): void { c.write32(ea(c, i), i.imm); }
export function movEI16m(c: Cpu, i: Insn): void { c.write16(ea(c, i), i.imm); }
export function movEI8m(c: Cpu, i: Insn): void { c.write8(ea(c, i), i.imm); }
export function lea32(c: Cpu, i: Insn): void { c.r[i.reg] = eaOffset(c, i); }
export function lea16(c: Cpu, i: Insn): void { c.r16[i.reg] = eaOffset(c, i); }

export function xchg32r(c: Cpu, i: Insn): void { const t = c.r[i.rm]; c.r[i.rm] = c.r[i.reg]; c.r[i.reg] = t; }
export function xchg16r(c: Cpu, i: Insn): void { const t = c.r16[i.rm]; c.r16[i.rm] = c.r16[i.reg]; c.r16[i.reg] = t; }
export function xchg8r(c: Cpu, i: Insn): void { const t = c.r8[i.rm]; c.r8[i.rm] = c.r8[i.reg]; c.r8[i.reg] = t; }
export function xchg32m(c: Cpu, i: Insn): void { const l = ea(c, i), t = c.readW32(l); c.write32(l, c.r[i.reg]); c.r[i.reg] = t; }
export function xchg16m(c: Cpu, i: Insn): void { const l = ea(c, i), t = c.readW16(l); c.write16(l, c.r16[i.reg]); c.r16[i.reg] = t; }
export function xchg8m(c: Cpu, i: Insn): void { const l = ea(c, i), t = c.readW8(l); c.write8(l, c.r8[i.reg]); c.r8[i.reg] = t; }

export function nop(): void {}

export function push32r(c: Cpu, i: Insn): void { c.push32(c.r[i.rm]); }
export function push16r(c: Cpu, i: Insn): void { c.push16(c.r16[i.rm]); }
export function pop32r(c: Cpu, i: Insn): void { const v = c.pop32(); c.r[i.rm] = v; }
export function pop16r(c: Cpu, i: Insn): void { const v = c.pop16(); c.r16[i.rm] = v; }
export function push32m(c: Cpu, i: Insn): void { c.push32(c.read32(ea(c, i))); }
export function push16m(c: Cpu, i: Insn): void { c.push16(c.read16(ea(c, i))); }
export function pushI32(c: Cpu, i: Insn): void { c.push32(i.imm); }
export function pushI16(c: Cpu, i: Insn): void { c.push16(i.imm); }
// POP r/m computes its address after ESP moved; a faulting store must leave ESP as it was.
export function pop32m(c: Cpu, i: Insn): void {
  const old = c.r[4];
  const v = c.pop32();
  try { c.write32(ea(c, i), v); } catch (e) { c.r[4] = old; throw e; }
}
export function pop16m(c: Cpu, i: Insn): void {
  const old = c.r[4];
  const v = c.pop16();
  try { c.write16(ea(c, i), v); } catch (e) { c.r[4] = old; throw e; }
}

export function pusha32(c: Cpu): void {
  const r = c.r, sp = r[4];
  c.probeWrite((c.segBase[2] + (c.sp() - 32)) | 0, 32);
  for (let k = 0; k < 8; k++) c.push32(k === 4 ? sp : r[k]);
}
export function pusha16(c: Cpu): void {
  const sp = c.r16[8];
  for (let k = 0; k < 8; k++) c.push16(k === 4 ? sp : c.r16[k << 1]);
}
export function popa32(c: Cpu): void {
  const r = c.r;
  for (let k = 7; k >= 0; k--) { const v = c.pop32(); if (k !== 4) r[k] = v; }
}
export function popa16(c: Cpu): void {
  for (let k = 7; k >= 0; k--) { const v = c.pop16(); if (k !== 4) c.r16[k << 1] = v; }
}

/** ENTER imm16, imm8 (imm = frame size, imm2 = nesting level). */
export function enter(c: Cpu, i: Insn): void {
  const level = i.imm2 & 31;
  const o16 = i.o16;
  if (o16) c.push16(c.r16[10]); else c.push32(c.r[5]);
  const frame = c.sp();
  if (level > 0) {
    let bp = c.stack32 ? c.r[5] : c.r[5] & 0xffff;
    for (let k = 1; k < level; k++) {
      bp = o16 ? (bp - 2) | 0 : (bp - 4) | 0;
      const a = (c.segBase[2] + (c.stack32 ? bp : bp & 0xffff)) | 0;
      if (o16) c.push16(c.read16(a)); else c.push32(c.read32(a));
    }
    if (o16) c.push16(frame); else c.push32(frame);
  }
  if (o16) c.r16[10] = frame; else c.r[5] = frame;
  c.setSp((c.sp() - i.imm) | 0);
}
export function leave(c: Cpu, i: Insn): void {
  const bp = c.r[5];
  const sp = c.stack32 ? bp : bp & 0xffff;
  if (i.o16) { const v = c.read16((c.segBase[2] + sp) | 0); c.setSp((sp + 2) | 0); c.r16[10] = v; }
  else { const v = c.read32((c.segBase[2] + sp) | 0); c.setSp((sp + 4) | 0); c.r[5] = v; }
}

export function xlat(c: Cpu, i: Insn): void {
  const off = i.a16 ? (c.r16[6] + c.r8[0]) & 0xffff : (c.r[3] + c.r8[0]) | 0;
  c.r8[0] = c.read8((c.segBase[i.seg] + off) | 0);
}
