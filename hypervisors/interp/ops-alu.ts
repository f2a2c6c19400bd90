// Integer ALU instructions: the eight classic ALU ops, INC/DEC/NEG/NOT, TEST, shifts and
// rotates, multiply/divide, bit tests and scans, SETcc/CMOVcc, XADD/CMPXCHG, BSWAP, MOVZX/MOVSX.
//
// Operand-size convention: for 32-bit handlers `reg`/`rm` index c.r, for 16-bit c.r16, for
// 8-bit c.r8 (the decoder converts register numbers). Results are computed unmasked and
// truncated by the typed-array store; lazy flags shift by c.ccShift (0, 16, 24).

import { ARITH, AF, CC_ADC, CC_ADD, CC_DEC, CC_INC, CC_LOGIC, CC_SBB, CC_SUB, CF, OF, PARITY, PF, SF, ZF } from './state.ts';
import type { Cpu } from './cpu.ts';
import { ea, type Insn } from './insn.ts';

export function alu(c: Cpu, op: number, a: number, b: number, sh: number): number {
  let r: number;
  switch (op) {
    case 0: r = (a + b) | 0; c.ccOp = CC_ADD; break;
    case 1: r = a | b; c.ccOp = CC_LOGIC; break;
    case 2: { const cin = c.getCF(); r = (a + b + cin) | 0; c.ccCin = cin; c.ccOp = CC_ADC; break; }
    case 3: { const cin = c.getCF(); r = (a - b - cin) | 0; c.ccCin = cin; c.ccOp = CC_SBB; break; }
    case 4: r = a & b; c.ccOp = CC_LOGIC; break;
    case 6: r = a ^ b; c.ccOp = CC_LOGIC; break;
    default: r = (a - b) | 0; c.ccOp = CC_SUB; break; // 5 SUB, 7 CMP
  }
  c.ccA = a; c.ccB = b; c.ccRes = r; c.ccShift = sh; c.lazy = ARITH;
  return r;
}

/** Flags of a logical result (TEST, and SZP of shifts): CF=OF=0. */
function logic(c: Cpu, r: number, sh: number): void {
  c.ccOp = CC_LOGIC; c.ccA = 0; c.ccB = 0; c.ccRes = r; c.ccShift = sh; c.lazy = ARITH;
}

// ---- ALU op E,G / G,E / E,imm (op 7 = CMP writes nothing)
export function aluEG32r(c: Cpu, i: Insn): void { const r = alu(c, i.op, c.r[i.rm], c.r[i.reg], 0); if (i.op !== 7) c.r[i.rm] = r; }
export function aluEG16r(c: Cpu, i: Insn): void { const r = alu(c, i.op, c.r16[i.rm], c.r16[i.reg], 16); if (i.op !== 7) c.r16[i.rm] = r; }
export function aluEG8r(c: Cpu, i: Insn): void { const r = alu(c, i.op, c.r8[i.rm], c.r8[i.reg], 24); if (i.op !== 7) c.r8[i.rm] = r; }
export function aluEG32m(c: Cpu, i: Insn): void {
  const lin = ea(c, i);
  if (i.op === 7) { alu(c, 7, c.read32(lin), c.r[i.reg], 0); return; }
  c.write32(lin, alu(c, i.op, c.readW32(lin), c.r[i.reg], 0));
}
export function aluEG16m(c: Cpu, i: Insn): void {
  const lin = ea(c, i);
  if (i.op === 7) { alu(c, 7, c.read16(lin), c.r16[i.reg], 16); return; }
  c.write16(lin, alu(c, i.op, c.readW16(lin), c.r16[i.reg], 16));
}
export function aluEG8m(c: Cpu, i: Insn): void {
  const lin = ea(c, i);
  if (i.op === 7) { alu(c, 7, c.read8(lin), c.r8[i.reg], 24); return; }
  c.write8(lin, alu(c, i.op, c.readW8(lin), c.r8[i.reg], 24));
}
export function aluGE32m(c: Cpu, i: Insn): void { const r = alu(c, i.op, c.r[i.reg], c.read32(ea(c, i)), 0); if (i.op !== 7) c.r[i.reg] = r; }
export function aluGE16m(c: Cpu, i: Insn): void { const r = alu(c, i.op, c.r16[i.reg], c.read16(ea(c, i)), 16); if (i.op !== 7) c.r16[i.reg] = r; }
export function aluGE8m(c: Cpu, i: Insn): void { const r = alu(c, i.op, c.r8[i.reg], c.read8(ea(c, i)), 24); if (i.op !== 7) c.r8[i.reg] = r; }
export function aluEI32r(c: Cpu, i: Insn): void { const r = alu(c, i.op, c.r[i.rm], i.imm, 0); if (i.op !== 7) c.r[i.rm] = r; }
export function aluEI16r(c: Cpu, i: Insn): void { const r = alu(c, i.op, c.r16[i.rm], i.imm, 16); if (i.op !== 7) c.r16[i.rm] = r; }
export function aluEI8r(c: Cpu, i: Insn): void { const r = alu(c, i.op, c.r8[i.rm], i.imm, 24); if (i.op !== 7) c.r8[i.rm] = r; }
export function aluEI32m(c: Cpu, i: Insn): void {
  const lin = ea(c, i);
  if (i.op === 7) { alu(c, 7, c.read32(lin), i.imm, 0); return; }
  c.write32(lin, alu(c, i.op, c.readW32(lin), i.imm, 0));
}
export function aluEI16m(c: Cpu, i: Insn): void {
  const lin = ea(c, i);
  if (i.op === 7) { alu(c, 7, c.read16(lin), i.imm, 16); return; }
  c.write16(lin, alu(c, i.op, c.readW16(lin), i.imm, 16));
}
export function aluEI8m(c: Cpu, i: Insn): void {
  const lin = ea(c, i);
  if (i.op === 7) { alu(c, 7, c.read8(lin), i.imm, 24); return; }
  c.write8(lin, alu(c, i.op, c.readW8(lin), i.imm, 24));
}

