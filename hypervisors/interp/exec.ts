// The execution loop: find (or decode) the block at CS:EIP through the physical-address
// block cache, run its handlers back to back, and handle faults, interrupts, stops and kicks
// between blocks.

import { type Cpu, EXIT_HLT, EXIT_INTERNAL, EXIT_MMIO, EXIT_NONE, EXIT_SHUTDOWN, FAULT, RETRY, STOP_AFTER } from './cpu.ts';
import { decodeInsn } from './decode.ts';
import type { Insn } from './insn.ts';
import { deliverException, interrupt, Unsupported } from './protmode.ts';
import { IF } from './state.ts';

export const EXIT_KICKED = 6;

const MAX_BLOCK = 64;
const RECENT_MASK = 0xfff;

/** A run of instructions decoded from one physical page, ending at a branch or the page end. */
class Block {
  // Two cached successors (taken / fall-through), each valid for one epoch (c.tlbEpoch: bumped
  // by TLB flushes, INVLPG, CS/CPL changes and code invalidation): following them skips the TLB
  // and block-map lookups between blocks.
  succA: Block | null = null;
  succAEip = 0;
  succAEpoch = -1;
  succB: Block | null = null;
  succBEip = 0;
  succBEpoch = -1;
  constructor(
    readonly insns: Insn[],
    /** Offset of the instruction after the block. */
    readonly endOff: number,
    readonly key: number,
    readonly code32: boolean,
  ) {}
}

/** Something that raises maskable interrupts (the PIC, in the backend). */
export interface InterruptSource {
  /** Acknowledge the highest-priority pending interrupt and return its vector. */
  ack(): number;
}

export class Executor {
  private readonly blocks = new Map<number, Block>();
  private readonly pageBlocks = new Map<number, Block[]>();
  /** Scratch for instructions that straddle a page boundary (never cached). */
  private readonly scratch = new Uint8Array(32);
  /** INTR input: true while the interrupt source has something pending. */
  intr = false;
  irqSource: InterruptSource | null = null;
  /** Int32 word 0 = kick flag (see hypervisors/kick.ts). */
  readonly control: Int32Array;
  /** Called every few thousand blocks and before parking on HLT (timers). */
  poll: (() => void) | null = null;
  /**
   * HLT with interrupts enabled parks here until this returns (it should wait on the kick
   * word until the next timer deadline); null: HLT exits to the VMM.
   */
  park: (() => void) | null = null;

  constructor(readonly cpu: Cpu, control: SharedArrayBuffer) {
    this.control = new Int32Array(control);
    cpu.onCodeWrite = (page) => this.invalidatePage(page);
  }

  invalidatePage(page: number): void {
    const list = this.pageBlocks.get(page);
    if (list === undefined) return;
    for (const b of list) this.blocks.delete(b.key);
    this.cpu.tlbEpoch++; // successor links to the dropped blocks die with the epoch
    this.pageBlocks.delete(page);
  }

  /** Drop every decoded block (after the VMM rewrote guest memory behind our back). */
  flushCode(): void {
    this.cpu.tlbEpoch++;
    this.blocks.clear();
    this.pageBlocks.clear();
    this.cpu.codePage.fill(0);
  }

  private decodeBlock(c: Cpu, phys: number, code32: boolean, key: number): Block | null {
    const pageEnd = Math.min(((phys >>> 12) + 1) * 4096, c.memSize);
    const insns: Insn[] = [];
    let off = 0;
    while (insns.length < MAX_BLOCK) {
      const i = decodeInsn(c.mem, phys + off, pageEnd, code32);
      if (i === null) break;
      const len = i.nextOff;
      i.off = off; i.nextOff = off + len; off += len;
      insns.push(i);
      if (i.ends) break;
      if (i.bytes !== '') break; // unimplemented: it stops execution
    }
    if (insns.length === 0) return null;
    const b = new Block(insns, off, key, code32);
    this.blocks.set(key, b);
    const page = phys >>> 12;
    let list = this.pageBlocks.get(page);
    if (list === undefined) { list = []; this.pageBlocks.set(page, list); }
    list.push(b);
    if (c.codePage[page] === 0) c.protectCodePage(page);
    return b;
  }

