// Protected-mode machinery: descriptor loads with their privilege checks, interrupt and
// exception delivery through the IDT (with ring transitions through the TSS), IRET, far
// JMP/CALL/RET. These are the rare paths: clarity over speed.

import { CS, DS, ES, FS, GS, SS, GP, NP, SSV, TS, DFV, PFV, IF, TF, NT, RF, VM, IOPL, AC, ID, ARITH, DF, CR0_PE } from './state.ts';
import { type Cpu, FAULT } from './cpu.ts';

/** Thrown for states this interpreter does not implement (task gates, V86 mode...). */
export class Unsupported extends Error {}

// The last descriptor read (no allocation): lo/hi words.
let dLo = 0, dHi = 0;

function descBase(lo: number, hi: number): number { return ((lo >>> 16) | ((hi & 0xff) << 16) | (hi & 0xff000000)) | 0; }
function descLimit(lo: number, hi: number): number {
  const l = (lo & 0xffff) | (hi & 0xf0000);
  return (hi & 0x800000) !== 0 ? ((l << 12) | 0xfff) : l;
}
function descAttr(hi: number): number { return ((hi >>> 8) & 0xff) | (((hi >>> 20) & 0xf) << 12); }

/** Read the descriptor for `sel` into dLo/dHi; #GP(sel) (or `vec`) when outside its table. Returns its linear address. */
function readDesc(c: Cpu, sel: number, vec = GP): number {
  let base: number, limit: number;
  if ((sel & 4) !== 0) {
    if ((c.segAttr[7] & 0x10000) !== 0 || c.segSel[7] === 0) c.raise(vec, sel & 0xfffc, true);
    base = c.segBase[7]; limit = c.segLimit[7];
  } else { base = c.gdtBase; limit = c.gdtLimit; }
  const idx = sel & 0xfff8;
  if (idx + 7 > limit) c.raise(vec, sel & 0xfffc, true);
  const a = (base + idx) | 0;
  dLo = c.readSys32(a); dHi = c.readSys32((a + 4) | 0);
  return a;
}

function setAccessed(c: Cpu, addr: number): void {
  if ((dHi & 0x100) === 0) { dHi |= 0x100; c.writeSys8((addr + 5) | 0, (dHi >>> 8) & 0xff); }
}

export function setSegCache(c: Cpu, seg: number, sel: number, base: number, limit: number, attr: number): void {
  // Block links are keyed by EIP: a new CS base or default size invalidates them.
  if (seg === CS && (c.segBase[CS] !== base || ((c.segAttr[CS] ^ attr) & 0x4000) !== 0)) c.tlbEpoch++;
  c.segSel[seg] = sel; c.segBase[seg] = base; c.segLimit[seg] = limit; c.segAttr[seg] = attr;
  if (seg === CS) c.code32 = (attr & 0x4000) !== 0;
  else if (seg === SS) c.stack32 = (attr & 0x4000) !== 0;
}

/** MOV/POP/LxS to a data segment register or SS, with the protected-mode checks. */
export function loadSeg(c: Cpu, seg: number, sel: number): void {
  sel &= 0xffff;
  if ((c.cr0 & CR0_PE) === 0) { setSegCache(c, seg, sel, sel << 4, 0xffff, seg === CS ? 0x9b : 0x93); return; }
  if ((sel & 0xfffc) === 0) {
    if (seg === SS) c.gp(0);
    setSegCache(c, seg, sel, 0, 0, 0x10000);
    return;
  }
  const addr = readDesc(c, sel);
  const attr = descAttr(dHi);
  const type = attr & 0x1f, dpl = (attr >> 5) & 3, rpl = sel & 3;
  if (seg === SS) {
    if (rpl !== c.cpl || dpl !== c.cpl || (type & 0x1a) !== 0x12) c.gp(sel & 0xfffc);
    if ((attr & 0x80) === 0) c.raise(SSV, sel & 0xfffc, true);
  } else {
    if ((type & 0x10) === 0 || (type & 0x0a) === 0x08) c.gp(sel & 0xfffc); // system, or execute-only code
    const conformingCode = (type & 0x0c) === 0x0c;
    if (!conformingCode && (dpl < c.cpl || dpl < rpl)) c.gp(sel & 0xfffc);
    if ((attr & 0x80) === 0) c.raise(NP, sel & 0xfffc, true);
  }
  setAccessed(c, addr);
  setSegCache(c, seg, sel, descBase(dLo, dHi), descLimit(dLo, dHi), descAttr(dHi));
}

