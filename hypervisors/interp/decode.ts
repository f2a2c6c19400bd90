// The x86 decoder: bytes -> Insn (handler + pre-decoded operands). It runs once per
// instruction per decoded block, so it favours clarity; the speed lives in the handlers.
// `FORMS` lists every opcode form this table implements, for the differential harness's
// coverage report.

import { Insn, r8index, type Handler } from './insn.ts';
import * as A from './ops-alu.ts';
import * as M from './ops-mov.ts';
import * as C from './ops-ctrl.ts';
import * as S from './ops-string.ts';
import * as Y from './ops-system.ts';
import type { Cpu } from './cpu.ts';
import { EXIT_INTERNAL, STOP_EIP_SET } from './cpu.ts';

/** Raised internally when the instruction runs past the bytes available. */
const NEED_MORE = { needMore: true };

let buf: Uint8Array = new Uint8Array(0);
let pos = 0, lim = 0;

function u8(): number { if (pos >= lim) throw NEED_MORE; return buf[pos++]; }
function s8(): number { return (u8() << 24) >> 24; }
function u16(): number { const a = u8(); return a | (u8() << 8); }
function s32(): number { const a = u16(); return a | (u16() << 16); }
function imm(size: number): number { return size === 1 ? u8() : size === 2 ? u16() : s32(); }
function simm(size: number): number { return size === 1 ? s8() : size === 2 ? (u16() << 16) >> 16 : s32(); }

/** Instruction not implemented by this interpreter: leave with InternalError and the bytes. */
function unimplemented(c: Cpu, i: Insn): void {
  c.exitReason = EXIT_INTERNAL;
  c.exitDetail = `unimplemented instruction ${i.bytes} at EIP ${((c.base + i.off) >>> 0).toString(16)}`;
  c.eip = (c.base + i.off) | 0;
  c.stop = STOP_EIP_SET;
}

/** Register index for operand size: r8 view index, r16 view index, or r index. */
function ridx(n: number, size: number): number { return size === 1 ? r8index(n) : size === 2 ? n << 1 : n; }
function pick(size: number, h32: Handler, h16: Handler, h8: Handler): Handler { return size === 4 ? h32 : size === 2 ? h16 : h8; }

// ModRM state of the instruction being decoded.
let mMod = 0, mReg = 0, mRm = 0;
let segOverride = -1;
let hadModrm = false;

function modrm(i: Insn): boolean {
  hadModrm = true;
  const b = u8();
  mMod = b >> 6; mReg = (b >> 3) & 7; mRm = b & 7;
  if (mMod === 3) { i.rm = mRm; return false; }
  let seg = 3;
  if (!i.a16) {
    let base = mRm, index = 8, scale = 0, disp = 0;
    if (mRm === 4) {
      const sib = u8();
      scale = sib >> 6; index = (sib >> 3) & 7; base = sib & 7;
      if (index === 4) index = 8;
      if (base === 5 && mMod === 0) { base = 8; disp = s32(); }
    } else if (mRm === 5 && mMod === 0) { base = 8; disp = s32(); }
    if (mMod === 1) disp = s8(); else if (mMod === 2) disp = s32();
    if (base === 4 || base === 5) seg = 2;
    i.base = base; i.index = index; i.scale = scale; i.disp = disp;
  } else {
    const B = [3, 3, 5, 5, 6, 7, 5, 3][mRm], X = [6, 7, 6, 7, 8, 8, 8, 8][mRm];
    let base = B, index = X, disp = 0;
    if (mMod === 0 && mRm === 6) { base = 8; disp = u16(); }
    else if (mMod === 1) disp = s8();
    else if (mMod === 2) disp = (u16() << 16) >> 16;
    if (base === 5) seg = 2;
    i.base = base; i.index = index; i.scale = 0; i.disp = disp;
  }
  i.seg = segOverride >= 0 ? segOverride : seg;
  return true;
}

/** ModRM operand pair for E,G forms in `size`. */
function eg(i: Insn, size: number): boolean {
  const mem = modrm(i);
  i.reg = ridx(mReg, size);
  if (!mem) i.rm = ridx(mRm, size);
  return mem;
}

const BRANCH = true;