  /** Decode the page-straddling instruction at linear `lin` (may #PF on either page). */
  private decodeStraddling(c: Cpu, lin: number, code32: boolean): Block {
    const s = this.scratch;
    let n = 0;
    for (; n < 16; n++) {
      s[n] = c.read8((lin + n) | 0);
      const i = decodeInsn(s, 0, n + 1, code32);
      if (i !== null) {
        i.off = 0;
        return new Block([i], i.nextOff, -1, code32);
      }
    }
    return new Block([decodeInsn(s, 0, 16, code32)!], 16, -1, code32);
  }

  // A direct-mapped cache of recent block entry points by EIP (validated by epoch): catches
  // targets the two successor links miss (returns, indirect jumps) without a TLB + Map lookup.
  private readonly recentEip = new Int32Array(RECENT_MASK + 1).fill(-1);
  private readonly recentEpoch = new Int32Array(RECENT_MASK + 1).fill(-1);
  private readonly recentBlock: (Block | null)[] = new Array<Block | null>(RECENT_MASK + 1).fill(null);

  /** Set by lookup() when fetching must leave run() (non-RAM fetch, triple fault). */
  private lookupExit = EXIT_NONE;

  /** The block at CS:eip (decoding it if needed); null when fetching faulted (delivered). */
  private lookup(c: Cpu, eip: number): Block | null {
    const lin = (c.segBase[1] + eip) | 0;
    const code32 = c.code32;
    const x = c.tlbR[lin >>> 12];
    try {
      const phys = x !== -1 ? lin ^ x : c.translate(lin, false, c.cpl === 3);
      if (phys >= c.memSize) {
        c.exitReason = EXIT_INTERNAL;
        c.exitDetail = `instruction fetch from non-RAM address ${phys.toString(16)} (EIP ${(eip >>> 0).toString(16)})`;
        this.lookupExit = EXIT_INTERNAL;
        return null;
      }
      const key = code32 ? phys : phys + 0x100000000;
      let blk = this.blocks.get(key);
      if (blk === undefined) {
        const b = this.decodeBlock(c, phys, code32, key);
        return b ?? this.decodeStraddling(c, lin, code32);
      }
      return blk;
    } catch (e) {
      if (e === FAULT) {
        if (!deliverException(c)) { this.lookupExit = this.shutdown(); }
        return null;
      }
      throw e;
    }
  }

