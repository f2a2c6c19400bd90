// A tiny x86 machine-code emitter for bare-metal test guests: the handful of instructions the
// tests need, in 32-bit protected mode or 64-bit long mode, with labels. Only the eight legacy
// registers (no REX.R/REX.B), so encodings stay simple; REX.W for 64-bit operands.
//
//   const a = new Asm(64, 0x100000);
//   a.movImm(R.ebx, 0xd000_0000).label('loop').load(R.eax, R.ebx, 4).out(0x80, 4).jmp('loop');
//   const code = a.assemble();
//
// Memory operands are always [base + disp]: in 64-bit mode a bare disp32 is sign-extended
// (0xD0000000 would become 0xFFFFFFFFD0000000), so absolute addresses go through a register.

export const R = { eax: 0, ecx: 1, edx: 2, ebx: 3, esp: 4, ebp: 5, esi: 6, edi: 7 } as const;
export type Reg = (typeof R)[keyof typeof R];
export type Size = 1 | 2 | 4 | 8;

interface Fixup {
  /** Offset of the rel32 field. */
  at: number;
  label: string;
}

export class Asm {
  private readonly out_: number[] = [];
  private readonly labels = new Map<string, number>();
  private readonly fixups: Fixup[] = [];

  constructor(readonly bits: 32 | 64, readonly origin: number) {}

  /** Current address (origin + bytes emitted so far). */
  get here(): number {
    return this.origin + this.out_.length;
  }

  label(name: string): this {
    if (this.labels.has(name)) throw new Error(`label ${name} defined twice`);
    this.labels.set(name, this.here);
    return this;
  }

  /** Address of a defined label. */
  address(name: string): number {
    const a = this.labels.get(name);
    if (a === undefined) throw new Error(`undefined label ${name}`);
    return a;
  }

  bytes(...b: number[]): this {
    for (const x of b) this.out_.push(x & 0xff);
    return this;
  }

  private imm(value: number | bigint, size: Size): this {
    let v = BigInt.asUintN(size * 8, BigInt(value));
    for (let i = 0; i < size; i++, v >>= 8n) this.out_.push(Number(v & 0xffn));
    return this;
  }

  /** Operand-size prefixes for a `size`-byte operation whose 32-bit form is the default. */
  private sized(size: Size): this {
    if (size === 2) this.bytes(0x66);
    if (size === 8) {
      if (this.bits !== 64) throw new Error('64-bit operands need long mode');
      this.bytes(0x48); // REX.W
    }
    return this;
  }

  /** ModRM (+SIB, +disp) for the memory operand [base + disp] with `reg` in the reg field. */
  private modrmMem(reg: number, base: Reg, disp: number): this {
    const mod = disp === 0 && base !== R.ebp ? 0 : disp >= -128 && disp <= 127 ? 1 : 2;
    this.bytes((mod << 6) | (reg << 3) | base);
    if (base === R.esp) this.bytes(0x24); // SIB: base = esp, no index
    if (mod === 1) this.imm(disp, 1);
    if (mod === 2) this.imm(disp, 4);
    return this;
  }

  private modrmReg(reg: number, rm: number): this {
    return this.bytes(0xc0 | (reg << 3) | rm);
  }

  // ---- data movement ----

  /** mov reg, imm (32-bit; zero-extends in long mode). With size 8: mov r64, imm64. */
  movImm(reg: Reg, value: number | bigint, size: 4 | 8 = 4): this {
    if (size === 8) return this.sized(8).bytes(0xb8 + reg).imm(value, 8);
    return this.bytes(0xb8 + reg).imm(value, 4);
  }

  /** mov al, imm8 */
  movAl(value: number): this {
    return this.bytes(0xb0, value);
  }

  /** mov dst, src (register to register) */
  movReg(dst: Reg, src: Reg, size: 4 | 8 = 4): this {
    return this.sized(size).bytes(0x89).modrmReg(src, dst);
  }

  /** mov reg, [base + disp] — `size` bytes (al/ax/eax/rax for reg = eax). */
  load(reg: Reg, base: Reg, size: Size, disp = 0): this {
    if (size === 1) return this.bytes(0x8a).modrmMem(reg, base, disp);
    return this.sized(size).bytes(0x8b).modrmMem(reg, base, disp);
  }