/** Jcc handler: dedicated ones for the most common 32-bit conditions. */
function fastJcc(cc: number, o16: boolean): Handler {
  if (o16) return C.jcc;
  switch (cc) {
    case 2: return C.jb;
    case 3: return C.jae;
    case 4: return C.jz;
    case 5: return C.jnz;
    default: return C.jcc;
  }
}

/**
 * Decode one instruction from bytes[start..end). Returns null when it runs past `end`
 * (the caller decides whether that is a block boundary or needs more bytes).
 */
export function decodeInsn(bytes: Uint8Array, start: number, end: number, code32: boolean): Insn | null {
  buf = bytes; pos = start; lim = end;
  const i = new Insn(unimplemented);
  try {
    decodeInto(i, code32);
  } catch (e) {
    if (e === NEED_MORE) return null;
    throw e;
  }
  if (pos - start > 15) { i.fn = Y.ud; } // too long: #UD stands in for #GP here
  i.nextOff = pos - start; // the caller rebases off/nextOff
  if (i.fn === unimplemented) {
    let s = '';
    for (let k = start; k < pos; k++) s += bytes[k].toString(16).padStart(2, '0') + ' ';
    i.bytes = s.trim();
  }
  return i;
}

function decodeInto(i: Insn, code32: boolean): void {
  let o16 = !code32, a16 = !code32;
  segOverride = -1;
  hadModrm = false;
  let op: number;
  for (;;) {
    op = u8();
    switch (op) {
      case 0x26: segOverride = 0; continue;
      case 0x2e: segOverride = 1; continue;
      case 0x36: segOverride = 2; continue;
      case 0x3e: segOverride = 3; continue;
      case 0x64: segOverride = 4; continue;
      case 0x65: segOverride = 5; continue;
      case 0x66: o16 = code32; continue;
      case 0x67: a16 = code32; continue;
      case 0xf0: continue; // LOCK: one CPU, every instruction is atomic here
      case 0xf2: i.rep = 2; continue;
      case 0xf3: i.rep = 1; continue;
    }
    break;
  }
  i.o16 = o16; i.a16 = a16;
  if (segOverride >= 0) i.seg = segOverride;
  const osz = o16 ? 2 : 4;
  lastOpcode = op;
  if (op === 0x0f) { lastOpcode = 0x0f00 | buf[pos]; decode0F(i, u8(), osz); return; }

  if (op < 0x40 && (op & 7) < 6) { // ALU
    const alu = op >> 3, form = op & 7;
    i.op = alu;
    const size = (form & 1) ? osz : 1;
    if (form < 4) {
      const mem = eg(i, size);
      if (form < 2) { // E,G
        if (!mem) {
          if (size === 4) i.fn = alu === 0 ? A.add32rr : alu === 5 ? A.sub32rr : alu === 7 ? A.cmp32rr : alu === 6 ? A.xor32rr : alu === 1 ? A.or32rr : alu === 4 ? A.and32rr : A.aluEG32r;
          else i.fn = pick(size, A.aluEG32r, A.aluEG16r, A.aluEG8r);
        } else i.fn = pick(size, A.aluEG32m, A.aluEG16m, A.aluEG8m);
      } else { // G,E
        if (!mem) {
          const t = i.rm; i.rm = i.reg; i.reg = t;
          i.fn = size !== 4 ? pick(size, A.aluEG32r, A.aluEG16r, A.aluEG8r)
            : alu === 0 ? A.add32rr : alu === 5 ? A.sub32rr : alu === 7 ? A.cmp32rr : alu === 6 ? A.xor32rr : alu === 1 ? A.or32rr : alu === 4 ? A.and32rr : A.aluEG32r;
        }
        else i.fn = pick(size, A.aluGE32m, A.aluGE16m, A.aluGE8m);
      }
    } else {
      i.rm = 0;
      i.imm = simm(size);
      i.fn = pick(size, A.aluEI32r, A.aluEI16r, A.aluEI8r);
    }
    return;
  }
  if (op >= 0x40 && op <= 0x4f) { i.rm = ridx(op & 7, osz); i.op = op >> 3 & 1; i.fn = osz === 4 ? (i.op === 0 ? A.inc32r : A.dec32r) : A.incdec16r; return; }
  if (op >= 0x50 && op <= 0x57) { i.rm = ridx(op & 7, osz); i.fn = osz === 4 ? M.push32r : M.push16r; return; }
  if (op >= 0x58 && op <= 0x5f) { i.rm = ridx(op & 7, osz); i.fn = osz === 4 ? M.pop32r : M.pop16r; return; }
  if (op >= 0x70 && op <= 0x7f) { i.op = op & 15; i.imm = s8(); i.fn = fastJcc(i.op, o16); i.ends = BRANCH; return; }
  if (op >= 0x91 && op <= 0x97) { i.rm = ridx(op & 7, osz); i.reg = 0; i.fn = osz === 4 ? M.xchg32r : M.xchg16r; return; }
  if (op >= 0xb0 && op <= 0xb7) { i.rm = r8index(op & 7); i.imm = u8(); i.fn = M.movEI8r; return; }
  if (op >= 0xb8 && op <= 0xbf) { i.rm = ridx(op & 7, osz); i.imm = imm(osz); i.fn = osz === 4 ? M.movEI32r : M.movEI16r; return; }
  if (op >= 0xd8 && op <= 0xdf) { modrm(i); i.fn = Y.fpuEsc; return; }

  switch (op) {
    case 0x06: case 0x0e: case 0x16: case 0x1e: i.reg = op >> 3; i.fn = Y.pushSeg; return;
    case 0x07: case 0x17: case 0x1f: i.reg = op >> 3; i.fn = Y.popSeg; return;
    case 0x27: i.fn = A.daa; return;
    case 0x2f: i.fn = A.das; return;
    case 0x37: i.fn = A.aaa; return;
    case 0x3f: i.fn = A.aas; return;
    case 0x60: i.fn = osz === 4 ? M.pusha32 : M.pusha16; return;
    case 0x61: i.fn = osz === 4 ? M.popa32 : M.popa16; return;
    case 0x62: if (eg(i, osz)) i.fn = Y.bound; else i.fn = Y.ud; return;
    case 0x68: i.imm = simm(osz); i.fn = osz === 4 ? M.pushI32 : M.pushI16; return;
    case 0x6a: i.imm = s8(); i.fn = osz === 4 ? M.pushI32 : M.pushI16; return;
    case 0x69: case 0x6b: {
      const mem = eg(i, osz);
      i.imm = op === 0x6b ? s8() : simm(osz); i.imm2 = 1;
      i.fn = mem ? (osz === 4 ? A.imul32m : A.imul16m) : (osz === 4 ? A.imul32r : A.imul16r);
      return;
    }
    case 0x6c: case 0x6d: case 0x6e: case 0x6f:
      i.imm = (op & 1) ? osz : 1; i.op = op < 0x6e ? 1 : 0; i.fn = Y.strIo; return;
    case 0x80: case 0x81: case 0x82: case 0x83: {
      const size = op === 0x80 || op === 0x82 ? 1 : osz;
      const mem = modrm(i);
      i.op = mReg;
      i.imm = op === 0x83 ? s8() : simm(size);
      if (!mem) {
        i.rm = ridx(mRm, size);
        if (size === 4) i.fn = mReg === 0 ? A.add32ri : mReg === 5 ? A.sub32ri : mReg === 7 ? A.cmp32ri : mReg === 4 ? A.and32ri : mReg === 1 ? A.or32ri : A.aluEI32r;
        else i.fn = pick(size, A.aluEI32r, A.aluEI16r, A.aluEI8r);
      } else i.fn = pick(size, A.aluEI32m, A.aluEI16m, A.aluEI8m);
      return;
    }
    case 0x84: case 0x85: { const size = op & 1 ? osz : 1; const mem = eg(i, size); i.fn = mem ? pick(size, A.test32m, A.test16m, A.test8m) : pick(size, A.test32r, A.test16r, A.test8r); return; }
    case 0x86: case 0x87: { const size = op & 1 ? osz : 1; const mem = eg(i, size); i.fn = mem ? pick(size, M.xchg32m, M.xchg16m, M.xchg8m) : pick(size, M.xchg32r, M.xchg16r, M.xchg8r); return; }
    case 0x88: case 0x89: { const size = op & 1 ? osz : 1; const mem = eg(i, size); i.fn = mem ? pick(size, M.movEG32m, M.movEG16m, M.movEG8m) : pick(size, M.movEG32r, M.movEG16r, M.movEG8r); return; }
    case 0x8a: case 0x8b: {
      const size = op & 1 ? osz : 1; const mem = eg(i, size);
      if (!mem) { const t = i.rm; i.rm = i.reg; i.reg = t; i.fn = pick(size, M.movEG32r, M.movEG16r, M.movEG8r); }
      else i.fn = pick(size, M.movGE32m, M.movGE16m, M.movGE8m);
      return;
    }
    case 0x8c: { const mem = modrm(i); i.reg = mReg; if (mReg > 5) { i.fn = Y.ud; return; } if (mem) i.fn = Y.movMFromSeg; else { i.rm = ridx(mRm, osz); i.fn = Y.movRFromSeg; } return; }
    case 0x8d: { const mem = eg(i, osz); i.fn = mem ? (osz === 4 ? M.lea32 : M.lea16) : Y.ud; return; }
    case 0x8e: { const mem = modrm(i); i.reg = mReg; if (mReg > 5) { i.fn = Y.ud; return; } if (mem) i.fn = Y.movSegFromM; else { i.rm = mRm << 1; i.fn = Y.movSegFromR; } return; }
    case 0x8f: { const mem = modrm(i); if (mReg !== 0) { i.fn = Y.ud; return; } if (mem) i.fn = osz === 4 ? M.pop32m : M.pop16m; else { i.rm = ridx(mRm, osz); i.fn = osz === 4 ? M.pop32r : M.pop16r; } return; }
    case 0x90: i.fn = M.nop; return;
    case 0x98: i.fn = A.cbw; return;
    case 0x99: i.fn = A.cwd; return;
    case 0x9a: i.imm = imm(osz); i.imm2 = u16(); i.op = 1; i.fn = Y.farDirect; i.ends = BRANCH; return;
    case 0x9b: i.fn = Y.fwait; return;
    case 0x9c: i.fn = Y.pushf; return;
    case 0x9d: i.fn = Y.popf; i.ends = true; return;
    case 0x9e: i.fn = A.sahf; return;
    case 0x9f: i.fn = A.lahf; return;
    case 0xa0: case 0xa1: case 0xa2: case 0xa3: {
      const size = op & 1 ? osz : 1;
      i.base = 8; i.index = 8; i.disp = a16 ? u16() : s32(); i.reg = 0;
      i.fn = op < 0xa2 ? pick(size, M.movGE32m, M.movGE16m, M.movGE8m) : pick(size, M.movEG32m, M.movEG16m, M.movEG8m);
      return;
    }
    case 0xa4: case 0xa5: i.imm = op & 1 ? osz : 1; i.fn = S.movs; return;
    case 0xa6: case 0xa7: i.imm = op & 1 ? osz : 1; i.op = 0; i.fn = S.cmps; return;
    case 0xa8: i.rm = 0; i.imm = u8(); i.fn = A.testI8r; return;
    case 0xa9: i.rm = 0; i.imm = simm(osz); i.fn = osz === 4 ? A.testI32r : A.testI16r; return;
    case 0xaa: case 0xab: i.imm = op & 1 ? osz : 1; i.fn = S.stos; return;
    case 0xac: case 0xad: i.imm = op & 1 ? osz : 1; i.fn = S.lods; return;
    case 0xae: case 0xaf: i.imm = op & 1 ? osz : 1; i.op = 1; i.fn = S.cmps; return;
    case 0xc0: case 0xc1: case 0xd0: case 0xd1: case 0xd2: case 0xd3: {
      const size = op & 1 ? osz : 1;
      const mem = modrm(i);
      i.op = mReg;
      if (op <= 0xc1) i.imm = u8(); else if (op <= 0xd1) i.imm = 1; else i.imm2 = 1;
      if (!mem && size === 4 && i.imm2 === 0 && (i.imm & 31) !== 0 && (mReg === 4 || mReg === 5 || mReg === 6 || mReg === 7)) {
        i.rm = mRm; i.imm &= 31;
        i.fn = mReg === 5 ? A.shr32ri : mReg === 7 ? A.sar32ri : A.shl32ri;
        return;
      }
      if (!mem) { i.rm = ridx(mRm, size); i.fn = pick(size, A.shift32r, A.shift16r, A.shift8r); }
      else i.fn = pick(size, A.shift32m, A.shift16m, A.shift8m);
      return;
    }
    case 0xc2: i.imm = u16(); i.fn = C.ret; i.ends = BRANCH; return;
    case 0xc3: i.fn = C.ret; i.ends = BRANCH; return;
    case 0xc4: case 0xc5: { const mem = eg(i, osz); i.op = op === 0xc4 ? 0 : 3; i.fn = mem ? Y.loadFarPtr : Y.ud; return; }
    case 0xc6: case 0xc7: {
      const size = op & 1 ? osz : 1;
      const mem = modrm(i);
      if (mReg !== 0) { i.fn = Y.ud; return; }
      i.imm = simm(size);
      if (!mem) { i.rm = ridx(mRm, size); i.fn = pick(size, M.movEI32r, M.movEI16r, M.movEI8r); }
      else i.fn = pick(size, M.movEI32m, M.movEI16m, M.movEI8m);
      return;
    }
    case 0xc8: i.imm = u16(); i.imm2 = u8(); i.fn = M.enter; return;
    case 0xc9: i.fn = M.leave; return;
    case 0xca: i.imm = u16(); i.fn = Y.retf; i.ends = BRANCH; return;
    case 0xcb: i.fn = Y.retf; i.ends = BRANCH; return;
    case 0xcc: i.fn = Y.int3; i.ends = BRANCH; return;
    case 0xcd: i.imm = u8(); i.fn = Y.intN; i.ends = BRANCH; return;
    case 0xce: i.fn = Y.into; i.ends = BRANCH; return;
    case 0xcf: i.fn = Y.iretOp; i.ends = BRANCH; return;
    case 0xd4: i.imm = u8(); i.fn = A.aam; return;
    case 0xd5: i.imm = u8(); i.fn = A.aad; return;
    case 0xd7: i.fn = M.xlat; return;
    case 0xd6: i.fn = Y.salc; return;
    case 0x63: { const mem = eg(i, 2); if (!mem) i.imm2 = 1; i.fn = Y.arpl; return; }
    case 0xe0: case 0xe1: case 0xe2: case 0xe3: i.op = op & 3; i.imm = s8(); i.fn = op === 0xe2 && !a16 && !o16 ? C.loop32 : C.loop; i.ends = BRANCH; return;
    case 0xe4: case 0xe5: i.imm = op & 1 ? osz : 1; i.imm2 = u8(); i.fn = Y.inp; return;
    case 0xe6: case 0xe7: i.imm = op & 1 ? osz : 1; i.imm2 = u8(); i.fn = Y.outp; return;
    case 0xec: case 0xed: i.imm = op & 1 ? osz : 1; i.op = 1; i.fn = Y.inp; return;
    case 0xee: case 0xef: i.imm = op & 1 ? osz : 1; i.op = 1; i.fn = Y.outp; return;
    case 0xe8: i.imm = simm(osz); i.fn = C.callRel; i.ends = BRANCH; return;
    case 0xe9: i.imm = simm(osz); i.fn = C.jmpRel; i.ends = BRANCH; return;
    case 0xea: i.imm = imm(osz); i.imm2 = u16(); i.op = 0; i.fn = Y.farDirect; i.ends = BRANCH; return;
    case 0xeb: i.imm = s8(); i.fn = C.jmpRel; i.ends = BRANCH; return;
    case 0xf4: i.fn = Y.hlt; i.ends = BRANCH; return;
    case 0xf5: i.fn = A.cmc; return;
    case 0xf6: case 0xf7: {
      const size = op & 1 ? osz : 1;
      const mem = modrm(i);
      i.op = mReg;
      if (!mem) i.rm = ridx(mRm, size);
      if (mReg <= 1) {
        i.imm = simm(size);
        i.fn = mem ? pick(size, A.testI32m, A.testI16m, A.testI8m) : pick(size, A.testI32r, A.testI16r, A.testI8r);
      } else if (mReg === 2) i.fn = mem ? pick(size, A.not32m, A.not16m, A.not8m) : pick(size, A.not32r, A.not16r, A.not8r);
      else if (mReg === 3) i.fn = mem ? pick(size, A.neg32m, A.neg16m, A.neg8m) : pick(size, A.neg32r, A.neg16r, A.neg8r);
      else i.fn = mem ? pick(size, A.muldiv32m, A.muldiv16m, A.muldiv8m) : pick(size, A.muldiv32r, A.muldiv16r, A.muldiv8r);
      return;
    }
    case 0xf8: i.fn = A.clc; return;
    case 0xf9: i.fn = A.stc; return;
    case 0xfa: i.fn = Y.cli; return;
    case 0xfb: i.fn = Y.sti; i.ends = true; return;
    case 0xfc: i.fn = A.cld; return;
    case 0xfd: i.fn = A.std; return;
    case 0xfe: {
      const mem = modrm(i);
      if (mReg > 1) { i.fn = Y.ud; return; }
      i.op = mReg;
      if (!mem) { i.rm = r8index(mRm); i.fn = A.incdec8r; } else i.fn = A.incdec8m;
      return;
    }
    case 0xff: {
      const mem = modrm(i);
      i.op = mReg;
      if (!mem) i.rm = ridx(mRm, osz);
      switch (mReg) {
        case 0: case 1: i.fn = mem ? (osz === 4 ? A.incdec32m : A.incdec16m) : (osz === 4 ? A.incdec32r : A.incdec16r); return;
        case 2: i.fn = mem ? C.callEm : C.callEr; i.ends = BRANCH; return;
        case 3: i.op = 1; i.fn = mem ? Y.farIndirect : Y.ud; i.ends = BRANCH; return;
        case 4: i.fn = mem ? C.jmpEm : C.jmpEr; i.ends = BRANCH; return;
        case 5: i.op = 0; i.fn = mem ? Y.farIndirect : Y.ud; i.ends = BRANCH; return;
        case 6: i.fn = mem ? (osz === 4 ? M.push32m : M.push16m) : (osz === 4 ? M.push32r : M.push16r); return;
        default: i.fn = Y.ud; return;
      }
    }
  }
  // Anything else stays `unimplemented` (ICEBP).
}

