// The interpreter's CPU state: registers, lazy flags, segment caches, control registers,
// guest-physical memory with its software TLB, and the fault/stop signalling the
// instruction handlers use. Decoding lives in decode.ts, execution in exec.ts, and the
// protected-mode machinery (descriptors, interrupts, IRET, far transfers) in protmode.ts.
//
// Speed rules this file follows (see docs/interpreter.md):
// - registers are an Int32Array; 32-bit values stay int32 (`|0`) everywhere;
// - flags are lazy: ALU handlers record operands/result, flags are computed when read;
// - memory accesses hit a per-privilege XOR TLB (`phys = lin ^ tlb[lin >>> 12]`) and touch
//   the RAM typed array directly; only TLB misses, page-crossing and MMIO take slow paths;
// - a fault throws one preallocated sentinel object (no Error, no stack capture) from the
//   slow path only; the TLB-hit path never throws.

import {
  ARITH, AF, CC_ADC, CC_ADD, CC_DEC, CC_INC, CC_LOGIC, CC_SBB, CC_SUB, CF, CR0_PG, CR0_WP, CR4_PSE, OF, PARITY,
  PF, PFV, SF, ZF,
} from './state.ts';

/** Thrown (as this one object) when an instruction faults; cpu.excVector/excError say which. */
export const FAULT = { fault: true };
/** Thrown when an instruction must leave for the VMM (MMIO read) and be re-executed afterwards. */
export const RETRY = { retry: true };

export const STOP_NONE = 0;
/** Stop after the current instruction; the executor sets EIP to the next instruction. */
export const STOP_AFTER = 1;
/** Stop now; the handler has set EIP itself. */
export const STOP_EIP_SET = 2;

const PAGE_MASK = ~0xfff;
const TLB_LIST_MAX = 8192;

/** Why run() stopped, as the backend reports it (mirrors ExitReason numbers). */
export const EXIT_NONE = 0, EXIT_IO = 1, EXIT_MMIO = 2, EXIT_HLT = 3, EXIT_SHUTDOWN = 4, EXIT_INTERNAL = 5;

export class Cpu {
  /** EAX..EDI, then a constant 0 at ZERO_REG. */
  readonly r = new Int32Array(9);
  readonly r16: Uint16Array = new Uint16Array(this.r.buffer);
  readonly r8: Uint8Array = new Uint8Array(this.r.buffer);
  eip = 0;
  /** Linear address of the start of the executing block: handlers compute their EIP from it. */
  base = 0;

  // Flags: `eflags` holds every bit not in `lazy`; bits in `lazy` come from the cc* record.
  eflags = 2;
  lazy = 0;
  ccOp = 0;
  ccA = 0;
  ccB = 0;
  ccRes = 0;
  /** 32 - operand width: shifting left by it moves the operand's sign bit to bit 31. */
  ccShift = 0;
  ccCin = 0;

  // Segment caches (ES CS SS DS FS GS = 0..5, TR = 6, LDTR = 7).
  readonly segSel = new Int32Array(8);
  readonly segBase = new Int32Array(8);
  readonly segLimit = new Int32Array(8);
  /** KVM-style attributes: type | s<<4 | dpl<<5 | p<<7 | avl<<12 | l<<13 | db<<14 | g<<15 | unusable<<16. */
  readonly segAttr = new Int32Array(8);
  cpl = 0;
  /** CS.D: default operand/address size is 32 bits. */
  code32 = true;
  /** SS.B: the stack pointer is ESP (else SP). */
  stack32 = true;
  gdtBase = 0; gdtLimit = 0; idtBase = 0; idtLimit = 0;

  cr0 = 0x10 | 0x1; cr2 = 0; cr3 = 0; cr4 = 0;
  efer = 0;
  tscOffset = 0n;
  readonly msrs = new Map<number, bigint>();

  // Guest-physical memory.
  mem: Uint8Array = new Uint8Array(0);
  mem32: Int32Array = new Int32Array(0);
  memSize = 0;