// ---- Hot special cases the decoder picks for 32-bit register forms.
export function add32rr(c: Cpu, i: Insn): void {
  const a = c.r[i.rm], b = c.r[i.reg], r = (a + b) | 0;
  c.r[i.rm] = r; c.ccOp = CC_ADD; c.ccA = a; c.ccB = b; c.ccRes = r; c.ccShift = 0; c.lazy = ARITH;
}
export function sub32rr(c: Cpu, i: Insn): void {
  const a = c.r[i.rm], b = c.r[i.reg], r = (a - b) | 0;
  c.r[i.rm] = r; c.ccOp = CC_SUB; c.ccA = a; c.ccB = b; c.ccRes = r; c.ccShift = 0; c.lazy = ARITH;
}
export function cmp32rr(c: Cpu, i: Insn): void {
  const a = c.r[i.rm], b = c.r[i.reg];
  c.ccOp = CC_SUB; c.ccA = a; c.ccB = b; c.ccRes = (a - b) | 0; c.ccShift = 0; c.lazy = ARITH;
}
export function xor32rr(c: Cpu, i: Insn): void {
  const r = c.r[i.rm] ^ c.r[i.reg];
  c.r[i.rm] = r; c.ccOp = CC_LOGIC; c.ccA = 0; c.ccB = 0; c.ccRes = r; c.ccShift = 0; c.lazy = ARITH;
}
export function add32ri(c: Cpu, i: Insn): void {
  const a = c.r[i.rm], b = i.imm, r = (a + b) | 0;
  c.r[i.rm] = r; c.ccOp = CC_ADD; c.ccA = a; c.ccB = b; c.ccRes = r; c.ccShift = 0; c.lazy = ARITH;
}
export function sub32ri(c: Cpu, i: Insn): void {
  const a = c.r[i.rm], b = i.imm, r = (a - b) | 0;
  c.r[i.rm] = r; c.ccOp = CC_SUB; c.ccA = a; c.ccB = b; c.ccRes = r; c.ccShift = 0; c.lazy = ARITH;
}
export function cmp32ri(c: Cpu, i: Insn): void {
  const a = c.r[i.rm], b = i.imm;
  c.ccOp = CC_SUB; c.ccA = a; c.ccB = b; c.ccRes = (a - b) | 0; c.ccShift = 0; c.lazy = ARITH;
}

export function or32rr(c: Cpu, i: Insn): void {
  const r = c.r[i.rm] | c.r[i.reg];
  c.r[i.rm] = r; c.ccOp = CC_LOGIC; c.ccA = 0; c.ccB = 0; c.ccRes = r; c.ccShift = 0; c.lazy = ARITH;
}
export function and32rr(c: Cpu, i: Insn): void {
  const r = c.r[i.rm] & c.r[i.reg];
  c.r[i.rm] = r; c.ccOp = CC_LOGIC; c.ccA = 0; c.ccB = 0; c.ccRes = r; c.ccShift = 0; c.lazy = ARITH;
}
export function and32ri(c: Cpu, i: Insn): void {
  const r = c.r[i.rm] & i.imm;
  c.r[i.rm] = r; c.ccOp = CC_LOGIC; c.ccA = 0; c.ccB = 0; c.ccRes = r; c.ccShift = 0; c.lazy = ARITH;
}
export function or32ri(c: Cpu, i: Insn): void {
  const r = c.r[i.rm] | i.imm;
  c.r[i.rm] = r; c.ccOp = CC_LOGIC; c.ccA = 0; c.ccB = 0; c.ccRes = r; c.ccShift = 0; c.lazy = ARITH;
}
export function inc32r(c: Cpu, i: Insn): void {
  if ((c.lazy & CF) !== 0) c.eflags = (c.eflags & ~CF) | c.getCF();
  const a = c.r[i.rm], r = (a + 1) | 0;
  c.r[i.rm] = r; c.ccOp = CC_INC; c.ccA = a; c.ccB = 1; c.ccRes = r; c.ccShift = 0; c.lazy = ARITH & ~CF;
}
export function dec32r(c: Cpu, i: Insn): void {
  if ((c.lazy & CF) !== 0) c.eflags = (c.eflags & ~CF) | c.getCF();
  const a = c.r[i.rm], r = (a - 1) | 0;
  c.r[i.rm] = r; c.ccOp = CC_DEC; c.ccA = a; c.ccB = 1; c.ccRes = r; c.ccShift = 0; c.lazy = ARITH & ~CF;
}
/** SHL/SHR/SAR r32, imm8 with a non-zero masked count (the decoder checks): all six flags set. */
export function shl32ri(c: Cpu, i: Insn): void {
  const v = c.r[i.rm], n = i.imm, r = v << n, cf = (v >>> (32 - n)) & 1;
  c.r[i.rm] = r;
  c.eflags = (c.eflags & ~ARITH) | cf | (((r >>> 31) ^ cf) !== 0 ? OF : 0);
  c.ccOp = CC_LOGIC; c.ccA = 0; c.ccB = 0; c.ccRes = r; c.ccShift = 0; c.lazy = ZF | SF | PF;
}
export function shr32ri(c: Cpu, i: Insn): void {
  const v = c.r[i.rm], n = i.imm, r = v >>> n;
  c.r[i.rm] = r;
  c.eflags = (c.eflags & ~ARITH) | ((v >>> (n - 1)) & 1) | (v < 0 ? OF : 0);
  c.ccOp = CC_LOGIC; c.ccA = 0; c.ccB = 0; c.ccRes = r; c.ccShift = 0; c.lazy = ZF | SF | PF;
}
export function sar32ri(c: Cpu, i: Insn): void {
  const v = c.r[i.rm], n = i.imm, r = v >> n;
  c.r[i.rm] = r;
  c.eflags = (c.eflags & ~ARITH) | ((v >> (n - 1)) & 1);
  c.ccOp = CC_LOGIC; c.ccA = 0; c.ccB = 0; c.ccRes = r; c.ccShift = 0; c.lazy = ZF | SF | PF;
}