function decode0F(i: Insn, op: number, osz: number): void {
  if (op >= 0x40 && op <= 0x4f) { const mem = eg(i, osz); i.op = op & 15; i.fn = mem ? (osz === 4 ? A.cmov32m : A.cmov16m) : (osz === 4 ? A.cmov32r : A.cmov16r); return; }
  if (op >= 0x80 && op <= 0x8f) { i.op = op & 15; i.imm = simm(osz); i.fn = fastJcc(i.op, osz === 2); i.ends = BRANCH; return; }
  if (op >= 0x90 && op <= 0x9f) { const mem = modrm(i); i.op = op & 15; if (mem) i.fn = A.setcc_m; else { i.rm = r8index(mRm); i.fn = A.setcc_r; } return; }
  if (op >= 0xc8 && op <= 0xcf) { i.rm = op & 7; i.fn = A.bswap; return; }
  if (op >= 0x18 && op <= 0x1f) { modrm(i); i.fn = M.nop; return; } // hint NOPs / PREFETCH
  switch (op) {
    case 0x00: {
      const mem = modrm(i);
      if (mReg > 5) { i.fn = Y.ud; return; }
      if (mReg >= 4) { i.op = mReg - 2; if (!mem) { i.imm2 = 1; i.rm = mRm << 1; } i.fn = Y.descProbe; return; } // VERR/VERW
      i.op = mReg;
      if (!mem) { i.imm2 = 1; i.rm = ridx(mRm, osz); }
      i.fn = Y.grp6;
      return;
    }
    case 0x01: {
      const mem = modrm(i);
      i.op = mReg;
      if (mReg === 4) { if (!mem) { i.imm2 = 1; i.rm = ridx(mRm, osz); } i.fn = Y.smsw; return; }
      if (mReg === 6) { if (!mem) { i.imm2 = 1; i.rm = mRm << 1; } i.fn = Y.lmsw; i.ends = true; return; }
      if (!mem) { i.fn = Y.ud; return; }
      if (mReg <= 3) { i.fn = Y.descTable; return; }
      if (mReg === 7) { i.fn = Y.invlpg; i.ends = true; return; }
      i.fn = Y.ud;
      return;
    }
    case 0x02: case 0x03: { const mem = eg(i, osz); i.op = op - 2; if (!mem) { i.imm2 = 1; i.rm = mRm << 1; } i.fn = Y.descProbe; return; }
    case 0x06: i.fn = Y.clts; return;
    case 0x08: case 0x09: i.fn = Y.wbinvd; return;
    case 0x0b: i.fn = Y.ud; return;
    case 0x20: case 0x22: { modrm(i); i.reg = mReg; i.rm = mRm; i.fn = op === 0x20 ? Y.movFromCr : Y.movToCr; if (op === 0x22) i.ends = true; return; }
    case 0x21: case 0x23: { modrm(i); i.reg = mReg; i.rm = mRm; i.op = op === 0x21 ? 0 : 1; i.fn = Y.movDr; return; }
    case 0x30: i.fn = Y.wrmsr; return;
    case 0x31: i.fn = Y.rdtsc; return;
    case 0x32: i.fn = Y.rdmsr; return;
    case 0xa0: case 0xa8: i.reg = op === 0xa0 ? 4 : 5; i.fn = Y.pushSeg; return;
    case 0xa1: case 0xa9: i.reg = op === 0xa1 ? 4 : 5; i.fn = Y.popSeg; return;
    case 0xa2: i.fn = Y.cpuid; return;
    case 0xa3: case 0xab: case 0xb3: case 0xbb: {
      const mem = eg(i, osz);
      i.op = op === 0xa3 ? 0 : op === 0xab ? 1 : op === 0xb3 ? 2 : 3;
      i.fn = mem ? (osz === 4 ? A.bt32m : A.bt16m) : (osz === 4 ? A.bt32r : A.bt16r);
      return;
    }
    case 0xba: {
      const mem = modrm(i);
      if (mReg < 4) { i.imm = u8(); i.fn = Y.ud; return; }
      i.op = mReg - 4; i.imm = u8(); i.imm2 = 1;
      if (!mem) i.rm = ridx(mRm, osz);
      i.fn = mem ? (osz === 4 ? A.bt32m : A.bt16m) : (osz === 4 ? A.bt32r : A.bt16r);
      return;
    }
    case 0xa4: case 0xa5: case 0xac: case 0xad: {
      const mem = eg(i, osz);
      i.op = op < 0xac ? 0 : 1;
      if ((op & 1) === 0) i.imm = u8(); else i.imm2 = 1;
      i.fn = mem ? (osz === 4 ? A.shd32m : A.shd16m) : (osz === 4 ? A.shd32r : A.shd16r);
      return;
    }
    case 0xaf: {
      const mem = eg(i, osz);
      i.fn = mem ? (osz === 4 ? A.imul32m : A.imul16m) : (osz === 4 ? A.imul32r : A.imul16r);
      return;
    }
    case 0xb0: case 0xb1: {
      const size = op & 1 ? osz : 1;
      const mem = eg(i, size);
      i.fn = mem ? pick(size, A.cmpxchg32m, A.cmpxchg16m, A.cmpxchg8m) : pick(size, A.cmpxchg32r, A.cmpxchg16r, A.cmpxchg8r);
      return;
    }
    case 0xb2: case 0xb4: case 0xb5: { const mem = eg(i, osz); i.op = op === 0xb2 ? 2 : op === 0xb4 ? 4 : 5; i.fn = mem ? Y.loadFarPtr : Y.ud; return; }
    case 0xb6: case 0xb7: case 0xbe: case 0xbf: {
      const from = op & 1 ? 2 : 1;
      const mem = modrm(i);
      i.reg = ridx(mReg, osz);
      i.op = op >= 0xbe ? 1 : 0;
      if (!mem) i.rm = ridx(mRm, from);
      if (from === 1) i.fn = osz === 4 ? (mem ? A.movx8to32m : A.movx8to32r) : (mem ? A.movx8to16m : A.movx8to16r);
      else i.fn = osz === 4 ? (mem ? A.movx16to32m : A.movx16to32r) : (mem ? M.movGE16m : M.movEG16r);
      if (from === 2 && osz === 2 && !mem) { const t = i.rm; i.rm = i.reg; i.reg = t; }
      return;
    }
    case 0xbc: case 0xbd: { const mem = eg(i, osz); i.op = op & 1; i.fn = mem ? (osz === 4 ? A.bscan32m : A.bscan16m) : (osz === 4 ? A.bscan32r : A.bscan16r); return; }
    case 0xc0: case 0xc1: {
      const size = op & 1 ? osz : 1;
      const mem = eg(i, size);
      i.fn = mem ? pick(size, A.xadd32m, A.xadd16m, A.xadd8m) : pick(size, A.xadd32r, A.xadd16r, A.xadd8r);
      return;
    }
    case 0xc7: { const mem = modrm(i); i.fn = mem && mReg === 1 ? A.cmpxchg8b : Y.ud; return; }
    case 0xff: i.fn = Y.ud; return; // UD0
  }
}