  // Software TLB: one table per (privilege, access); entries are linPage ^ physPage, or -1.
  readonly tlbR0 = new Int32Array(1 << 20).fill(-1);
  readonly tlbW0 = new Int32Array(1 << 20).fill(-1);
  readonly tlbR3 = new Int32Array(1 << 20).fill(-1);
  readonly tlbW3 = new Int32Array(1 << 20).fill(-1);
  tlbR: Int32Array = this.tlbR0;
  tlbW: Int32Array = this.tlbW0;
  private readonly tlbList = new Int32Array(TLB_LIST_MAX);
  private tlbCount = 0;

  /** Physical pages that hold decoded code; writes to them go through the slow path. */
  codePage: Uint8Array = new Uint8Array(0);
  /** Called when a code page is written: the decode cache drops its blocks. */
  onCodeWrite: (page: number) => void = () => {};

  // Fault and stop signalling.
  excVector = 0;
  excError = 0;
  excHasError = false;
  stop = STOP_NONE;
  exitReason = EXIT_NONE;
  exitPort = 0;
  exitSize = 0;
  exitWrite = false;
  exitCount = 1;
  /** Bytes of the pending I/O or MMIO exit (shared with the backend's exit.data). */
  readonly exitData = new Uint8Array(4096);
  readonly exitView = new DataView(this.exitData.buffer);
  exitDetail = '';
  /** An IN / MMIO read the VMM has answered: the re-executed instruction takes exitData. */
  replay = false;
  replayAddr = 0;

  halted = false;
  /** Interrupts are inhibited for one instruction after STI / MOV SS / POP SS. */
  inhibitIrq = false;
  /** Guest instructions retired. */
  icount = 0;

  /** CPUID leaves (function, index) -> [eax, ebx, ecx, edx]; see defaultCpuid(). */
  cpuid = new Map<number, readonly number[]>();
  /** Time source for RDTSC, in TSC ticks. */
  tscSource: () => bigint = () => process.hrtime.bigint();

  cpuidLookup(leaf: number, sub: number): readonly number[] {
    leaf >>>= 0;
    const e = this.cpuid.get(leaf * 1024 + (sub & 0xff)) ?? this.cpuid.get(leaf * 1024 + 512);
    if (e !== undefined) return e;
    // Leaves beyond the maximum return the highest basic leaf, as Intel CPUs do.
    const max = this.cpuid.get(512)?.[0] ?? 0;
    return (leaf >>> 0) > max && (leaf >>> 0) < 0x80000000 ? (this.cpuid.get(max * 1024 + 512) ?? [0, 0, 0, 0]) : [0, 0, 0, 0];
  }

  readTsc(): bigint { return (this.tscSource() + this.tscOffset) & 0xffffffffffffffffn; }

  readMsr(msr: number): bigint {
    if (msr === 0x10) return this.readTsc();
    const v = this.msrs.get(msr);
    if (v === undefined) this.gp(0);
    return v;
  }

  writeMsr(msr: number, v: bigint): void {
    if (msr === 0x10) { this.tscOffset = v - this.tscSource(); return; }
    if (!this.msrs.has(msr)) this.gp(0);
    this.msrs.set(msr, v);
  }

  attachMemory(buffer: ArrayBuffer): void {
    this.mem = new Uint8Array(buffer);
    this.mem32 = new Int32Array(buffer, 0, buffer.byteLength >>> 2);
    this.memSize = buffer.byteLength;
    this.codePage = new Uint8Array(Math.ceil(buffer.byteLength / 4096));
  }

  // ---------------------------------------------------------------- lazy flags

