// System instructions: segment registers, flags with privilege rules, control registers,
// descriptor tables, CPUID/RDTSC/MSRs, port I/O (handed to the VMM), HLT, INT/IRET, far
// transfers, and the x87 escape (#NM: the guest kernel emulates the FPU).

import { CS, SS, CR0_EM, CR0_MP, CR0_PE, CR0_PG, CR0_TS, CR4_PSE, IF, NM, UD } from './state.ts';
import { type Cpu, EXIT_HLT, EXIT_IO, STOP_AFTER, STOP_EIP_SET } from './cpu.ts';
import { ea, type Insn } from './insn.ts';
import { farReturn, farTransfer, flagMask, interrupt, ioAllowed, iret, loadLdt, loadSeg, loadTr, probeDescriptor, probeValue, writeFlags } from './protmode.ts';
import { ZF } from './state.ts';

function next(c: Cpu, i: Insn): number { return (c.base + i.nextOff) | 0; }
function priv(c: Cpu): void { if (c.cpl !== 0) c.gp(0); }

// ---- segment registers (i.reg = segment number)
export function movSegFromR(c: Cpu, i: Insn): void {
  if (i.reg === CS) c.raise(UD);
  loadSeg(c, i.reg, c.r16[i.rm]);
  if (i.reg === SS) c.inhibitIrq = true;
}
export function movSegFromM(c: Cpu, i: Insn): void {
  if (i.reg === CS) c.raise(UD);
  loadSeg(c, i.reg, c.read16(ea(c, i)));
  if (i.reg === SS) c.inhibitIrq = true;
}
// MOV r32, Sreg zero-extends on modern CPUs (the 486 left the top half undefined).
export function movRFromSeg(c: Cpu, i: Insn): void { if (i.o16) c.r16[i.rm] = c.segSel[i.reg]; else c.r[i.rm] = c.segSel[i.reg]; }
export function movMFromSeg(c: Cpu, i: Insn): void { c.write16(ea(c, i), c.segSel[i.reg]); }
export function pushSeg(c: Cpu, i: Insn): void {
  // A 32-bit push of a segment register may write 16 or 32 bits (SDM: implementation
  // specific); like QEMU and older CPUs, this one pushes the zero-extended selector.
  if (i.o16) c.push16(c.segSel[i.reg]); else c.push32(c.segSel[i.reg]);
}
export function popSeg(c: Cpu, i: Insn): void {
  const v = i.o16 ? c.read16((c.segBase[SS] + c.sp()) | 0) : c.read32((c.segBase[SS] + c.sp()) | 0);
  loadSeg(c, i.reg, v);
  c.setSp((c.sp() + (i.o16 ? 2 : 4)) | 0);
  if (i.reg === SS) c.inhibitIrq = true;
}
/** LDS/LES/LFS/LGS/LSS r, m16:32 (i.op = segment). */
export function loadFarPtr(c: Cpu, i: Insn): void {
  const l = ea(c, i);
  const off = i.o16 ? c.read16(l) : c.read32(l);
  const sel = c.read16((l + (i.o16 ? 2 : 4)) | 0);
  loadSeg(c, i.op, sel);
  if (i.o16) c.r16[i.reg] = off; else c.r[i.reg] = off;
}

// ---- flags
export function pushf(c: Cpu, i: Insn): void {
  const f = c.getFlags() & ~0x30000; // VM and RF read as 0
  if (i.o16) c.push16(f); else c.push32(f);
}
export function popf(c: Cpu, i: Insn): void {
  const v = i.o16 ? c.pop16() : c.pop32();
  writeFlags(c, v, flagMask(c, i.o16));
}
export function cli(c: Cpu): void {
  if (c.cpl > ((c.eflags >> 12) & 3)) c.gp(0);
  c.eflags &= ~IF;
}
export function sti(c: Cpu): void {
  if (c.cpl > ((c.eflags >> 12) & 3)) c.gp(0);
  if ((c.eflags & IF) === 0) c.inhibitIrq = true;
  c.eflags |= IF;
}

