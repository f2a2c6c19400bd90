// Near control transfers. Each ends its block and sets c.eip itself; relative targets are
// computed from the block's linear start (c.base) plus the decoded offsets, so a block
// cached by physical address works at any linear alias.

import type { Cpu } from './cpu.ts';
import { ea, type Insn } from './insn.ts';

function next(c: Cpu, i: Insn): number { return (c.base + i.nextOff) | 0; }
function target(c: Cpu, i: Insn): number {
  const t = (c.base + i.nextOff + i.imm) | 0;
  return i.o16 ? t & 0xffff : t;
}

export function jcc(c: Cpu, i: Insn): void { c.eip = c.cond(i.op) ? target(c, i) : next(c, i); }
// The common conditions as their own handlers (32-bit operand size only): no switch on cc.
export function jz(c: Cpu, i: Insn): void { c.eip = (c.base + i.nextOff + (c.getZF() ? i.imm : 0)) | 0; }
export function jnz(c: Cpu, i: Insn): void { c.eip = (c.base + i.nextOff + (c.getZF() ? 0 : i.imm)) | 0; }
export function jb(c: Cpu, i: Insn): void { c.eip = (c.base + i.nextOff + (c.getCF() !== 0 ? i.imm : 0)) | 0; }
export function jae(c: Cpu, i: Insn): void { c.eip = (c.base + i.nextOff + (c.getCF() !== 0 ? 0 : i.imm)) | 0; }
/** LOOP with ECX (32-bit address size, 32-bit operand size). */
export function loop32(c: Cpu, i: Insn): void {
  const n = (c.r[1] - 1) | 0;
  c.r[1] = n;
  c.eip = (c.base + i.nextOff + (n !== 0 ? i.imm : 0)) | 0;
}
export function jmpRel(c: Cpu, i: Insn): void { c.eip = target(c, i); }
export function callRel(c: Cpu, i: Insn): void {
  if (i.o16) c.push16(next(c, i)); else c.push32(next(c, i));
  c.eip = target(c, i);
}
export function jmpEr(c: Cpu, i: Insn): void { c.eip = i.o16 ? c.r16[i.rm] : c.r[i.rm]; }
export function jmpEm(c: Cpu, i: Insn): void { c.eip = i.o16 ? c.read16(ea(c, i)) : c.read32(ea(c, i)); }
export function callEr(c: Cpu, i: Insn): void {
  const t = i.o16 ? c.r16[i.rm] : c.r[i.rm];
  if (i.o16) c.push16(next(c, i)); else c.push32(next(c, i));
  c.eip = t;
}
export function callEm(c: Cpu, i: Insn): void {
  const t = i.o16 ? c.read16(ea(c, i)) : c.read32(ea(c, i));
  if (i.o16) c.push16(next(c, i)); else c.push32(next(c, i));
  c.eip = t;
}
/** RET / RET imm16 (imm = bytes to release). */
export function ret(c: Cpu, i: Insn): void {
  if (i.o16) {
    const t = c.pop16();
    c.eip = t;
  } else {
    c.eip = c.pop32();
  }
  if (i.imm !== 0) c.setSp((c.sp() + i.imm) | 0);
}

/** LOOP (op 2), LOOPE (1), LOOPNE (0), JCXZ (3); the counter is CX when a16. */
export function loop(c: Cpu, i: Insn): void {
  let take: boolean;
  if (i.op === 3) {
    take = (i.a16 ? c.r16[2] : c.r[1]) === 0;
  } else {
    let n: number;
    if (i.a16) { n = (c.r16[2] - 1) & 0xffff; c.r16[2] = n; } else { n = (c.r[1] - 1) | 0; c.r[1] = n; }
    take = n !== 0 && (i.op === 2 || (i.op === 1 ? c.getZF() : !c.getZF()));
  }
  c.eip = take ? target(c, i) : next(c, i);
}
