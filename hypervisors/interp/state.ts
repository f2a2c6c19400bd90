// Architectural constants shared by the interpreter's modules.

export const CF = 0x1, PF = 0x4, AF = 0x10, ZF = 0x40, SF = 0x80, TF = 0x100, IF = 0x200, DF = 0x400, OF = 0x800;
export const IOPL = 0x3000, NT = 0x4000, RF = 0x10000, VM = 0x20000, AC = 0x40000, ID = 0x200000;
/** The six arithmetic flags that lazy evaluation can produce. */
export const ARITH = CF | PF | AF | ZF | SF | OF;

/** Segment register numbers as encoded in instructions. */
export const ES = 0, CS = 1, SS = 2, DS = 3, FS = 4, GS = 5;
export const SEG_NAMES = ['es', 'cs', 'ss', 'ds', 'fs', 'gs'] as const;

/** Register index 8 is a constant zero: effective-address code uses it for "no base/index". */
export const ZERO_REG = 8;

export const CR0_PE = 0x1, CR0_MP = 0x2, CR0_EM = 0x4, CR0_TS = 0x8, CR0_WP = 0x10000, CR0_PG = 0x80000000 | 0;
export const CR4_PSE = 0x10;

/** Exception vectors. */
export const DE = 0, DB = 1, BP = 3, OFV = 4, BR = 5, UD = 6, NM = 7, DFV = 8, TS = 10, NP = 11, SSV = 12, GP = 13, PFV = 14;

/** Lazy-flag operation kinds (cpu.ccOp). */
export const CC_ADD = 0, CC_ADC = 1, CC_SUB = 2, CC_SBB = 3, CC_LOGIC = 4, CC_INC = 5, CC_DEC = 6;

/** The even-parity table for PF. */
export const PARITY = new Uint8Array(256);
for (let i = 0; i < 256; i++) {
  let b = i, p = 1;
  while (b) { p ^= b & 1; b >>= 1; }
  PARITY[i] = p ? PF : 0;
}