// ---- control and descriptor-table registers
export function movFromCr(c: Cpu, i: Insn): void {
  priv(c);
  switch (i.reg) {
    case 0: c.r[i.rm] = c.cr0; break;
    case 2: c.r[i.rm] = c.cr2; break;
    case 3: c.r[i.rm] = c.cr3; break;
    case 4: c.r[i.rm] = c.cr4; break;
    default: c.raise(UD);
  }
}
export function movToCr(c: Cpu, i: Insn): void {
  priv(c);
  const v = c.r[i.rm];
  switch (i.reg) {
    case 0: setCr0(c, v); break;
    case 2: c.cr2 = v; break;
    case 3: c.cr3 = v; c.flushTlb(); break;
    case 4:
      if ((v & ~0x3ff) !== 0 || (v & 0x20) !== 0) c.gp(0); // PAE and later features are not offered
      if (((c.cr4 ^ v) & CR4_PSE) !== 0) c.flushTlb();
      c.cr4 = v; break;
    default: c.raise(UD);
  }
}
export function setCr0(c: Cpu, v: number): void {
  if ((v & CR0_PG) !== 0 && (v & CR0_PE) === 0) c.gp(0);
  v |= 0x10; // ET is hardwired on 486+
  if (((c.cr0 ^ v) & (CR0_PG | 0x10000 | CR0_PE)) !== 0) c.flushTlb();
  c.cr0 = v;
}
export function movDr(c: Cpu, i: Insn): void {
  // Debug registers are accepted and ignored (no hardware breakpoints); reads give 0.
  priv(c);
  if (i.op === 0) c.r[i.rm] = i.reg === 6 ? 0xffff0ff0 | 0 : i.reg === 7 ? 0x400 : 0;
}
export function clts(c: Cpu): void { priv(c); c.cr0 &= ~CR0_TS; }
export function lmsw(c: Cpu, i: Insn): void {
  priv(c);
  const v = i.imm2 === 1 ? c.r16[i.rm] : c.read16(ea(c, i));
  // LMSW can set PE but not clear it; it touches only PE MP EM TS.
  setCr0(c, (c.cr0 & ~0xe) | (v & 0xf) | (c.cr0 & 1));
}
export function smsw(c: Cpu, i: Insn): void {
  if (i.imm2 === 1) { if (i.o16) c.r16[i.rm] = c.cr0; else c.r[i.rm] = c.cr0; }
  else c.write16(ea(c, i), c.cr0);
}
/** SGDT (op 0) / SIDT (op 1) / LGDT (op 2) / LIDT (op 3). */
export function descTable(c: Cpu, i: Insn): void {
  const l = ea(c, i);
  if (i.op >= 2) {
    priv(c);
    const limit = c.read16(l);
    let base = c.read32((l + 2) | 0);
    if (i.o16) base &= 0xffffff;
    if (i.op === 2) { c.gdtBase = base; c.gdtLimit = limit; } else { c.idtBase = base; c.idtLimit = limit; }
  } else {
    c.probeWrite(l, 6);
    c.write16(l, i.op === 0 ? c.gdtLimit : c.idtLimit);
    c.write32((l + 2) | 0, i.op === 0 ? c.gdtBase : c.idtBase);
  }
}
/** 0F 00: SLDT 0, STR 1, LLDT 2, LTR 3. imm2 = 1 for a register operand. */
export function grp6(c: Cpu, i: Insn): void {
  if (i.op <= 1) {
    const v = c.segSel[i.op === 0 ? 7 : 6];
    if (i.imm2 === 1) { if (i.o16) c.r16[i.rm] = v; else c.r[i.rm] = v; }
    else c.write16(ea(c, i), v);
    return;
  }
  priv(c);
  // i.rm indexes r16 for a 16-bit operand size but r for a 32-bit one (see the decoder).
  const sel = i.imm2 === 1 ? (i.o16 ? c.r16[i.rm] : c.r[i.rm] & 0xffff) : c.read16(ea(c, i));
  if (i.op === 2) loadLdt(c, sel); else loadTr(c, sel);
}
export function invlpg(c: Cpu, i: Insn): void { priv(c); c.invlpg(ea(c, i)); }
export function wbinvd(c: Cpu): void { priv(c); }