// ---- Form identification, for the differential harness's coverage report.

let lastOpcode = 0;
/** Opcodes whose ModRM.reg selects the operation (or a segment register) rather than a register operand. */
const GROUPS = new Set([0x80, 0x81, 0x82, 0x83, 0x8c, 0x8e, 0x8f, 0xc0, 0xc1, 0xc6, 0xc7, 0xd0, 0xd1, 0xd2, 0xd3, 0xf6, 0xf7, 0xfe, 0xff,
  0x0f00, 0x0f01, 0x0fba, 0x0fc7]);
const STRING_OPS = new Set([0x6c, 0x6d, 0x6e, 0x6f, 0xa4, 0xa5, 0xa6, 0xa7, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf]);

/**
 * The form of the 32-bit-code instruction in `bytes`: opcode, operand size when it changes
 * decoding, REP for string ops, ModRM group member and register-vs-memory operand.
 * Returns null for bytes that do not decode.
 */
export function formOf(bytes: Uint8Array): { key: string; implemented: boolean } | null {
  const i = decodeInsn(bytes, 0, bytes.length, true);
  if (i === null) return null;
  const op = lastOpcode;
  const hex = op > 0xff ? `0f${(op & 0xff).toString(16).padStart(2, '0')}` : op.toString(16).padStart(2, '0');
  let key = hex;
  if (hadModrm) {
    if (GROUPS.has(op)) key += `/${mReg}`;
    key += mMod === 3 ? ' r' : ' m';
  }
  if (STRING_OPS.has(op) && i.rep !== 0) key = (i.rep === 1 ? 'rep ' : 'repne ') + key;
  if (i.o16) {
    // Only a distinct form when the operand size changes what runs.
    const plain = bytes.subarray(bytes.indexOf(0x66) + 1);
    const j = decodeInsn(plain, 0, plain.length, true);
    if (j === null || j.fn !== i.fn || j.nextOff !== i.nextOff - 1 || O16_SENSITIVE.has(op)) key = 'o16 ' + key;
  }
  if (i.a16) key = 'a16 ' + key;
  return { key, implemented: i.fn !== unimplemented };
}
/** Opcodes whose handler reads i.o16 itself. */
const O16_SENSITIVE = new Set([0x06, 0x07, 0x0e, 0x16, 0x17, 0x1e, 0x1f, 0x98, 0x99, 0x9c, 0x9d, 0xc2, 0xc3, 0xc8, 0xc9, 0xca, 0xcb,
  0xcf, 0xe8, 0xe9, 0xeb, 0x70, 0x71, 0x72, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7a, 0x7b, 0x7c, 0x7d, 0x7e, 0x7f,
  0x0fa0, 0x0fa1, 0x0fa8, 0x0fa9, 0x0f01, 0x0f00, 0x8c, 0xff, 0xc4, 0xc5, 0x0fb2, 0x0fb4, 0x0fb5, 0x62, 0x6c, 0x6d, 0x6e, 0x6f,
  0xa4, 0xa5, 0xa6, 0xa7, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf, 0xe0, 0xe1, 0xe2, 0xe3]);

/** Every form the decoder implements, by enumerating opcodes x operand size x ModRM variants. */
export function implementedForms(): Set<string> {
  const out = new Set<string>();
  const tryBytes = (b: number[]): void => {
    const f = formOf(Uint8Array.from([...b, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]));
    if (f !== null && f.implemented) out.add(f.key);
  };
  const PREFIXES = new Set([0x26, 0x2e, 0x36, 0x3e, 0x64, 0x65, 0x66, 0x67, 0xf0, 0xf2, 0xf3, 0x0f]);
  const opcodes: number[][] = [];
  for (let op = 0; op < 256; op++) if (!PREFIXES.has(op)) opcodes.push([op]);
  for (let op = 0; op < 256; op++) opcodes.push([0x0f, op]);
  for (const ob of opcodes) {
    for (const pre of [[], [0x66], [0xf3], [0xf2], [0x66, 0xf3]]) {
      for (let reg = 0; reg < 8; reg++) {
        tryBytes([...pre, ...ob, 0xc0 | (reg << 3)]);
        tryBytes([...pre, ...ob, reg << 3]);
      }
    }
  }
  return out;
}