  getCF(): number {
    if ((this.lazy & CF) === 0) return this.eflags & CF;
    const s = this.ccShift;
    switch (this.ccOp) {
      case CC_ADD: return ((this.ccRes << s) >>> 0) < ((this.ccA << s) >>> 0) ? 1 : 0;
      case CC_ADC: {
        const r = (this.ccRes << s) >>> 0, a = (this.ccA << s) >>> 0;
        return (this.ccCin ? r <= a : r < a) ? 1 : 0;
      }
      case CC_SUB: return ((this.ccA << s) >>> 0) < ((this.ccB << s) >>> 0) ? 1 : 0;
      case CC_SBB: {
        const a = (this.ccA << s) >>> 0, b = (this.ccB << s) >>> 0;
        return (this.ccCin ? a <= b : a < b) ? 1 : 0;
      }
      default: return 0;
    }
  }

  getZF(): boolean {
    if ((this.lazy & ZF) === 0) return (this.eflags & ZF) !== 0;
    return (this.ccRes << this.ccShift) === 0;
  }

  getSF(): boolean {
    if ((this.lazy & SF) === 0) return (this.eflags & SF) !== 0;
    return (this.ccRes << this.ccShift) < 0;
  }

  getOF(): boolean {
    if ((this.lazy & OF) === 0) return (this.eflags & OF) !== 0;
    const a = this.ccA, b = this.ccB, r = this.ccRes;
    switch (this.ccOp) {
      case CC_ADD: case CC_ADC: case CC_INC: return (((a ^ r) & (b ^ r)) << this.ccShift) < 0;
      case CC_SUB: case CC_SBB: case CC_DEC: return (((a ^ b) & (a ^ r)) << this.ccShift) < 0;
      default: return false;
    }
  }

  getPF(): boolean {
    if ((this.lazy & PF) === 0) return (this.eflags & PF) !== 0;
    return PARITY[this.ccRes & 0xff] !== 0;
  }

  getAF(): number {
    if ((this.lazy & AF) === 0) return this.eflags & AF;
    return this.ccOp === CC_LOGIC ? 0 : (this.ccA ^ this.ccB ^ this.ccRes) & AF;
  }

  /** The architectural EFLAGS value. */
  getFlags(): number {
    const lazy = this.lazy;
    if (lazy === 0) return this.eflags;
    let f = this.eflags & ~lazy;
    let l = 0;
    if (this.getCF()) l |= CF;
    if (this.getPF()) l |= PF;
    l |= this.getAF();
    if (this.getZF()) l |= ZF;
    if (this.getSF()) l |= SF;
    if (this.getOF()) l |= OF;
    f |= l & lazy;
    return f;
  }

  /** Materialise the lazy flags into eflags (before a handler edits single bits). */
  settleFlags(): void {
    if (this.lazy !== 0) { this.eflags = this.getFlags(); this.lazy = 0; }
  }

  /** Set the arithmetic flags eagerly from a mask of set bits. */
  setArith(bits: number): void {
    this.settleFlags();
    this.eflags = (this.eflags & ~ARITH) | (bits & ARITH);
  }

  /** Condition code cc (0..15) as in Jcc/SETcc/CMOVcc. */
  cond(cc: number): boolean {
    let v: boolean;
    switch (cc >> 1) {
      case 0: v = this.getOF(); break;
      case 1: v = this.getCF() !== 0; break;
      case 2: v = this.getZF(); break;
      case 3: v = this.getCF() !== 0 || this.getZF(); break;
      case 4: v = this.getSF(); break;
      case 5: v = this.getPF(); break;
      case 6: v = this.getSF() !== this.getOF(); break;
      default: v = this.getZF() || this.getSF() !== this.getOF(); break;
    }
    return (cc & 1) === 0 ? v : !v;
  }

  // ---------------------------------------------------------------- faults

  /** Raise exception `vector` (with an error code when `hasError`): never returns. */
  raise(vector: number, error = 0, hasError = false): never {
    this.excVector = vector;
    this.excError = error;
    this.excHasError = hasError;
    throw FAULT;
  }

  gp(error = 0): never { return this.raise(13, error, true); }

  // ---------------------------------------------------------------- TLB and paging