// ---- identification, time, MSRs
export function cpuid(c: Cpu): void {
  const leaf = c.r[0], sub = c.r[1];
  const e = c.cpuidLookup(leaf, sub);
  c.r[0] = e[0]; c.r[3] = e[1]; c.r[1] = e[2]; c.r[2] = e[3];
}
export function rdtsc(c: Cpu): void {
  const t = c.readTsc();
  c.r[0] = Number(t & 0xffffffffn) | 0; c.r[2] = Number((t >> 32n) & 0xffffffffn) | 0;
}
export function rdmsr(c: Cpu): void {
  priv(c);
  const v = c.readMsr(c.r[1] >>> 0);
  c.r[0] = Number(v & 0xffffffffn) | 0; c.r[2] = Number((v >> 32n) & 0xffffffffn) | 0;
}
export function wrmsr(c: Cpu): void {
  priv(c);
  c.writeMsr(c.r[1] >>> 0, (BigInt(c.r[2] >>> 0) << 32n) | BigInt(c.r[0] >>> 0));
}

// ---- port I/O: OUT finishes the instruction then exits; IN exits first and is re-executed
// with the VMM's answer (c.replay). i.imm = size; i.op = 1 when the port is in DX, else imm2.
function port(c: Cpu, i: Insn): number { return i.op === 1 ? c.r16[4] : i.imm2; }
export function outp(c: Cpu, i: Insn): void {
  const p = port(c, i), size = i.imm;
  if (!ioAllowed(c, p, size)) c.gp(0);
  const v = size === 1 ? c.r8[0] : size === 2 ? c.r16[0] : c.r[0];
  c.exitReason = EXIT_IO; c.exitPort = p; c.exitSize = size; c.exitWrite = true; c.exitCount = 1;
  c.exitView.setInt32(0, v, true);
  c.stop = STOP_AFTER;
}
export function inp(c: Cpu, i: Insn): void {
  const p = port(c, i), size = i.imm;
  if (!ioAllowed(c, p, size)) c.gp(0);
  if (c.replay && c.replayAddr === p) {
    c.replay = false;
    const d = c.exitView;
    if (size === 1) c.r8[0] = d.getUint8(0); else if (size === 2) c.r16[0] = d.getUint16(0, true); else c.r[0] = d.getInt32(0, true);
    return;
  }
  c.exitReason = EXIT_IO; c.exitPort = p; c.exitSize = size; c.exitWrite = false; c.exitCount = 1;
  c.exitView.setInt32(0, 0, true);
  c.eip = (c.base + i.off) | 0;
  c.stop = STOP_EIP_SET;
}
/** OUTS/INS one element per exit (REP re-executes until ECX is 0). op: 0 OUTS, 1 INS. */
export function strIo(c: Cpu, i: Insn): void {
  const size = i.imm, p = c.r16[4];
  if (!ioAllowed(c, p, size)) c.gp(0);
  const cnt = i.a16 ? c.r16[2] : c.r[1];
  if (i.rep !== 0 && cnt === 0) return;
  const d = (c.eflags & 0x400) !== 0 ? -size : size;
  const done = (): void => {
    if (i.rep !== 0) { if (i.a16) c.r16[2] = cnt - 1; else c.r[1] = cnt - 1; }
    if (i.rep !== 0 && cnt - 1 !== 0) { c.eip = (c.base + i.off) | 0; c.stop = STOP_EIP_SET; }
  };
  if (i.op === 0) {
    const si = i.a16 ? c.r16[12] : c.r[6];
    const lin = (c.segBase[i.seg] + si) | 0;
    const v = size === 1 ? c.read8(lin) : size === 2 ? c.read16(lin) : c.read32(lin);
    if (i.a16) c.r16[12] = si + d; else c.r[6] = (si + d) | 0;
    c.exitReason = EXIT_IO; c.exitPort = p; c.exitSize = size; c.exitWrite = true; c.exitCount = 1;
    c.exitView.setInt32(0, v, true);
    c.stop = STOP_AFTER;
    done();
    return;
  }
  const di = i.a16 ? c.r16[14] : c.r[7];
  const lin = (c.segBase[0] + di) | 0;
  if (c.replay && c.replayAddr === p) {
    c.replay = false;
    const dv = c.exitView;
    const v = size === 1 ? dv.getUint8(0) : size === 2 ? dv.getUint16(0, true) : dv.getInt32(0, true);
    if (size === 1) c.write8(lin, v); else if (size === 2) c.write16(lin, v); else c.write32(lin, v);
    if (i.a16) c.r16[14] = di + d; else c.r[7] = (di + d) | 0;
    done();
    return;
  }
  c.probeWrite(lin, size);
  c.exitReason = EXIT_IO; c.exitPort = p; c.exitSize = size; c.exitWrite = false; c.exitCount = 1;
  c.eip = (c.base + i.off) | 0;
  c.stop = STOP_EIP_SET;
}

