// One decoded instruction: the handler to run and its pre-decoded operands. Every Insn has
// the same shape (all fields initialised here) so that handlers see one hidden class.

import type { Cpu } from './cpu.ts';

export type Handler = (c: Cpu, i: Insn) => void;

export class Insn {
  fn: Handler;
  /** Sub-operation: ALU op, condition code, shift kind, group member... */
  op = 0;
  /** ModRM.reg (or the opcode's register), as an index into r / r16 / r8 for the operand size. */
  reg = 0;
  /** ModRM.rm register for register forms, indexed like `reg`. */
  rm = 0;
  // Effective address: segBase[seg] + r[base] + (r[index] << scale) + disp (ZERO_REG = none).
  base = 8;
  index = 8;
  scale = 0;
  disp = 0;
  seg = 3;
  /** 16-bit addressing (67 prefix in 32-bit code). */
  a16 = false;
  /** 16-bit operand size. */
  o16 = false;
  imm = 0;
  imm2 = 0;
  /** 0 none, 1 REP/REPE (F3), 2 REPNE (F2). */
  rep = 0;
  /** Offset of this instruction, and of the next one, from the start of its block. */
  off = 0;
  nextOff = 0;
  /** The block must end after this instruction (branches, mode changes). */
  ends = false;
  /** The opcode bytes, for error reports. */
  bytes: string = '';

  constructor(fn: Handler) { this.fn = fn; }
}

/** Effective (linear) address of a memory operand. */
export function ea(c: Cpu, i: Insn): number {
  if (i.a16) return (c.segBase[i.seg] + ((c.r[i.base] + c.r[i.index] + i.disp) & 0xffff)) | 0;
  return (c.segBase[i.seg] + c.r[i.base] + (c.r[i.index] << i.scale) + i.disp) | 0;
}

/** Offset part only (LEA). */
export function eaOffset(c: Cpu, i: Insn): number {
  if (i.a16) return (c.r[i.base] + c.r[i.index] + i.disp) & 0xffff;
  return (c.r[i.base] + (c.r[i.index] << i.scale) + i.disp) | 0;
}

/** Byte-register number (AL CL DL BL AH CH DH BH) to an index into the r8 view. */
export function r8index(n: number): number { return ((n & 3) << 2) | (n >> 2); }