  setCpl(cpl: number): void {
    // Block links skip the fetch permission check: they must not survive a privilege change.
    if (cpl !== this.cpl) this.tlbEpoch++;
    this.cpl = cpl;
    if (cpl === 3) { this.tlbR = this.tlbR3; this.tlbW = this.tlbW3; }
    else { this.tlbR = this.tlbR0; this.tlbW = this.tlbW0; }
  }

  /** Bumped on every TLB flush/INVLPG: cached block successor links are valid within one epoch. */
  tlbEpoch = 0;

  flushTlb(): void {
    this.tlbEpoch++;
    if (this.tlbCount >= TLB_LIST_MAX) {
      this.tlbR0.fill(-1); this.tlbW0.fill(-1); this.tlbR3.fill(-1); this.tlbW3.fill(-1);
    } else {
      const list = this.tlbList;
      for (let i = 0; i < this.tlbCount; i++) {
        const p = list[i];
        this.tlbR0[p] = -1; this.tlbW0[p] = -1; this.tlbR3[p] = -1; this.tlbW3[p] = -1;
      }
    }
    this.tlbCount = 0;
  }

  invlpg(lin: number): void {
    this.tlbEpoch++;
    const p = lin >>> 12;
    this.tlbR0[p] = -1; this.tlbW0[p] = -1; this.tlbR3[p] = -1; this.tlbW3[p] = -1;
  }

  /** A page became code: drop every write mapping to it so writes reach the slow path. */
  protectCodePage(physPage: number): void {
    this.codePage[physPage] = 1;
    const n = this.tlbCount < TLB_LIST_MAX ? this.tlbCount : 0;
    if (this.tlbCount >= TLB_LIST_MAX) { this.tlbW0.fill(-1); this.tlbW3.fill(-1); return; }
    const list = this.tlbList;
    for (let i = 0; i < n; i++) {
      const lp = list[i];
      const e0 = this.tlbW0[lp];
      if (e0 !== -1 && (((lp << 12) ^ e0) >>> 12) === physPage) this.tlbW0[lp] = -1;
      const e3 = this.tlbW3[lp];
      if (e3 !== -1 && (((lp << 12) ^ e3) >>> 12) === physPage) this.tlbW3[lp] = -1;
    }
  }

  private tlbNote(linPage: number): void {
    if (this.tlbCount < TLB_LIST_MAX) this.tlbList[this.tlbCount] = linPage;
    this.tlbCount++;
  }

  /**
   * Translate a linear address (page walk on a TLB miss), raising #PF when not permitted.
   * Fills the TLB of privilege `user` for reads, and for writes when the page is RAM, dirty
   * and not code. Returns the physical address (may be beyond RAM: MMIO).
   */
  translate(lin: number, write: boolean, user: boolean): number {
    let phys: number, writable: boolean, userOk: boolean, dirty = true;
    if ((this.cr0 & CR0_PG) === 0) {
      phys = lin >>> 0;
      writable = true; userOk = true;
    } else {
      const pdeAddr = (this.cr3 & PAGE_MASK) + ((lin >>> 22) << 2);
      const pde = this.physRead32(pdeAddr >>> 0);
      if ((pde & 1) === 0) return this.pageFault(lin, write, user, false);
      if ((pde & 0x80) !== 0 && (this.cr4 & CR4_PSE) !== 0) {
        writable = (pde & 2) !== 0; userOk = (pde & 4) !== 0;
        this.checkAccess(lin, write, user, writable, userOk);
        const upd = pde | 0x20 | (write ? 0x40 : 0);
        if (upd !== pde) this.physWrite32(pdeAddr >>> 0, upd);
        phys = ((pde & 0xffc00000) | (lin & 0x3fffff)) >>> 0;
        dirty = (upd & 0x40) !== 0; // clean: the first write must walk to set D
      } else {
        const pteAddr = ((pde & PAGE_MASK) + (((lin >>> 12) & 0x3ff) << 2)) >>> 0;
        const pte = this.physRead32(pteAddr);
        if ((pte & 1) === 0) return this.pageFault(lin, write, user, false);
        writable = (pde & pte & 2) !== 0; userOk = (pde & pte & 4) !== 0;
        this.checkAccess(lin, write, user, writable, userOk);
        if ((pde & 0x20) === 0) this.physWrite32(pdeAddr >>> 0, pde | 0x20);
        const upd = pte | 0x20 | (write ? 0x40 : 0);
        if (upd !== pte) this.physWrite32(pteAddr, upd);
        phys = ((pte & PAGE_MASK) | (lin & 0xfff)) >>> 0;
        dirty = (upd & 0x40) !== 0;
      }
    }
    if (phys < this.memSize) {
      const lp = lin >>> 12;
      const entry = (lin & PAGE_MASK) ^ (phys & PAGE_MASK);
      const plain = dirty && this.codePage[phys >>> 12] === 0;
      if (user) {
        this.tlbR3[lp] = entry;
        if (plain && writable) this.tlbW3[lp] = entry;
      } else {
        this.tlbR0[lp] = entry;
        if (plain && (writable || (this.cr0 & CR0_WP) === 0)) this.tlbW0[lp] = entry;
      }
      this.tlbNote(lp);
    }
    return phys;
  }