  /** Run until an exit; returns an ExitReason number. */
  run(): number {
    const c = this.cpu;
    const ctrl = this.control;
    let poll = 0;
    let prev: Block | null = null;
    for (;;) {
      if (++poll >= 256) {
        poll = 0;
        if (Atomics.load(ctrl, 0) !== 0) { Atomics.store(ctrl, 0, 0); return EXIT_KICKED; }
        if (this.poll !== null) this.poll();
      }
      if (this.intr && (c.eflags & IF) !== 0) {
        if (c.inhibitIrq) c.inhibitIrq = false;
        else if (this.irqSource !== null) {
          const r = this.injectInterrupt(this.irqSource.ack());
          if (r !== EXIT_NONE) return r;
        }
      } else c.inhibitIrq = false;

      const eip = c.eip;
      let blk: Block | null;
      const ep = c.tlbEpoch;
      if (prev !== null && prev.succAEip === eip && prev.succAEpoch === ep) blk = prev.succA;
      else if (prev !== null && prev.succBEip === eip && prev.succBEpoch === ep) blk = prev.succB;
      else if (this.recentEip[eip & RECENT_MASK] === eip && this.recentEpoch[eip & RECENT_MASK] === ep) {
        blk = this.recentBlock[eip & RECENT_MASK]!;
        if (prev !== null) {
          prev.succB = prev.succA; prev.succBEip = prev.succAEip; prev.succBEpoch = prev.succAEpoch;
          prev.succA = blk; prev.succAEip = eip; prev.succAEpoch = ep;
        }
      } else {
        blk = this.lookup(c, eip);
        if (blk === null) {
          prev = null;
          if (this.lookupExit !== EXIT_NONE) { const r = this.lookupExit; this.lookupExit = EXIT_NONE; return r; }
          continue;
        }
        if (blk.key !== -1) {
          const slot = eip & RECENT_MASK;
          this.recentEip[slot] = eip; this.recentEpoch[slot] = ep; this.recentBlock[slot] = blk;
        }
        if (prev !== null && blk.key !== -1) {
          // Replace the older link (never to an uncached page-straddling block).
          prev.succB = prev.succA; prev.succBEip = prev.succAEip; prev.succBEpoch = prev.succAEpoch;
          prev.succA = blk; prev.succAEip = eip; prev.succAEpoch = ep;
        }
      }
      blk = blk!;
      prev = blk.key === -1 ? null : blk;

      const ins = blk.insns, n = ins.length;
      const end = (eip + blk.endOff) | 0;
      let k = 0;
      try {
        // A block that branches back to its own start (a tight loop) runs again right here,
        // skipping the block lookup, for as long as no kick/timer poll or interrupt is due.
        do {
          c.base = eip;
          c.eip = end;
          for (k = 0; k < n; k++) {
            const i = ins[k];
            i.fn(c, i);
            if (c.stop !== 0) break;
          }
          if (c.stop !== 0 || c.eip !== eip) break;
          c.icount += n;
        } while (++poll < 256 && !this.intr);
      } catch (e) {
        c.icount += k;
        c.stop = 0;
        c.eip = (eip + ins[k].off) | 0;
        if (e === FAULT) {
          if (!deliverException(c)) return this.shutdown();
          continue;
        }
        if (e === RETRY) return EXIT_MMIO;
        if (e instanceof Unsupported) {
          c.exitReason = EXIT_INTERNAL;
          c.exitDetail = `${e.message} at EIP ${(c.eip >>> 0).toString(16)}`;
          return EXIT_INTERNAL;
        }
        throw e;
      }
      if (c.stop === 0) { if (c.eip !== eip) c.icount += n; continue; }
      c.icount += k + 1;
      if (c.stop === STOP_AFTER && k < n - 1) c.eip = (eip + ins[k].nextOff) | 0;
      c.stop = 0;
      const reason = c.exitReason;
      if (reason === EXIT_NONE) continue; // e.g. the block rewrote its own code
      c.exitReason = EXIT_NONE;
      if (reason === EXIT_HLT) {
        const r = this.halt();
        if (r === EXIT_NONE) continue;
        return r;
      }
      return reason;
    }
  }

  private halt(): number {
    const c = this.cpu;
    c.halted = true;
    if (this.park === null || (c.eflags & IF) === 0) { c.halted = false; return EXIT_HLT; }
    for (;;) {
      if (this.poll !== null) this.poll();
      if (this.intr) { c.halted = false; return EXIT_NONE; }
      if (Atomics.load(this.control, 0) !== 0) { Atomics.store(this.control, 0, 0); c.halted = false; return EXIT_KICKED; }
      this.park();
    }
  }

  private injectInterrupt(vector: number): number {
    const c = this.cpu;
    try {
      interrupt(c, vector, false, false, 0);
    } catch (e) {
      if (e === FAULT) { if (!deliverException(c)) return this.shutdown(); return EXIT_NONE; }
      if (e instanceof Unsupported) { c.exitDetail = e.message; return EXIT_INTERNAL; }
      throw e;
    }
    return EXIT_NONE;
  }

  private shutdown(): number {
    this.cpu.exitDetail = 'triple fault';
    return EXIT_SHUTDOWN;
  }
}