  /** mov [base + disp], reg — `size` bytes. */
  store(base: Reg, reg: Reg, size: Size, disp = 0): this {
    if (size === 1) return this.bytes(0x88).modrmMem(reg, base, disp);
    return this.sized(size).bytes(0x89).modrmMem(reg, base, disp);
  }

  // ---- arithmetic ----

  inc(reg: Reg, size: 4 | 8 = 4): this {
    return this.sized(size).bytes(0xff).modrmReg(0, reg);
  }

  dec(reg: Reg, size: 4 | 8 = 4): this {
    return this.sized(size).bytes(0xff).modrmReg(1, reg);
  }

  /** inc dword/qword [base + disp] */
  incMem(base: Reg, size: 4 | 8 = 4, disp = 0): this {
    return this.sized(size).bytes(0xff).modrmMem(0, base, disp);
  }

  addImm(reg: Reg, value: number, size: 4 | 8 = 4): this {
    return this.sized(size).bytes(0x81).modrmReg(0, reg).imm(value, 4);
  }

  cmpImm(reg: Reg, value: number, size: 4 | 8 = 4): this {
    return this.sized(size).bytes(0x81).modrmReg(7, reg).imm(value, 4);
  }

  /** test al, imm8 */
  testAl(mask: number): this {
    return this.bytes(0xa8, mask);
  }

  xor(dst: Reg, src: Reg): this {
    return this.bytes(0x31).modrmReg(src, dst);
  }

  // ---- port I/O (value in al/ax/eax) ----

  /** out imm8, al/ax/eax */
  out(port: number, size: 1 | 2 | 4): this {
    if (port > 0xff) throw new Error(`out imm8 takes ports below 0x100, not 0x${port.toString(16)}: use outDx`);
    return this.sized(size).bytes(size === 1 ? 0xe6 : 0xe7, port);
  }

  /** out dx, al/ax/eax */
  outDx(size: 1 | 2 | 4): this {
    return this.sized(size).bytes(size === 1 ? 0xee : 0xef);
  }

  /** in al/ax/eax, dx */
  inDx(size: 1 | 2 | 4): this {
    return this.sized(size).bytes(size === 1 ? 0xec : 0xed);
  }

  /** rep outsb/outsw/outsd: ECX/RCX elements from [esi/rsi] to port dx. */
  repOuts(size: 1 | 2 | 4): this {
    return this.bytes(0xf3).sized(size).bytes(size === 1 ? 0x6e : 0x6f);
  }

  /** rep insb/insw/insd: ECX/RCX elements from port dx to [edi/rdi]. */
  repIns(size: 1 | 2 | 4): this {
    return this.bytes(0xf3).sized(size).bytes(size === 1 ? 0x6c : 0x6d);
  }

  // ---- control flow (rel32, resolved by assemble) ----

  private branch(opcode: number[], label: string): this {
    this.bytes(...opcode);
    this.fixups.push({ at: this.out_.length, label });
    return this.imm(0, 4);
  }

  jmp(label: string): this {
    return this.branch([0xe9], label);
  }

  jnz(label: string): this {
    return this.branch([0x0f, 0x85], label);
  }

  jz(label: string): this {
    return this.branch([0x0f, 0x84], label);
  }

  /** jmp $ — spin forever (until an interrupt, kick or exit). */
  spin(): this {
    return this.bytes(0xeb, 0xfe);
  }

  // ---- system ----

  hlt(): this { return this.bytes(0xf4); }
  sti(): this { return this.bytes(0xfb); }
  cli(): this { return this.bytes(0xfa); }
  nop(): this { return this.bytes(0x90); }
  cpuid(): this { return this.bytes(0x0f, 0xa2); }
  /** ud2: raises #UD. */
  ud2(): this { return this.bytes(0x0f, 0x0b); }

  assemble(): Uint8Array {
    const code = Uint8Array.from(this.out_);
    const view = new DataView(code.buffer);
    for (const f of this.fixups) {
      const target = this.address(f.label);
      const next = this.origin + f.at + 4;
      view.setInt32(f.at, target - next, true);
    }
    return code;
  }
}