  private checkAccess(lin: number, write: boolean, user: boolean, writable: boolean, userOk: boolean): void {
    if (user && !userOk) this.pageFault(lin, write, user, true);
    if (write && !writable && (user || (this.cr0 & CR0_WP) !== 0)) this.pageFault(lin, write, user, true);
  }

  private pageFault(lin: number, write: boolean, user: boolean, present: boolean): never {
    this.cr2 = lin;
    return this.raise(PFV, (present ? 1 : 0) | (write ? 2 : 0) | (user ? 4 : 0), true);
  }

  physRead32(p: number): number {
    if (p + 4 <= this.memSize) {
      if ((p & 3) === 0) return this.mem32[p >>> 2];
      const m = this.mem;
      return m[p] | (m[p + 1] << 8) | (m[p + 2] << 16) | (m[p + 3] << 24);
    }
    return 0; // page tables outside RAM read as zero (not present)
  }

  physWrite32(p: number, v: number): void {
    if (p + 4 > this.memSize) return;
    if (this.codePage[p >>> 12] !== 0) this.codeWrite(p >>> 12);
    if ((p & 3) === 0) { this.mem32[p >>> 2] = v; return; }
    const m = this.mem;
    m[p] = v; m[p + 1] = v >> 8; m[p + 2] = v >> 16; m[p + 3] = v >> 24;
  }

  codeWrite(page: number): void {
    this.codePage[page] = 0;
    this.onCodeWrite(page);
    // The running block may just have been rewritten: end it after this instruction.
    if (this.stop === STOP_NONE) this.stop = STOP_AFTER;
  }

  // ---------------------------------------------------------------- linear memory

  read8(lin: number): number {
    const x = this.tlbR[lin >>> 12];
    if (x !== -1) return this.mem[lin ^ x];
    return this.readSlow(lin, 1, this.cpl === 3);
  }

  read16(lin: number): number {
    const x = this.tlbR[lin >>> 12];
    if (x !== -1 && (lin & 0xfff) !== 0xfff) {
      const p = lin ^ x;
      return this.mem[p] | (this.mem[p + 1] << 8);
    }
    return this.readSlow(lin, 2, this.cpl === 3);
  }

  read32(lin: number): number {
    const x = this.tlbR[lin >>> 12];
    if (x !== -1 && (lin & 0xfff) <= 0xffc) {
      const p = lin ^ x;
      if ((p & 3) === 0) return this.mem32[p >>> 2];
      const m = this.mem;
      return m[p] | (m[p + 1] << 8) | (m[p + 2] << 16) | (m[p + 3] << 24);
    }
    return this.readSlow(lin, 4, this.cpl === 3);
  }

  write8(lin: number, v: number): void {
    const x = this.tlbW[lin >>> 12];
    if (x !== -1) { this.mem[lin ^ x] = v; return; }
    this.writeSlow(lin, v, 1, this.cpl === 3);
  }