/** Load CS for a far transfer or interrupt to privilege `newCpl` (checks done by callers). */
function loadCs(c: Cpu, sel: number, newCpl: number, addr: number): void {
  setAccessed(c, addr);
  setSegCache(c, CS, (sel & 0xfffc) | newCpl, descBase(dLo, dHi), descLimit(dLo, dHi), descAttr(dHi));
  c.setCpl(newCpl);
}

/** Checks for a code-segment descriptor just read; returns its DPL. */
function checkCode(c: Cpu, sel: number, vec: number): number {
  const attr = descAttr(dHi);
  if ((attr & 0x18) !== 0x18) c.raise(vec, sel & 0xfffc, true);
  if ((attr & 0x80) === 0) c.raise(NP, sel & 0xfffc, true);
  return (attr >> 5) & 3;
}

/** Deliver interrupt `vector` with return address c.eip. `soft`: INT n (gate DPL checked). */
export function interrupt(c: Cpu, vector: number, soft: boolean, hasErr: boolean, err: number, faultClass = false): void {
  if ((c.cr0 & CR0_PE) === 0) throw new Unsupported(`real-mode interrupt ${vector}`);
  const idx = vector << 3;
  const ext = soft ? 0 : 1;
  if (idx + 7 > c.idtLimit) c.gp(idx | 2 | ext);
  const lo = c.readSys32((c.idtBase + idx) | 0), hi = c.readSys32((c.idtBase + idx + 4) | 0);
  const gtype = (hi >>> 8) & 0x1f, gdpl = (hi >>> 13) & 3;
  if (gtype === 0x05) throw new Unsupported(`task gate for vector ${vector}`);
  if (gtype !== 0x0e && gtype !== 0x0f && gtype !== 0x06 && gtype !== 0x07) c.gp(idx | 2 | ext);
  if (soft && gdpl < c.cpl) c.gp(idx | 2);
  if ((hi & 0x8000) === 0) c.raise(NP, idx | 2 | ext, true);
  const gate32 = (gtype & 8) !== 0;
  const sel = lo >>> 16;
  const off = gate32 ? ((hi & 0xffff0000) | (lo & 0xffff)) : lo & 0xffff;
  if ((sel & 0xfffc) === 0) c.gp(ext);
  const csAddr = readDesc(c, sel, GP);
  const csLo = dLo, csHi = dHi;
  const dpl = checkCode(c, sel, GP);
  if (dpl > c.cpl) c.gp((sel & 0xfffc) | ext);
  const conforming = (descAttr(csHi) & 4) !== 0;

  // Faults push EFLAGS with RF set, so that IRET does not re-trigger an instruction breakpoint.
  const oldFlags = c.getFlags() | (!soft && faultClass ? RF : 0);
  const oldCs = c.segSel[CS], oldSs = c.segSel[SS], oldEsp = c.r[4];
  const w = gate32 ? 4 : 2;
  let words = 3 + (hasErr ? 1 : 0);
  if (!conforming && dpl < c.cpl) {
    // Inter-privilege: the new stack comes from the TSS.
    const trBase = c.segBase[6];
    if ((c.segAttr[6] & 0x8) === 0) throw new Unsupported('interrupt to inner ring with a 16-bit TSS');
    if (8 * dpl + 8 + 3 > c.segLimit[6]) c.raise(TS, c.segSel[6] & 0xfffc, true);
    const newEsp = c.readSys32((trBase + 4 + 8 * dpl) | 0);
    const newSs = c.readSys16((trBase + 8 + 8 * dpl) | 0);
    if ((newSs & 0xfffc) === 0) c.raise(TS, ext, true);
    const ssAddr = readDesc(c, newSs, TS);
    const ssAttr = descAttr(dHi);
    if ((newSs & 3) !== dpl || ((ssAttr >> 5) & 3) !== dpl || (ssAttr & 0x1a) !== 0x12) c.raise(TS, newSs & 0xfffc, true);
    if ((ssAttr & 0x80) === 0) c.raise(SSV, newSs & 0xfffc, true);
    const ssBase = descBase(dLo, dHi);
    const ss32 = (ssAttr & 0x4000) !== 0;
    words += 2;
    let sp = (newEsp - words * w) | 0;
    if (!ss32) sp &= 0xffff;
    const user = dpl === 3;
    let a = sp;
    if (hasErr) a = frameSlot(c, ssBase, ss32, a, w, err, user);
    a = frameSlot(c, ssBase, ss32, a, w, c.eip, user);
    a = frameSlot(c, ssBase, ss32, a, w, oldCs, user);
    a = frameSlot(c, ssBase, ss32, a, w, oldFlags, user);
    a = frameSlot(c, ssBase, ss32, a, w, oldEsp, user);
    frameSlot(c, ssBase, ss32, a, w, oldSs, user);
    setAccessed(c, ssAddr);
    setSegCache(c, SS, newSs, ssBase, descLimit(dLo, dHi), ssAttr);
    if (ss32) c.r[4] = sp; else c.r16[8] = sp;
    dLo = csLo; dHi = csHi;
    loadCs(c, sel, dpl, csAddr);
  } else {
    const newCpl = conforming ? c.cpl : dpl;
    let sp = (c.sp() - words * w) | 0;
    if (!c.stack32) sp &= 0xffff;
    let a = sp;
    const user = newCpl === 3;
    const ssBase = c.segBase[SS], ss32 = c.stack32;
    if (hasErr) a = frameSlot(c, ssBase, ss32, a, w, err, user);
    a = frameSlot(c, ssBase, ss32, a, w, c.eip, user);
    a = frameSlot(c, ssBase, ss32, a, w, oldCs, user);
    frameSlot(c, ssBase, ss32, a, w, oldFlags, user);
    c.setSp(sp);
    dLo = csLo; dHi = csHi;
    loadCs(c, sel, newCpl, csAddr);
  }
  c.eip = off;
  c.lazy = 0;
  c.eflags = oldFlags & ~(TF | NT | RF | VM | (gtype & 1 ? 0 : IF));
}