// ---- TEST
export function test32r(c: Cpu, i: Insn): void { logic(c, c.r[i.rm] & c.r[i.reg], 0); }
export function test16r(c: Cpu, i: Insn): void { logic(c, c.r16[i.rm] & c.r16[i.reg], 16); }
export function test8r(c: Cpu, i: Insn): void { logic(c, c.r8[i.rm] & c.r8[i.reg], 24); }
export function test32m(c: Cpu, i: Insn): void { logic(c, c.read32(ea(c, i)) & c.r[i.reg], 0); }
export function test16m(c: Cpu, i: Insn): void { logic(c, c.read16(ea(c, i)) & c.r16[i.reg], 16); }
export function test8m(c: Cpu, i: Insn): void { logic(c, c.read8(ea(c, i)) & c.r8[i.reg], 24); }
export function testI32r(c: Cpu, i: Insn): void { logic(c, c.r[i.rm] & i.imm, 0); }
export function testI16r(c: Cpu, i: Insn): void { logic(c, c.r16[i.rm] & i.imm, 16); }
export function testI8r(c: Cpu, i: Insn): void { logic(c, c.r8[i.rm] & i.imm, 24); }
export function testI32m(c: Cpu, i: Insn): void { logic(c, c.read32(ea(c, i)) & i.imm, 0); }
export function testI16m(c: Cpu, i: Insn): void { logic(c, c.read16(ea(c, i)) & i.imm, 16); }
export function testI8m(c: Cpu, i: Insn): void { logic(c, c.read8(ea(c, i)) & i.imm, 24); }

// ---- INC / DEC (CF preserved) / NOT / NEG
function incdec(c: Cpu, a: number, dec: boolean, sh: number): number {
  if ((c.lazy & CF) !== 0) c.eflags = (c.eflags & ~CF) | c.getCF();
  const r = dec ? (a - 1) | 0 : (a + 1) | 0;
  c.ccOp = dec ? CC_DEC : CC_INC; c.ccA = a; c.ccB = 1; c.ccRes = r; c.ccShift = sh; c.lazy = ARITH & ~CF;
  return r;
}
/** INC/DEC r32 (40-4F); op = 1 for DEC. */
export function incdec32r(c: Cpu, i: Insn): void { c.r[i.rm] = incdec(c, c.r[i.rm], i.op === 1, 0); }
export function incdec16r(c: Cpu, i: Insn): void { c.r16[i.rm] = incdec(c, c.r16[i.rm], i.op === 1, 16); }
export function incdec8r(c: Cpu, i: Insn): void { c.r8[i.rm] = incdec(c, c.r8[i.rm], i.op === 1, 24); }
export function incdec32m(c: Cpu, i: Insn): void { const l = ea(c, i); c.write32(l, incdec(c, c.readW32(l), i.op === 1, 0)); }
export function incdec16m(c: Cpu, i: Insn): void { const l = ea(c, i); c.write16(l, incdec(c, c.readW16(l), i.op === 1, 16)); }
export function incdec8m(c: Cpu, i: Insn): void { const l = ea(c, i); c.write8(l, incdec(c, c.readW8(l), i.op === 1, 24)); }
export function not32r(c: Cpu, i: Insn): void { c.r[i.rm] = ~c.r[i.rm]; }
export function not16r(c: Cpu, i: Insn): void { c.r16[i.rm] = ~c.r16[i.rm]; }
export function not8r(c: Cpu, i: Insn): void { c.r8[i.rm] = ~c.r8[i.rm]; }
export function not32m(c: Cpu, i: Insn): void { const l = ea(c, i); c.write32(l, ~c.readW32(l)); }
export function not16m(c: Cpu, i: Insn): void { const l = ea(c, i); c.write16(l, ~c.readW16(l)); }
export function not8m(c: Cpu, i: Insn): void { const l = ea(c, i); c.write8(l, ~c.readW8(l)); }
export function neg32r(c: Cpu, i: Insn): void { c.r[i.rm] = alu(c, 5, 0, c.r[i.rm], 0); }
export function neg16r(c: Cpu, i: Insn): void { c.r16[i.rm] = alu(c, 5, 0, c.r16[i.rm], 16); }
export function neg8r(c: Cpu, i: Insn): void { c.r8[i.rm] = alu(c, 5, 0, c.r8[i.rm], 24); }
export function neg32m(c: Cpu, i: Insn): void { const l = ea(c, i); c.write32(l, alu(c, 5, 0, c.readW32(l), 0)); }
export function neg16m(c: Cpu, i: Insn): void { const l = ea(c, i); c.write16(l, alu(c, 5, 0, c.readW16(l), 16)); }
export function neg8m(c: Cpu, i: Insn): void { const l = ea(c, i); c.write8(l, alu(c, 5, 0, c.readW8(l), 24)); }