  write16(lin: number, v: number): void {
    const x = this.tlbW[lin >>> 12];
    if (x !== -1 && (lin & 0xfff) !== 0xfff) {
      const p = lin ^ x;
      this.mem[p] = v; this.mem[p + 1] = v >> 8;
      return;
    }
    this.writeSlow(lin, v, 2, this.cpl === 3);
  }

  write32(lin: number, v: number): void {
    const x = this.tlbW[lin >>> 12];
    if (x !== -1 && (lin & 0xfff) <= 0xffc) {
      const p = lin ^ x;
      if ((p & 3) === 0) { this.mem32[p >>> 2] = v; return; }
      const m = this.mem;
      m[p] = v; m[p + 1] = v >> 8; m[p + 2] = v >> 16; m[p + 3] = v >> 24;
      return;
    }
    this.writeSlow(lin, v, 4, this.cpl === 3);
  }

  // Reads of read-modify-write destinations: check write permission first, so the write
  // that follows cannot fault after the flags were already updated.
  readW8(lin: number): number {
    const x = this.tlbW[lin >>> 12];
    if (x !== -1) return this.mem[lin ^ x];
    this.probeWrite(lin, 1);
    return this.read8(lin);
  }

  readW16(lin: number): number {
    const x = this.tlbW[lin >>> 12];
    if (x !== -1 && (lin & 0xfff) !== 0xfff) { const p = lin ^ x; return this.mem[p] | (this.mem[p + 1] << 8); }
    this.probeWrite(lin, 2);
    return this.read16(lin);
  }

  readW32(lin: number): number {
    const x = this.tlbW[lin >>> 12];
    if (x !== -1 && (lin & 0xfff) <= 0xffc) {
      const p = lin ^ x;
      if ((p & 3) === 0) return this.mem32[p >>> 2];
      const m = this.mem;
      return m[p] | (m[p + 1] << 8) | (m[p + 2] << 16) | (m[p + 3] << 24);
    }
    this.probeWrite(lin, 4);
    return this.read32(lin);
  }

  /** Probe that a write of `size` bytes at lin would succeed (for instructions that must not half-complete). */
  probeWrite(lin: number, size: number): void {
    const user = this.cpl === 3;
    if (this.tlbW[lin >>> 12] === -1) this.translate(lin, true, user);
    const last = (lin + size - 1) | 0;
    // The second page faults at its first byte (CR2), as on the CPU.
    if ((last ^ lin) >>> 12 !== 0 && this.tlbW[last >>> 12] === -1) this.translate(last & ~0xfff, true, user);
  }

  /** Supervisor-privilege accesses (descriptor tables, TSS, interrupt frames). */
  readSys32(lin: number): number { return this.readSlow(lin, 4, false); }
  readSys16(lin: number): number { return this.readSlow(lin, 2, false); }
  readSys8(lin: number): number { return this.readSlow(lin, 1, false); }
  writeSys32(lin: number, v: number): void { this.writeSlow(lin, v, 4, false); }
  writeSys8(lin: number, v: number): void { this.writeSlow(lin, v, 1, false); }

  readSlow(lin: number, size: number, user: boolean): number {
    lin |= 0;
    if (((lin & 0xfff) + size) > 0x1000) {
      let v = 0;
      for (let i = 0; i < size; i++) v |= this.readSlow((lin + i) | 0, 1, user) << (8 * i);
      return size === 4 ? v | 0 : v;
    }
    const p = this.translate(lin, false, user);
    if (p + size <= this.memSize) {
      const m = this.mem;
      if (size === 1) return m[p];
      if (size === 2) return m[p] | (m[p + 1] << 8);
      return m[p] | (m[p + 1] << 8) | (m[p + 2] << 16) | (m[p + 3] << 24);
    }
    return this.mmioRead(p, size);
  }