// No closures on these paths: tsx compiles with esbuild's keepNames, which wraps every closure
// creation in a __name() call costing about 2 us, paid on every interrupt, IRET and RETF.

/** Write one interrupt-frame slot of `w` bytes at stack offset `a`; returns the next offset. */
function frameSlot(c: Cpu, ssBase: number, ss32: boolean, a: number, w: number, v: number, user: boolean): number {
  c.writeSlow((ssBase + (ss32 ? a : a & 0xffff)) | 0, v, w, user);
  return (a + w) | 0;
}

/** Read a word or dword at byte offset `off` from the top of the stack, without popping. */
function stackAt(c: Cpu, off: number, o16: boolean): number {
  const a = (c.segBase[SS] + (c.stack32 ? (c.r[4] + off) | 0 : (c.r[4] + off) & 0xffff)) | 0;
  return o16 ? c.read16(a) : c.read32(a);
}

const FAULT_CLASS = new Set([0, 5, 6, 7, 10, 11, 12, 13, 14, 16, 17]);

function contributory(v: number): boolean { return v === 0 || (v >= 10 && v <= 13); }

/**
 * Deliver exception c.excVector (error code per c.excHasError) at c.eip, escalating to #DF
 * and reporting a triple fault as `false` (the CPU shuts down).
 */