export function hlt(c: Cpu, i: Insn): void {
  priv(c);
  c.halted = true;
  c.exitReason = EXIT_HLT;
  c.eip = next(c, i);
  c.stop = STOP_EIP_SET;
}

// ---- software interrupts and returns
export function intN(c: Cpu, i: Insn): void {
  c.eip = next(c, i);
  interrupt(c, i.imm, true, false, 0);
}
export function int3(c: Cpu, i: Insn): void { c.eip = next(c, i); interrupt(c, 3, true, false, 0); }
export function into(c: Cpu, i: Insn): void {
  c.eip = next(c, i);
  if (c.getOF()) interrupt(c, 4, true, false, 0);
}
export function iretOp(c: Cpu, i: Insn): void { iret(c, i.o16); }
/** JMP/CALL ptr16:32 (EA/9A): imm = offset, imm2 = selector; op 1 = call. */
export function farDirect(c: Cpu, i: Insn): void { farTransfer(c, i.imm2, i.imm, i.op === 1, i.o16, next(c, i)); }
/** JMP/CALL m16:32 (FF /5, /3). */
export function farIndirect(c: Cpu, i: Insn): void {
  const l = ea(c, i);
  const off = i.o16 ? c.read16(l) : c.read32(l);
  const sel = c.read16((l + (i.o16 ? 2 : 4)) | 0);
  farTransfer(c, sel, off, i.op === 1, i.o16, next(c, i));
}
export function retf(c: Cpu, i: Insn): void { farReturn(c, i.o16, i.imm); }

// ---- faults
export function ud(c: Cpu): void { c.raise(UD); }
/** x87 escape (D8-DF): #NM when CR0.EM or CR0.TS (there is no FPU). */
export function fpuEsc(c: Cpu): void { if ((c.cr0 & (CR0_EM | CR0_TS)) !== 0) c.raise(NM); c.raise(UD); }
/** WAIT: #NM only when CR0.MP and CR0.TS. */
export function fwait(c: Cpu): void { if ((c.cr0 & (CR0_MP | CR0_TS)) === (CR0_MP | CR0_TS)) c.raise(NM); }
export function bound(c: Cpu, i: Insn): void {
  const l = ea(c, i);
  if (i.o16) {
    const v = (c.r16[i.reg] << 16) >> 16, lo = (c.read16(l) << 16) >> 16, hi = (c.read16((l + 2) | 0) << 16) >> 16;
    if (v < lo || v > hi) c.raise(5);
  } else {
    const v = c.r[i.reg], lo = c.read32(l), hi = c.read32((l + 4) | 0);
    if (v < lo || v > hi) c.raise(5);
  }
}

/** LAR/LSL r, r/m16 (op 0/1; imm2 = 1 for a register source) and VERR/VERW r/m16 (op 2/3). */
export function descProbe(c: Cpu, i: Insn): void {
  const sel = i.imm2 === 1 ? c.r16[i.rm] : c.read16(ea(c, i));
  const ok = probeDescriptor(c, sel, i.op);
  c.settleFlags();
  if (!ok) { c.eflags &= ~ZF; return; }
  c.eflags |= ZF;
  if (i.op <= 1) { if (i.o16) c.r16[i.reg] = probeValue; else c.r[i.reg] = probeValue; }
}
/** ARPL r/m16, r16: raise the destination selector's RPL to the source's. */
export function arpl(c: Cpu, i: Insn): void {
  const mem = i.imm2 !== 1;
  const l = mem ? ea(c, i) : 0;
  const d = mem ? c.readW16(l) : c.r16[i.rm], sRpl = c.r16[i.reg] & 3;
  c.settleFlags();
  if ((d & 3) < sRpl) {
    const v = (d & ~3) | sRpl;
    if (mem) c.write16(l, v); else c.r16[i.rm] = v;
    c.eflags |= ZF;
  } else c.eflags &= ~ZF;
}
/** SALC (D6, undocumented): AL = CF ? 0xFF : 0. */
export function salc(c: Cpu): void { c.r8[0] = c.getCF() !== 0 ? 0xff : 0; }