  writeSlow(lin: number, v: number, size: number, user: boolean): void {
    lin |= 0;
    if (((lin & 0xfff) + size) > 0x1000) {
      // Check both pages first: a faulting second page must leave memory untouched.
      this.translate(lin, true, user);
      this.translate((lin + size - 1) & ~0xfff, true, user);
      for (let i = 0; i < size; i++) this.writeSlow((lin + i) | 0, v >> (8 * i), 1, user);
      return;
    }
    const p = this.translate(lin, true, user);
    if (p + size <= this.memSize) {
      if (this.codePage[p >>> 12] !== 0) this.codeWrite(p >>> 12);
      const m = this.mem;
      m[p] = v;
      if (size >= 2) m[p + 1] = v >> 8;
      if (size === 4) { m[p + 2] = v >> 16; m[p + 3] = v >> 24; }
      return;
    }
    this.mmioWrite(p, v, size);
  }

  private mmioRead(phys: number, size: number): number {
    if (this.replay && this.replayAddr === phys) {
      this.replay = false;
      const d = this.exitView;
      return size === 1 ? d.getUint8(0) : size === 2 ? d.getUint16(0, true) : d.getInt32(0, true);
    }
    this.exitReason = EXIT_MMIO;
    this.exitPort = phys;
    this.exitSize = size;
    this.exitWrite = false;
    this.exitCount = 1;
    this.exitView.setInt32(0, 0, true);
    throw RETRY;
  }

  private mmioWrite(phys: number, v: number, size: number): void {
    this.exitReason = EXIT_MMIO;
    this.exitPort = phys;
    this.exitSize = size;
    this.exitWrite = true;
    this.exitCount = 1;
    const d = this.exitView;
    if (size === 1) d.setUint8(0, v & 0xff);
    else if (size === 2) d.setUint16(0, v & 0xffff, true);
    else d.setInt32(0, v, true);
    if (this.stop === STOP_NONE) this.stop = STOP_AFTER;
  }

  // ---------------------------------------------------------------- stack

  push32(v: number): void {
    if (this.stack32) {
      const sp = (this.r[4] - 4) | 0;
      this.write32((this.segBase[2] + sp) | 0, v);
      this.r[4] = sp;
    } else {
      const sp = (this.r[4] - 4) & 0xffff;
      this.write32((this.segBase[2] + sp) | 0, v);
      this.r16[8] = sp;
    }
  }

  push16(v: number): void {
    if (this.stack32) {
      const sp = (this.r[4] - 2) | 0;
      this.write16((this.segBase[2] + sp) | 0, v);
      this.r[4] = sp;
    } else {
      const sp = (this.r[4] - 2) & 0xffff;
      this.write16((this.segBase[2] + sp) | 0, v);
      this.r16[8] = sp;
    }
  }

  pop32(): number {
    if (this.stack32) {
      const sp = this.r[4];
      const v = this.read32((this.segBase[2] + sp) | 0);
      this.r[4] = (sp + 4) | 0;
      return v;
    }
    const sp = this.r[4] & 0xffff;
    const v = this.read32((this.segBase[2] + sp) | 0);
    this.r16[8] = sp + 4;
    return v;
  }

  pop16(): number {
    if (this.stack32) {
      const sp = this.r[4];
      const v = this.read16((this.segBase[2] + sp) | 0);
      this.r[4] = (sp + 2) | 0;
      return v;
    }
    const sp = this.r[4] & 0xffff;
    const v = this.read16((this.segBase[2] + sp) | 0);
    this.r16[8] = sp + 2;
    return v;
  }

  /** Read the stack at ESP+off without popping. */
  peek32(off: number): number {
    const sp = this.stack32 ? (this.r[4] + off) | 0 : (this.r[4] + off) & 0xffff;
    return this.read32((this.segBase[2] + sp) | 0);
  }

  /** ESP (or SP) as an offset. */
  sp(): number { return this.stack32 ? this.r[4] : this.r[4] & 0xffff; }

  setSp(v: number): void {
    if (this.stack32) this.r[4] = v; else this.r16[8] = v;
  }
}