export function deliverException(c: Cpu): boolean {
  let vector = c.excVector, hasErr = c.excHasError, err = c.excError;
  for (;;) {
    const saveEsp = c.r[4];
    try {
      interrupt(c, vector, false, hasErr, err, FAULT_CLASS.has(vector));
      return true;
    } catch (e) {
      if (e !== FAULT) throw e;
      c.r[4] = saveEsp;
      const v2 = c.excVector;
      if (vector === DFV) return false;
      if ((contributory(vector) && contributory(v2)) || (vector === PFV && (v2 === PFV || contributory(v2)))) {
        vector = DFV; hasErr = true; err = 0;
      } else {
        vector = v2; hasErr = c.excHasError; err = c.excError;
      }
    }
  }
}

/** Flags writable by POPF/IRET at the current privilege. */
export function flagMask(c: Cpu, o16: boolean): number {
  let m = ARITH | TF | DF | 0x800 | NT | AC | ID;
  const iopl = (c.eflags >> 12) & 3;
  if (c.cpl === 0) m |= IOPL | IF;
  else if (c.cpl <= iopl) m |= IF;
  return o16 ? m & 0xffff : m;
}

export function writeFlags(c: Cpu, v: number, mask: number): void {
  const cur = c.getFlags();
  c.lazy = 0;
  c.eflags = ((cur & ~mask) | (v & mask) | 2) & ~0x8028;
}

export function iret(c: Cpu, o16: boolean): void {
  if ((c.eflags & NT) !== 0) throw new Unsupported('IRET with NT set (task return)');
  const w = o16 ? 2 : 4;
  const eip = stackAt(c, 0, o16), sel = stackAt(c, w, o16) & 0xffff, fl = stackAt(c, 2 * w, o16);
  if ((c.cr0 & CR0_PE) === 0) throw new Unsupported('real-mode IRET');
  if (!o16 && (fl & VM) !== 0 && c.cpl === 0) throw new Unsupported('IRET to virtual-8086 mode');
  const rpl = sel & 3;
  if ((sel & 0xfffc) === 0) c.gp(0);
  if (rpl < c.cpl) c.gp(sel & 0xfffc);
  const csAddr = readDesc(c, sel);
  const dpl = checkCode(c, sel, GP);
  const conforming = (descAttr(dHi) & 4) !== 0;
  if (conforming ? dpl > rpl : dpl !== rpl) c.gp(sel & 0xfffc);
  const mask = flagMask(c, o16);
  if (rpl === c.cpl) {
    loadCs(c, sel, rpl, csAddr);
    c.setSp((c.sp() + 3 * w) | 0);
  } else {
    const esp = stackAt(c, 3 * w, o16), ss = stackAt(c, 4 * w, o16) & 0xffff;
    const csLo = dLo, csHi = dHi;
    // Check the outer SS at the new privilege before committing anything.
    if ((ss & 0xfffc) === 0) c.gp(0);
    const ssAddr = readDesc(c, ss);
    const ssAttr = descAttr(dHi);
    if ((ss & 3) !== rpl || ((ssAttr >> 5) & 3) !== rpl || (ssAttr & 0x1a) !== 0x12) c.gp(ss & 0xfffc);
    if ((ssAttr & 0x80) === 0) c.raise(SSV, ss & 0xfffc, true);
    setAccessed(c, ssAddr);
    setSegCache(c, SS, ss, descBase(dLo, dHi), descLimit(dLo, dHi), ssAttr);
    if (c.stack32) c.r[4] = esp; else c.r16[8] = esp;
    dLo = csLo; dHi = csHi;
    loadCs(c, sel, rpl, csAddr);
    for (const s of [ES, DS, FS, GS]) {
      const a = c.segAttr[s];
      const d = (a >> 5) & 3;
      const conf = (a & 0x1c) === 0x1c;
      if ((a & 0x10000) === 0 && !conf && d < rpl) setSegCache(c, s, 0, 0, 0, 0x10000);
    }
  }
  writeFlags(c, fl, mask);
  c.eip = o16 ? eip & 0xffff : eip;
}