// ---- Shifts and rotates. op: 0 ROL 1 ROR 2 RCL 3 RCR 4 SHL 5 SHR 6 SAL 7 SAR.
// Returns the result; leaves flags untouched when the masked count is 0.
export function shift(c: Cpu, op: number, v: number, count: number, bits: number): number {
  count &= 31;
  if (count === 0) return v;
  if (bits === 32 && op >= 4) {
    // Hot path: 32-bit SHL/SHR/SAR set all six arithmetic flags, so nothing needs settling.
    let r: number, cf: number, of: number;
    if (op === 5) { r = v >>> count; cf = (v >>> (count - 1)) & 1; of = v < 0 ? OF : 0; }
    else if (op === 7) { r = v >> count; cf = (v >> (count - 1)) & 1; of = 0; }
    else { r = v << count; cf = (v >>> (32 - count)) & 1; of = ((r >>> 31) ^ cf) !== 0 ? OF : 0; }
    c.eflags = (c.eflags & ~ARITH) | cf | of;
    c.ccOp = CC_LOGIC; c.ccA = 0; c.ccB = 0; c.ccRes = r; c.ccShift = 0; c.lazy = ZF | SF | PF;
    return r;
  }
  const sh = 32 - bits;
  const mask = bits === 32 ? -1 : (1 << bits) - 1;
  v &= mask;
  let r: number, cf: number, of: number;
  switch (op) {
    case 0: { // ROL
      const n = count % bits;
      r = n === 0 ? v : ((v << n) | (v >>> (bits - n))) & mask;
      cf = r & 1;
      of = ((r >>> (bits - 1)) & 1) ^ cf;
      break;
    }
    case 1: { // ROR
      const n = count % bits;
      r = n === 0 ? v : ((v >>> n) | (v << (bits - n))) & mask;
      cf = (r >>> (bits - 1)) & 1;
      of = cf ^ ((r >>> (bits - 2)) & 1);
      break;
    }
    case 2: { // RCL: rotate through CF (a bits+1 wide rotation)
      const n = bits === 32 ? count : count % (bits + 1);
      cf = c.getCF();
      r = v;
      for (let k = 0; k < n; k++) {
        const out = (r >>> (bits - 1)) & 1;
        r = ((r << 1) | cf) & mask;
        cf = out;
      }
      of = ((r >>> (bits - 1)) & 1) ^ cf;
      break;
    }
    case 3: { // RCR
      const n = bits === 32 ? count : count % (bits + 1);
      cf = c.getCF();
      r = v;
      of = ((r >>> (bits - 1)) & 1) ^ cf;
      for (let k = 0; k < n; k++) {
        const out = r & 1;
        r = ((r >>> 1) | (cf << (bits - 1))) & mask;
        cf = out;
      }
      break;
    }
    case 4: case 6: { // SHL
      r = count < 32 ? (v << count) & mask : 0;
      cf = count <= bits ? (v >>> (bits - count)) & 1 : 0;
      of = ((r >>> (bits - 1)) & 1) ^ cf;
      break;
    }
    case 5: { // SHR
      r = v >>> count;
      cf = (v >>> (count - 1)) & 1;
      of = (v >>> (bits - 1)) & 1;
      break;
    }
    default: { // SAR
      const sv = (v << sh) >> sh;
      r = (sv >> count) & mask;
      cf = (sv >> (count - 1)) & 1;
      of = 0;
      break;
    }
  }
  if (op < 4) {
    // Rotates change only CF and OF.
    c.settleFlags();
    c.eflags = (c.eflags & ~(CF | OF)) | cf | (of ? OF : 0);
  } else {
    c.eflags = (c.eflags & ~ARITH) | cf | (of ? OF : 0);
    c.ccOp = CC_LOGIC; c.ccA = 0; c.ccB = 0; c.ccRes = r; c.ccShift = sh; c.lazy = ZF | SF | PF;
  }
  return r;
}
/** Shift count source: imm (C0/C1), 1 (D0/D1) or CL (D2/D3), chosen by the decoder into imm/imm2. */
function count(c: Cpu, i: Insn): number { return i.imm2 === 1 ? c.r8[4] : i.imm; }
export function shift32r(c: Cpu, i: Insn): void { c.r[i.rm] = shift(c, i.op, c.r[i.rm], count(c, i), 32); }
export function shift16r(c: Cpu, i: Insn): void { c.r16[i.rm] = shift(c, i.op, c.r16[i.rm], count(c, i), 16); }
export function shift8r(c: Cpu, i: Insn): void { c.r8[i.rm] = shift(c, i.op, c.r8[i.rm], count(c, i), 8); }
export function shift32m(c: Cpu, i: Insn): void { const l = ea(c, i); c.write32(l, shift(c, i.op, c.readW32(l), count(c, i), 32)); }
export function shift16m(c: Cpu, i: Insn): void { const l = ea(c, i); c.write16(l, shift(c, i.op, c.readW16(l), count(c, i), 16)); }
export function shift8m(c: Cpu, i: Insn): void { const l = ea(c, i); c.write8(l, shift(c, i.op, c.readW8(l), count(c, i), 8)); }

/** SHLD (op 0) / SHRD (op 1) of `dst` with bits from `src`. */
function shiftd(c: Cpu, left: boolean, dst: number, src: number, cnt: number, bits: number): number {
  cnt &= 31;
  if (cnt === 0) return dst;
  let r: number, cf: number;
  if (bits === 32) {
    if (left) { r = (dst << cnt) | (src >>> (32 - cnt)); cf = (dst >>> (32 - cnt)) & 1; }
    else { r = (dst >>> cnt) | (src << (32 - cnt)); cf = (dst >>> (cnt - 1)) & 1; }
  } else {
    // 16-bit: operate on the 32-bit concatenation (counts > 16 give undefined results).
    const d = dst & 0xffff, s = src & 0xffff;
    if (left) {
      if (cnt <= 16) { r = ((((d << 16) | s) << cnt) >>> 16) & 0xffff; cf = (d >>> (16 - cnt)) & 1; }
      else { r = ((((s << 16) | d) << (cnt - 16)) >>> 16) & 0xffff; cf = (s >>> (32 - cnt)) & 1; }
    } else {
      const w = ((s << 16) | d) >>> 0;
      const x = cnt <= 16 ? w >>> cnt : ((d << 16) | s) >>> (cnt - 16);
      r = x & 0xffff;
      cf = cnt <= 16 ? (d >>> (cnt - 1)) & 1 : (s >>> (cnt - 17)) & 1;
    }
  }
  const sh = 32 - bits;
  const of = (((r ^ dst) << sh) < 0) ? OF : 0;
  c.eflags = (c.eflags & ~ARITH) | cf | of;
  c.ccOp = CC_LOGIC; c.ccA = 0; c.ccB = 0; c.ccRes = r; c.ccShift = sh; c.lazy = ZF | SF | PF;
  return r;
}
function dcount(c: Cpu, i: Insn): number { return i.imm2 === 1 ? c.r8[4] : i.imm; }
export function shd32r(c: Cpu, i: Insn): void { c.r[i.rm] = shiftd(c, i.op === 0, c.r[i.rm], c.r[i.reg], dcount(c, i), 32); }
export function shd16r(c: Cpu, i: Insn): void { c.r16[i.rm] = shiftd(c, i.op === 0, c.r16[i.rm], c.r16[i.reg], dcount(c, i), 16); }
export function shd32m(c: Cpu, i: Insn): void { const l = ea(c, i); c.write32(l, shiftd(c, i.op === 0, c.readW32(l), c.r[i.reg], dcount(c, i), 32)); }
export function shd16m(c: Cpu, i: Insn): void { const l = ea(c, i); c.write16(l, shiftd(c, i.op === 0, c.readW16(l), c.r16[i.reg], dcount(c, i), 16)); }

// ---- Multiply and divide
/** Flags after MUL/IMUL: CF=OF=overflow; SF/ZF/PF from the low result (architecturally undefined). */
function mulFlags(c: Cpu, lo: number, overflow: boolean, sh: number): void {
  c.settleFlags();
  const s = (lo << sh);
  c.eflags = (c.eflags & ~ARITH) | (overflow ? CF | OF : 0) | (s === 0 ? ZF : 0) | (s < 0 ? SF : 0) | PARITY[lo & 0xff];
}

/** Unsigned 32x32 -> 64 multiply: sets c.mulHi, returns the low half. */
function mulu32(c: Cpu, a: number, b: number): number {
  const lo = Math.imul(a, b);
  const al = a & 0xffff, ah = a >>> 16, bl = b & 0xffff, bh = b >>> 16;
  const mid1 = ah * bl, mid2 = al * bh;
  const low = al * bl;
  const carry = Math.floor(((low >>> 16) + (mid1 & 0xffff) + (mid2 & 0xffff)) / 65536);
  hiOut = (ah * bh + Math.floor(mid1 / 65536) + Math.floor(mid2 / 65536) + carry) | 0;
  void c;
  return lo;
}
let hiOut = 0;

function muls32(c: Cpu, a: number, b: number): number {
  const lo = mulu32(c, a, b);
  let hi = hiOut;
  if (a < 0) hi = (hi - b) | 0;
  if (b < 0) hi = (hi - a) | 0;
  hiOut = hi;
  return lo;
}