/** Far JMP (call = false) or CALL to sel:off, same privilege (call gates unsupported). */
export function farTransfer(c: Cpu, sel: number, off: number, call: boolean, o16: boolean, retEip: number): void {
  sel &= 0xffff;
  if ((c.cr0 & CR0_PE) === 0) {
    if (call) { if (o16) { c.push16(c.segSel[CS]); c.push16(retEip); } else { c.push32(c.segSel[CS]); c.push32(retEip); } }
    setSegCache(c, CS, sel, sel << 4, 0xffff, c.segAttr[CS]);
    c.eip = off;
    return;
  }
  if ((sel & 0xfffc) === 0) c.gp(0);
  const addr = readDesc(c, sel);
  if ((dHi & 0x1000) === 0) throw new Unsupported(`far ${call ? 'call' : 'jump'} through a system descriptor (gate/TSS)`);
  const dpl = checkCode(c, sel, GP);
  const conforming = (descAttr(dHi) & 4) !== 0;
  if (conforming ? dpl > c.cpl : ((sel & 3) > c.cpl || dpl !== c.cpl)) c.gp(sel & 0xfffc);
  if (call) {
    const csLo = dLo, csHi = dHi;
    if (o16) { c.push16(c.segSel[CS]); c.push16(retEip); } else { c.push32(c.segSel[CS]); c.push32(retEip); }
    dLo = csLo; dHi = csHi;
  }
  loadCs(c, sel, c.cpl, addr);
  c.eip = o16 ? off & 0xffff : off;
}

/** RETF [imm]: same privilege or to an outer ring. */
export function farReturn(c: Cpu, o16: boolean, release: number): void {
  const w = o16 ? 2 : 4;
  const eip = stackAt(c, 0, o16), sel = stackAt(c, w, o16) & 0xffff;
  if ((c.cr0 & CR0_PE) === 0) {
    setSegCache(c, CS, sel, sel << 4, 0xffff, c.segAttr[CS]);
    c.setSp((c.sp() + 2 * w + release) | 0);
    c.eip = eip;
    return;
  }
  const rpl = sel & 3;
  if ((sel & 0xfffc) === 0) c.gp(0);
  if (rpl < c.cpl) c.gp(sel & 0xfffc);
  const addr = readDesc(c, sel);
  const dpl = checkCode(c, sel, GP);
  const conforming = (descAttr(dHi) & 4) !== 0;
  if (conforming ? dpl > rpl : dpl !== rpl) c.gp(sel & 0xfffc);
  if (rpl === c.cpl) {
    loadCs(c, sel, rpl, addr);
    c.setSp((c.sp() + 2 * w + release) | 0);
  } else {
    const csLo = dLo, csHi = dHi;
    const esp = stackAt(c, 2 * w + release, o16), ss = stackAt(c, 3 * w + release, o16) & 0xffff;
    const ssAddr = readDesc(c, ss);
    const ssAttr = descAttr(dHi);
    if ((ss & 0xfffc) === 0 || (ss & 3) !== rpl || ((ssAttr >> 5) & 3) !== rpl || (ssAttr & 0x1a) !== 0x12) c.gp(ss & 0xfffc);
    if ((ssAttr & 0x80) === 0) c.raise(SSV, ss & 0xfffc, true);
    setAccessed(c, ssAddr);
    setSegCache(c, SS, ss, descBase(dLo, dHi), descLimit(dLo, dHi), ssAttr);
    c.setSp((esp + release) | 0);
    dLo = csLo; dHi = csHi;
    loadCs(c, sel, rpl, addr);
  }
  c.eip = o16 ? eip & 0xffff : eip;
}