/** F6/F7 group 3 multiply/divide; op 4 MUL 5 IMUL 6 DIV 7 IDIV, operand in `v`. */
function muldiv(c: Cpu, op: number, v: number, bits: number): void {
  const r = c.r;
  if (bits === 8) {
    const al = c.r8[0];
    if (op === 4) { const p = al * (v & 0xff); c.r16[0] = p; mulFlags(c, p, p > 0xff, 24); return; }
    if (op === 5) {
      const p = ((al << 24) >> 24) * ((v << 24) >> 24);
      c.r16[0] = p; mulFlags(c, p, p !== ((p << 24) >> 24), 24); return;
    }
    const ax = c.r16[0];
    if (op === 6) {
      const d = v & 0xff;
      if (d === 0) c.raise(0);
      const q = Math.floor(ax / d);
      if (q > 0xff) c.raise(0);
      c.r8[0] = q; c.r8[1] = ax % d; return;
    }
    const d = (v << 24) >> 24, n = (ax << 16) >> 16;
    if (d === 0) c.raise(0);
    const q = Math.trunc(n / d);
    if (q > 127 || q < -128) c.raise(0);
    c.r8[0] = q; c.r8[1] = n % d; return;
  }
  if (bits === 16) {
    const ax = c.r16[0];
    if (op === 4) { const p = ax * (v & 0xffff); c.r16[0] = p; c.r16[4] = p >>> 16; mulFlags(c, p, p > 0xffff, 16); return; }
    if (op === 5) {
      const p = Math.imul((ax << 16) >> 16, (v << 16) >> 16);
      c.r16[0] = p; c.r16[4] = p >> 16; mulFlags(c, p, p !== ((p << 16) >> 16), 16); return;
    }
    const n = ((c.r16[4] << 16) | ax);
    if (op === 6) {
      const d = v & 0xffff, un = n >>> 0;
      if (d === 0) c.raise(0);
      const q = Math.floor(un / d);
      if (q > 0xffff) c.raise(0);
      c.r16[0] = q; c.r16[4] = un % d; return;
    }
    const d = (v << 16) >> 16;
    if (d === 0) c.raise(0);
    const q = Math.trunc(n / d);
    if (q > 32767 || q < -32768) c.raise(0);
    c.r16[0] = q; c.r16[4] = n % d; return;
  }
  if (op === 4) { const lo = mulu32(c, r[0], v); r[0] = lo; r[2] = hiOut; mulFlags(c, lo, hiOut !== 0, 0); return; }
  if (op === 5) { const lo = muls32(c, r[0], v); r[0] = lo; r[2] = hiOut; mulFlags(c, lo, hiOut !== (lo >> 31), 0); return; }
  if (op === 6) {
    const d = v >>> 0;
    if (d === 0) c.raise(0);
    const hi = r[2] >>> 0, lo = r[0] >>> 0;
    if (hi >= d) c.raise(0);
    const q = div64(hi, lo, d);
    r[0] = q; r[2] = remOut; return;
  }
  // IDIV: divide magnitudes, then apply signs.
  const d = v | 0;
  if (d === 0) c.raise(0);
  let hi = r[2], lo = r[0];
  const nneg = hi < 0;
  if (nneg) { lo = (~lo + 1) | 0; hi = (~hi + (lo === 0 ? 1 : 0)) | 0; }
  const ad = d < 0 ? (-d) >>> 0 : d;
  if ((hi >>> 0) >= ad) c.raise(0);
  let q = div64(hi >>> 0, lo >>> 0, ad);
  let rem = remOut;
  const qneg = nneg !== (d < 0);
  if (qneg ? q > 0x80000000 : q > 0x7fffffff) c.raise(0);
  q = qneg ? -q : q;
  rem = nneg ? -rem : rem;
  r[0] = q; r[2] = rem;
}
let remOut = 0;
/** Unsigned (hi:lo) / d for hi < d, exact, with 16-bit long-division steps in doubles. */
function div64(hi: number, lo: number, d: number): number {
  let t = hi * 65536 + (lo >>> 16);
  const q1 = Math.floor(t / d);
  let rem = t - q1 * d;
  t = rem * 65536 + (lo & 0xffff);
  const q0 = Math.floor(t / d);
  rem = t - q0 * d;
  remOut = rem;
  return q1 * 65536 + q0;
}
export function muldiv32r(c: Cpu, i: Insn): void { muldiv(c, i.op, c.r[i.rm], 32); }
export function muldiv16r(c: Cpu, i: Insn): void { muldiv(c, i.op, c.r16[i.rm], 16); }
export function muldiv8r(c: Cpu, i: Insn): void { muldiv(c, i.op, c.r8[i.rm], 8); }
export function muldiv32m(c: Cpu, i: Insn): void { muldiv(c, i.op, c.read32(ea(c, i)), 32); }
export function muldiv16m(c: Cpu, i: Insn): void { muldiv(c, i.op, c.read16(ea(c, i)), 16); }
export function muldiv8m(c: Cpu, i: Insn): void { muldiv(c, i.op, c.read8(ea(c, i)), 8); }

/** IMUL r, r/m [, imm] (0F AF, 69, 6B): imm2 = 1 means "use imm", else multiply by reg. */
function imul2(c: Cpu, i: Insn, v: number, bits: number): number {
  const b = i.imm2 === 1 ? i.imm : (bits === 32 ? c.r[i.reg] : c.r16[i.reg]);
  if (bits === 32) {
    const lo = muls32(c, v, b);
    mulFlags(c, lo, hiOut !== (lo >> 31), 0);
    return lo;
  }
  const p = Math.imul((v << 16) >> 16, (b << 16) >> 16);
  mulFlags(c, p, p !== ((p << 16) >> 16), 16);
  return p;
}
export function imul32r(c: Cpu, i: Insn): void { c.r[i.reg] = imul2(c, i, c.r[i.rm], 32); }
export function imul16r(c: Cpu, i: Insn): void { c.r16[i.reg] = imul2(c, i, c.r16[i.rm], 16); }
export function imul32m(c: Cpu, i: Insn): void { c.r[i.reg] = imul2(c, i, c.read32(ea(c, i)), 32); }
export function imul16m(c: Cpu, i: Insn): void { c.r16[i.reg] = imul2(c, i, c.read16(ea(c, i)), 16); }

// ---- Bit test family: op 0 BT 1 BTS 2 BTR 3 BTC. imm2 = 1: bit offset is imm (0F BA), else reg.
function bitop(op: number, v: number, bit: number): number {
  const m = 1 << bit;
  return op === 1 ? v | m : op === 2 ? v & ~m : v ^ m;
}
function setCF(c: Cpu, cf: number): void { c.settleFlags(); c.eflags = (c.eflags & ~CF) | cf; }
export function bt32r(c: Cpu, i: Insn): void {
  const bit = (i.imm2 === 1 ? i.imm : c.r[i.reg]) & 31, v = c.r[i.rm];
  setCF(c, (v >>> bit) & 1);
  if (i.op !== 0) c.r[i.rm] = bitop(i.op, v, bit);
}
export function bt16r(c: Cpu, i: Insn): void {
  const bit = (i.imm2 === 1 ? i.imm : c.r16[i.reg]) & 15, v = c.r16[i.rm];
  setCF(c, (v >>> bit) & 1);
  if (i.op !== 0) c.r16[i.rm] = bitop(i.op, v, bit);
}
export function bt32m(c: Cpu, i: Insn): void {
  let lin = ea(c, i), bit: number;
  if (i.imm2 === 1) bit = i.imm & 31;
  else { const off = c.r[i.reg]; lin = (lin + ((off >> 5) << 2)) | 0; bit = off & 31; }
  if (i.op === 0) { setCF(c, (c.read32(lin) >>> bit) & 1); return; }
  const v = c.readW32(lin);
  setCF(c, (v >>> bit) & 1);
  c.write32(lin, bitop(i.op, v, bit));
}
export function bt16m(c: Cpu, i: Insn): void {
  let lin = ea(c, i), bit: number;
  if (i.imm2 === 1) bit = i.imm & 15;
  else { const off = (c.r16[i.reg] << 16) >> 16; lin = (lin + ((off >> 4) << 1)) | 0; bit = off & 15; }
  if (i.op === 0) { setCF(c, (c.read16(lin) >>> bit) & 1); return; }
  const v = c.readW16(lin);
  setCF(c, (v >>> bit) & 1);
  c.write16(lin, bitop(i.op, v, bit));
}

/** BSF (op 0) / BSR (op 1): ZF=1 and destination unchanged when the source is 0. */
function bscan(c: Cpu, i: Insn, v: number, bits: number): void {
  c.settleFlags();
  if (v === 0) { c.eflags |= ZF; return; }
  c.eflags &= ~ZF;
  let n: number;
  if (i.op === 0) n = 31 - Math.clz32(v & -v);
  else n = 31 - Math.clz32(v);
  if (bits === 32) c.r[i.reg] = n; else c.r16[i.reg] = n;
}
export function bscan32r(c: Cpu, i: Insn): void { bscan(c, i, c.r[i.rm], 32); }
export function bscan16r(c: Cpu, i: Insn): void { bscan(c, i, c.r16[i.rm], 16); }
export function bscan32m(c: Cpu, i: Insn): void { bscan(c, i, c.read32(ea(c, i)), 32); }
export function bscan16m(c: Cpu, i: Insn): void { bscan(c, i, c.read16(ea(c, i)), 16); }

// ---- SETcc / CMOVcc
export function setcc_r(c: Cpu, i: Insn): void { c.r8[i.rm] = c.cond(i.op) ? 1 : 0; }
export function setcc_m(c: Cpu, i: Insn): void { c.write8(ea(c, i), c.cond(i.op) ? 1 : 0); }
export function cmov32r(c: Cpu, i: Insn): void { if (c.cond(i.op)) c.r[i.reg] = c.r[i.rm]; }
export function cmov16r(c: Cpu, i: Insn): void { if (c.cond(i.op)) c.r16[i.reg] = c.r16[i.rm]; }
export function cmov32m(c: Cpu, i: Insn): void { const v = c.read32(ea(c, i)); if (c.cond(i.op)) c.r[i.reg] = v; }
export function cmov16m(c: Cpu, i: Insn): void { const v = c.read16(ea(c, i)); if (c.cond(i.op)) c.r16[i.reg] = v; }

// ---- XADD / CMPXCHG / CMPXCHG8B / BSWAP
export function xadd32r(c: Cpu, i: Insn): void { const a = c.r[i.rm], b = c.r[i.reg]; c.r[i.reg] = a; c.r[i.rm] = alu(c, 0, a, b, 0); }
export function xadd16r(c: Cpu, i: Insn): void { const a = c.r16[i.rm], b = c.r16[i.reg]; c.r16[i.reg] = a; c.r16[i.rm] = alu(c, 0, a, b, 16); }
export function xadd8r(c: Cpu, i: Insn): void { const a = c.r8[i.rm], b = c.r8[i.reg]; c.r8[i.reg] = a; c.r8[i.rm] = alu(c, 0, a, b, 24); }
export function xadd32m(c: Cpu, i: Insn): void { const l = ea(c, i), a = c.readW32(l); c.write32(l, alu(c, 0, a, c.r[i.reg], 0)); c.r[i.reg] = a; }
export function xadd16m(c: Cpu, i: Insn): void { const l = ea(c, i), a = c.readW16(l); c.write16(l, alu(c, 0, a, c.r16[i.reg], 16)); c.r16[i.reg] = a; }
export function xadd8m(c: Cpu, i: Insn): void { const l = ea(c, i), a = c.readW8(l); c.write8(l, alu(c, 0, a, c.r8[i.reg], 24)); c.r8[i.reg] = a; }

export function cmpxchg32r(c: Cpu, i: Insn): void {
  const d = c.r[i.rm];
  alu(c, 7, c.r[0], d, 0);
  if (c.r[0] === d) c.r[i.rm] = c.r[i.reg]; else c.r[0] = d;
}
export function cmpxchg16r(c: Cpu, i: Insn): void {
  const d = c.r16[i.rm];
  alu(c, 7, c.r16[0], d, 16);
  if (c.r16[0] === d) c.r16[i.rm] = c.r16[i.reg]; else c.r16[0] = d;
}
export function cmpxchg8r(c: Cpu, i: Insn): void {
  const d = c.r8[i.rm];
  alu(c, 7, c.r8[0], d, 24);
  if (c.r8[0] === d) c.r8[i.rm] = c.r8[i.reg]; else c.r8[0] = d;
}
// The memory forms always write (the old value when the compare fails), as the CPU does.
export function cmpxchg32m(c: Cpu, i: Insn): void {
  const l = ea(c, i), d = c.readW32(l);
  alu(c, 7, c.r[0], d, 0);
  if (c.r[0] === d) c.write32(l, c.r[i.reg]); else { c.write32(l, d); c.r[0] = d; }
}
export function cmpxchg16m(c: Cpu, i: Insn): void {
  const l = ea(c, i), d = c.readW16(l);
  alu(c, 7, c.r16[0], d, 16);
  if (c.r16[0] === d) c.write16(l, c.r16[i.reg]); else { c.write16(l, d); c.r16[0] = d; }
}
export function cmpxchg8m(c: Cpu, i: Insn): void {
  const l = ea(c, i), d = c.readW8(l);
  alu(c, 7, c.r8[0], d, 24);
  if (c.r8[0] === d) c.write8(l, c.r8[i.reg]); else { c.write8(l, d); c.r8[0] = d; }
}
export function cmpxchg8b(c: Cpu, i: Insn): void {
  const l = ea(c, i);
  c.probeWrite(l, 8);
  const lo = c.read32(l), hi = c.read32((l + 4) | 0);
  c.settleFlags();
  if (lo === c.r[0] && hi === c.r[2]) {
    c.write32(l, c.r[3]); c.write32((l + 4) | 0, c.r[1]);
    c.eflags |= ZF;
  } else {
    c.write32(l, lo); c.write32((l + 4) | 0, hi);
    c.r[0] = lo; c.r[2] = hi;
    c.eflags &= ~ZF;
  }
}
export function bswap(c: Cpu, i: Insn): void {
  const v = c.r[i.rm];
  c.r[i.rm] = (v << 24) | ((v & 0xff00) << 8) | ((v >>> 8) & 0xff00) | (v >>> 24);
}