/** LTR: the selector must name an available TSS in the GDT, which becomes busy. */
export function loadTr(c: Cpu, sel: number): void {
  if ((sel & 0xfffc) === 0 || (sel & 4) !== 0) c.gp(sel & 0xfffc);
  const addr = readDesc(c, sel);
  const type = (dHi >>> 8) & 0x1f;
  if (type !== 0x09 && type !== 0x01) c.gp(sel & 0xfffc);
  if ((dHi & 0x8000) === 0) c.raise(NP, sel & 0xfffc, true);
  dHi |= 0x200;
  c.writeSys32((addr + 4) | 0, dHi);
  setSegCache(c, 6, sel, descBase(dLo, dHi), descLimit(dLo, dHi), descAttr(dHi));
}

export function loadLdt(c: Cpu, sel: number): void {
  if ((sel & 0xfffc) === 0) { setSegCache(c, 7, sel, 0, 0, 0x10000); return; }
  if ((sel & 4) !== 0) c.gp(sel & 0xfffc);
  readDesc(c, sel);
  if (((dHi >>> 8) & 0x1f) !== 0x02) c.gp(sel & 0xfffc);
  if ((dHi & 0x8000) === 0) c.raise(NP, sel & 0xfffc, true);
  setSegCache(c, 7, sel, descBase(dLo, dHi), descLimit(dLo, dHi), descAttr(dHi));
}

/** Whether IN/OUT of `size` bytes at `port` is allowed (IOPL, then the TSS I/O bitmap). */
export function ioAllowed(c: Cpu, port: number, size: number): boolean {
  if (c.cpl <= ((c.eflags >> 12) & 3)) return true;
  if ((c.segAttr[6] & 0xf) !== 0x0b && (c.segAttr[6] & 0xf) !== 0x09) return false;
  const lim = c.segLimit[6];
  if (lim < 0x67) return false;
  const bm = c.readSys16((c.segBase[6] + 0x66) | 0);
  const byte = bm + (port >> 3);
  if (byte + 1 > lim) return false;
  const bits = c.readSys16((c.segBase[6] + byte) | 0);
  return ((bits >> (port & 7)) & ((1 << size) - 1)) === 0;
}

/**
 * LAR (op 0), LSL (op 1), VERR (op 2), VERW (op 3) on `sel`: whether the descriptor is visible
 * at this privilege for that instruction (ZF); the value (access rights or limit) in `probeValue`.
 * Never faults on the selector itself (only the descriptor-table read could #PF).
 */
export let probeValue = 0;
export function probeDescriptor(c: Cpu, sel: number, op: number): boolean {
  if ((sel & 0xfffc) === 0) return false;
  let base: number, limit: number;
  if ((sel & 4) !== 0) {
    if ((c.segAttr[7] & 0x10000) !== 0 || c.segSel[7] === 0) return false;
    base = c.segBase[7]; limit = c.segLimit[7];
  } else { base = c.gdtBase; limit = c.gdtLimit; }
  if ((sel & 0xfff8) + 7 > limit) return false;
  const a = (base + (sel & 0xfff8)) | 0;
  const lo = c.readSys32(a), hi = c.readSys32((a + 4) | 0);
  const type = (hi >>> 8) & 0x1f, dpl = (hi >>> 13) & 3;
  const isCode = (type & 0x18) === 0x18, conforming = isCode && (type & 4) !== 0;
  if ((type & 0x10) === 0) {
    // System descriptors: LAR accepts TSS/LDT/gates, LSL only TSS/LDT; VERR/VERW none.
    const t = type & 0xf;
    const ok = op === 0 ? [1, 2, 3, 4, 5, 9, 0xb, 0xc].includes(t) : op === 1 ? [1, 2, 3, 9, 0xb].includes(t) : false;
    if (!ok) return false;
  } else if (op === 2 && isCode && (type & 2) === 0) return false; // execute-only code
  else if (op === 3 && (isCode || (type & 2) === 0)) return false; // VERW: writable data only
  if (!conforming && (dpl < c.cpl || dpl < (sel & 3))) return false;
  probeValue = op === 0 ? hi & 0x00f0ff00 : descLimit(lo, hi);
  return true;
}