// ---- MOVZX / MOVSX (op 0 zero-extend, 1 sign-extend); rm is an r8 or r16 index per opcode.
export function movx8to32r(c: Cpu, i: Insn): void { const v = c.r8[i.rm]; c.r[i.reg] = i.op ? (v << 24) >> 24 : v; }
export function movx8to16r(c: Cpu, i: Insn): void { const v = c.r8[i.rm]; c.r16[i.reg] = i.op ? (v << 24) >> 24 : v; }
export function movx16to32r(c: Cpu, i: Insn): void { const v = c.r16[i.rm]; c.r[i.reg] = i.op ? (v << 16) >> 16 : v; }
export function movx8to32m(c: Cpu, i: Insn): void { const v = c.read8(ea(c, i)); c.r[i.reg] = i.op ? (v << 24) >> 24 : v; }
export function movx8to16m(c: Cpu, i: Insn): void { const v = c.read8(ea(c, i)); c.r16[i.reg] = i.op ? (v << 24) >> 24 : v; }
export function movx16to32m(c: Cpu, i: Insn): void { const v = c.read16(ea(c, i)); c.r[i.reg] = i.op ? (v << 16) >> 16 : v; }

// ---- Flag instructions and accumulator adjustments
export function cmc(c: Cpu): void { c.settleFlags(); c.eflags ^= CF; }
export function clc(c: Cpu): void { c.settleFlags(); c.eflags &= ~CF; }
export function stc(c: Cpu): void { c.settleFlags(); c.eflags |= CF; }
export function cld(c: Cpu): void { c.eflags &= ~0x400; }
export function std(c: Cpu): void { c.eflags |= 0x400; }
export function sahf(c: Cpu): void {
  c.settleFlags();
  c.eflags = (c.eflags & ~(SF | ZF | AF | PF | CF)) | (c.r8[1] & (SF | ZF | AF | PF | CF));
}
export function lahf(c: Cpu): void { c.r8[1] = (c.getFlags() & 0xd5) | 2; }
export function cbw(c: Cpu, i: Insn): void {
  if (i.o16) c.r16[0] = (c.r8[0] << 24) >> 24; else c.r[0] = (c.r16[0] << 16) >> 16;
}
export function cwd(c: Cpu, i: Insn): void {
  if (i.o16) c.r16[4] = (c.r16[0] & 0x8000) ? 0xffff : 0; else c.r[2] = c.r[0] >> 31;
}

function szp8(v: number): number {
  v &= 0xff;
  return (v === 0 ? ZF : 0) | (v & 0x80 ? SF : 0) | PARITY[v];
}
export function daa(c: Cpu): void {
  const f = c.getFlags();
  let al = c.r8[0], cf = 0, af = 0;
  const oldAl = al, oldCf = f & CF;
  if ((al & 0xf) > 9 || (f & AF)) { cf = oldCf | (al + 6 > 0xff ? CF : 0); al = (al + 6) & 0xff; af = AF; }
  if (oldAl > 0x99 || oldCf) { al = (al + 0x60) & 0xff; cf = CF; } else cf = 0;
  c.r8[0] = al;
  c.setArith(szp8(al) | cf | af);
}
export function das(c: Cpu): void {
  const f = c.getFlags();
  let al = c.r8[0], cf = 0, af = 0;
  const oldAl = al, oldCf = f & CF;
  if ((al & 0xf) > 9 || (f & AF)) { cf = oldCf | (al < 6 ? CF : 0); al = (al - 6) & 0xff; af = AF; }
  if (oldAl > 0x99 || oldCf) { al = (al - 0x60) & 0xff; cf = CF; }
  c.r8[0] = al;
  c.setArith(szp8(al) | cf | af);
}
export function aaa(c: Cpu): void {
  const f = c.getFlags();
  if ((c.r8[0] & 0xf) > 9 || (f & AF)) {
    c.r16[0] = c.r16[0] + 0x106;
    c.r8[0] &= 0xf;
    c.setArith(AF | CF);
  } else { c.r8[0] &= 0xf; c.setArith(0); }
}
export function aas(c: Cpu): void {
  const f = c.getFlags();
  if ((c.r8[0] & 0xf) > 9 || (f & AF)) {
    c.r16[0] = c.r16[0] - 6;
    c.r8[1] = c.r8[1] - 1;
    c.r8[0] &= 0xf;
    c.setArith(AF | CF);
  } else { c.r8[0] &= 0xf; c.setArith(0); }
}
export function aam(c: Cpu, i: Insn): void {
  const b = i.imm & 0xff;
  if (b === 0) c.raise(0);
  const al = c.r8[0];
  c.r8[1] = Math.floor(al / b); c.r8[0] = al % b;
  c.setArith(szp8(c.r8[0]));
}
export function aad(c: Cpu, i: Insn): void {
  const al = (c.r8[0] + c.r8[1] * (i.imm & 0xff)) & 0xff;
  c.r16[0] = al;
  c.setArith(szp8(al));
}
