// Interpreter behaviour the KVM oracle cannot check on this project's hosts (it runs CPL3 only
// in 64-bit mode, where the stack is 64 bits wide and INT n / CR0.EM misbehave, and it cannot
// run CPL0 code natively): expectations written from the Intel SDM.
import { describe, expect, test } from 'vitest';
import { ExitReason, type Vcpu } from '../../hypervisors/backend.ts';
import { defaultCpuid, openInterp, type InterpVcpu } from '../../hypervisors/interp/index.ts';
import { kick } from '../../hypervisors/kick.ts';
import { assemble, haveAssembler } from './asm.ts';
import { CODE, CTRL, EXIT_PORT, type Machine, makeMachine, enterCpl3, PAGE_RO, RESULTS } from './guest.ts';

const skip = haveAssembler() ? undefined : 'GNU as/ld missing (apt-get install binutils): interpreter tests skipped';
if (skip) console.warn(`SKIP: ${skip}`);

const u32 = (m: Machine, a: number): number => new DataView(m.ram.buffer, m.ram.byteOffset).getUint32(a, true);
const reg = (v: Vcpu, name: 'rax' | 'rbx' | 'rcx' | 'rdx' | 'rsi' | 'rdi' | 'rsp' | 'rbp'): number => Number(v.getRegs()[name]);

/** Run a CPL3 program until its fault/INT reaches the recording handler; returns the record. */
function cpl3(src: string, opts: { em?: boolean; data?: (ram: Uint8Array) => void } = {}): { m: Machine; rec: Record<string, number> } {
  const m = makeMachine(openInterp(), assemble(src, CODE), opts.data);
  enterCpl3(m.vcpu, CODE, { paging: true, em: opts.em ?? false });
  const r = m.vcpu.run();
  expect(r, m.vcpu.exit.detail).toBe(ExitReason.Io);
  expect(m.vcpu.exit.address).toBe(EXIT_PORT);
  const names = ['eax', 'ecx', 'edx', 'ebx', 'esp', 'ebp', 'esi', 'edi', 'eflags', 'vector', 'error', 'eip', 'cr2', 'cs'];
  const rec: Record<string, number> = {};
  names.forEach((n, k) => { rec[n] = u32(m, RESULTS + 4 * k); });
  return { m, rec };
}

/** CPL0 flat protected mode (no paging unless the program enables it); stops at the first OUT. */
function cpl0(src: string, data?: (ram: Uint8Array) => void): Machine {
  const m = makeMachine(openInterp(), assemble(src, CODE), data);
  const s = m.vcpu.getSregs();
  const seg = (selector: number, type: number) => ({ base: 0n, limit: 0xffffffff, selector, type, present: true, dpl: 0, db: true, s: true, l: false, g: true, avl: false, unusable: false });
  m.vcpu.setSregs({ ...s, cs: seg(0x08, 11), ss: seg(0x10, 3), ds: seg(0x10, 3), es: seg(0x10, 3), fs: seg(0x10, 3), gs: seg(0x10, 3),
    gdt: { base: 0x1000n, limit: 0x67 }, idt: { base: 0x2000n, limit: 0x7ff }, cr0: 0x11n, cr3: 0x5000n, cr4: 0x10n });
  m.vcpu.setRegs({ ...m.vcpu.getRegs(), rip: BigInt(CODE), rsp: 0x8000n, rflags: 0x2n });
  return m;
}

describe.skipIf(skip)('interpreter (SDM expectations)', () => {
  test('INT 0x80 from CPL3 switches to the TSS stack and pushes SS, ESP, EFLAGS, CS, EIP', () => {
    const { m, rec } = cpl3('mov $0x600100, %esp\n mov $7, %eax\n int $0x80\n nop');
    expect(rec.vector).toBe(0x80);
    expect(rec.eip).toBe(CODE + 5 + 5 + 2); // the instruction after INT
    expect(rec.esp).toBe(0x600100);
    expect(rec.cs).toBe(0x1b);
    expect(rec.eax).toBe(7);
    // The frame sits on the TSS's ESP0 (0x9000): ss, esp, eflags, cs, eip, then the stub's words.
    expect(u32(m, 0x9000 - 4)).toBe(0x23);
    expect(u32(m, 0x9000 - 8)).toBe(0x600100);
    expect(u32(m, 0x9000 - 16)).toBe(0x1b);
  });

  test('INT n through a DPL0 gate from CPL3 is #GP(vector*8+2); INT3 and INTO trap after the instruction', () => {
    expect(cpl3('int $0x41').rec).toMatchObject({ vector: 13, error: 0x41 * 8 + 2, eip: CODE });
    expect(cpl3('int3').rec).toMatchObject({ vector: 3, eip: CODE + 1 });
    expect(cpl3('mov $0x7fffffff, %eax\n add $1, %eax\n into').rec).toMatchObject({ vector: 4, eip: CODE + 5 + 3 + 1 });
  });

  test('x87 instructions raise #NM with CR0.EM; WAIT does not (MP=0)', () => {
    expect(cpl3('fwait\n .byte 0xd9, 0xe8', { em: true }).rec).toMatchObject({ vector: 7, eip: CODE + 1 });
  });

  test('32-bit stack instructions: PUSH ESP, CALL/RET, PUSHA/POPA, ENTER/LEAVE, PUSHF/POPF at CPL3', () => {
    const { rec } = cpl3(`
      mov $0x600100, %esp
      push %esp
      pop %eax              # the value before the push
      call 1f
1:    pop %ebx              # return address = label 1
      mov $0x11, %ecx
      pusha
      mov $0, %ecx
      popa                  # restores ECX
      mov $0x600100, %ebp
      enter $16, $0         # push ebp; ebp = esp; esp -= 16
      mov %esp, %edx
      mov %ebp, %esi
      leave
      pushf
      orl $0x3200, (%esp)   # try to set IOPL=3 and IF: ignored at CPL3 with IOPL 0
      popf
      pushf
      pop %edi
      mov 0x300008, %eax    # #PF: stop and record`);
    expect(rec.vector).toBe(14);
    expect(rec.ecx).toBe(0x11);
    expect(rec.edx).toBe(0x600100 - 4 - 16);
    expect(rec.esi).toBe(0x600100 - 4);
    expect(rec.ebp).toBe(0x600100);
    expect(rec.esp).toBe(0x600100);
    expect(rec.edi! & 0x3200).toBe(0);
    expect(rec.ebx).toBeGreaterThan(CODE);
  });

  test('IRET and RETF to the same privilege reload CS:EIP (and EFLAGS)', () => {
    const { rec } = cpl3(`
      mov $0x600100, %esp
      pushl $0x8d7
      pushl $0x1b
      pushl $1f
      iret
      ud2
1:    pushl $0x1b
      pushl $2f
      lret
      ud2
2:    pushf
      pop %ecx
      mov 0x300008, %eax`);
    expect(rec.vector).toBe(14);
    expect(rec.ecx! & 0x8d5).toBe(0x8d5);
  });

  test('paging at CPL0: WP, accessed/dirty bits, 4 MiB PSE pages, INVLPG', () => {
    const m = cpl0(`
      mov %cr0, %eax
      or $0x80000000, %eax
      mov %eax, %cr0          # paging on, WP=0
      movl $0x1234, ${PAGE_RO}  # supervisor write to a read-only page: allowed without WP
      mov ${PAGE_RO}, %ebx
      mov %cr0, %eax
      or $0x10000, %eax
      mov %eax, %cr0          # WP=1
      movl $0x1000, %esp
      mov ${0x800000 + 0x10}, %ecx  # through a 4 MiB PSE page
      movl $0x300007, 0x6000 + 4 * 0x301   # remap the read-only page writable...
      invlpg ${PAGE_RO}       # ...and drop its translation
      movl $0x5678, ${PAGE_RO}
      mov ${PAGE_RO}, %edx
      out %al, $0xe1`, (ram) => { ram[0x800010] = 0x99; });
    expect(m.vcpu.run()).toBe(ExitReason.Io);
    expect(reg(m.vcpu, 'rbx')).toBe(0x1234);
    expect(reg(m.vcpu, 'rcx') & 0xff).toBe(0x99);
    expect(reg(m.vcpu, 'rdx')).toBe(0x5678);
    expect(u32(m, 0x6000 + 4 * 0x301) & 0x60).toBe(0x60); // accessed + dirty
    expect(u32(m, 0x5000 + 4 * 2) & 0x20).toBe(0x20);     // the PSE PDE was accessed
  });

  test('a supervisor write to a read-only page with CR0.WP faults with error code 3 and CR2', () => {
    const m = cpl0(`
      mov %cr0, %eax
      or $0x80010000, %eax
      mov %eax, %cr0
      movl $1, ${PAGE_RO + 8}
      out %al, $0xe1`);
    expect(m.vcpu.run()).toBe(ExitReason.Io);
    expect(m.vcpu.exit.address).toBe(EXIT_PORT); // the recording handler ran
    expect(u32(m, RESULTS + 36)).toBe(14);
    expect(u32(m, RESULTS + 40)).toBe(3);
    expect(u32(m, RESULTS + 48)).toBe(PAGE_RO + 8);
  });

  test('self-modifying code: a store into the running block takes effect', () => {
    const m = cpl0(`
      movb $2, 1f + 1
1:    mov $1, %eax
      out %al, $0xe1`);
    expect(m.vcpu.run()).toBe(ExitReason.Io);
    expect(reg(m.vcpu, 'rax')).toBe(2);
  });

  test('port I/O: OUT exits with the data, IN is completed with the VMM answer', () => {
    const m = cpl0(`
      mov $0xabcd, %eax
      mov $0x3f8, %dx
      outw %ax, %dx
      inl $0x71, %eax
      out %al, $0xe1`);
    expect(m.vcpu.run()).toBe(ExitReason.Io);
    expect(m.vcpu.exit).toMatchObject({ address: 0x3f8, size: 2, write: true });
    expect(Array.from(m.vcpu.exit.data)).toEqual([0xcd, 0xab]);
    expect(m.vcpu.run()).toBe(ExitReason.Io);
    expect(m.vcpu.exit).toMatchObject({ address: 0x71, size: 4, write: false });
    m.vcpu.exit.data.set([1, 2, 3, 4]);
    expect(m.vcpu.run()).toBe(ExitReason.Io);
    expect(reg(m.vcpu, 'rax')).toBe(0x04030201);
  });

  test('MMIO: reads outside RAM exit and are completed with exit.data; writes exit after completing', () => {
    const m = cpl0(`
      mov $0xd0000000, %ebx
      movl $0x11223344, 8(%ebx)
      mov 4(%ebx), %ecx
      add $1, %ecx
      out %al, $0xe1`);
    expect(m.vcpu.run()).toBe(ExitReason.Mmio);
    expect(m.vcpu.exit).toMatchObject({ address: 0xd0000008, size: 4, write: true });
    expect(Array.from(m.vcpu.exit.data)).toEqual([0x44, 0x33, 0x22, 0x11]);
    expect(m.vcpu.run()).toBe(ExitReason.Mmio);
    expect(m.vcpu.exit).toMatchObject({ address: 0xd0000004, size: 4, write: false });
    m.vcpu.exit.data.set([9, 0, 0, 0]);
    expect(m.vcpu.run()).toBe(ExitReason.Io);
    expect(reg(m.vcpu, 'rcx')).toBe(10);
  });

  test('a kick makes run() return Kicked; HLT with IF=0 exits with Hlt', () => {
    const m = cpl0('1: jmp 1b');
    kick(m.vcpu.kickToken());
    expect(m.vcpu.run()).toBe(ExitReason.Kicked);
    const h = cpl0('hlt\n out %al, $0xe1');
    expect(h.vcpu.run()).toBe(ExitReason.Hlt);
    expect(h.vcpu.run()).toBe(ExitReason.Io);
  });

  test('an unimplemented instruction is InternalError naming its bytes and EIP; no IDT means a triple fault', () => {
    const m = cpl0('.byte 0xf1');
    expect(m.vcpu.run()).toBe(ExitReason.InternalError);
    expect(m.vcpu.exit.detail).toBe(`unimplemented instruction f1 at EIP ${CODE.toString(16)}`);
    const t = cpl0('ud2');
    t.vcpu.setSregs({ ...t.vcpu.getSregs(), idt: { base: 0n, limit: 0 } });
    expect(t.vcpu.run()).toBe(ExitReason.Shutdown);
  });

  test('CPUID reports the default CPU (no FPU, TSC, CX8, CMOV, PSE); RDTSC advances', () => {
    const m = cpl0(`
      mov $1, %eax
      cpuid
      mov %edx, %esi
      xor %eax, %eax
      cpuid
      rdtsc
      mov %eax, %edi
      mov $100, %ecx
1:    loop 1b
      rdtsc
      sub %edi, %eax
      out %al, $0xe1`);
    expect(m.vcpu.run()).toBe(ExitReason.Io);
    const leaf1 = defaultCpuid().find((e) => e.function === 1)!;
    expect(reg(m.vcpu, 'rsi')).toBe(leaf1.edx);
    expect(reg(m.vcpu, 'rsi') & 1).toBe(0); // no FPU: the kernel emulates it
    expect(reg(m.vcpu, 'rbx')).toBe(0x756e6547); // "Genu"
    expect(reg(m.vcpu, 'rax')).toBeGreaterThan(0);
  });

  // The SDM oracle for CPUID and RDTSC (0F A2, 0F 31), which the differential harness cannot
  // compare: the interpreter reports its own CPU and its own clock by design.
  test('CPUID at CPL3 (SDM): vendor in EBX-EDX-ECX, all four registers written, leaves past the maximum return the highest basic leaf, flags unchanged', () => {
    const { m } = cpl3(`
      mov $0x600000, %ebp
      mov $0x8d5, %eax
      push %eax
      popf
      mov $0, %eax
      mov $0x11111111, %ebx
      mov $0x22222222, %ecx
      mov $0x33333333, %edx
      cpuid
      mov %eax, 0(%ebp)
      mov %ebx, 4(%ebp)
      mov %edx, 8(%ebp)
      mov %ecx, 12(%ebp)
      pushf
      pop %eax
      mov %eax, 16(%ebp)
      mov $0x7fffffff, %eax
      cpuid
      mov %eax, 20(%ebp)
      mov %ebx, 24(%ebp)
      mov %ecx, 28(%ebp)
      mov %edx, 32(%ebp)
      mov $1, %eax
      mov $0x44444444, %ecx
      cpuid
      mov %eax, 36(%ebp)
      mov %ecx, 40(%ebp)
      mov %edx, 44(%ebp)
      int $0x80`);
    const max = u32(m, 0x600000);
    const top = defaultCpuid().find((e) => e.function === max)!;
    const leaf1 = defaultCpuid().find((e) => e.function === 1)!;
    expect(Buffer.from(m.ram.subarray(0x600004, 0x600010)).toString('latin1')).toBe('GenuineIntel');
    expect(u32(m, 0x600010) & 0x8d5).toBe(0x8d5);
    expect([u32(m, 0x600014), u32(m, 0x600018), u32(m, 0x60001c), u32(m, 0x600020)]).toEqual([top.eax, top.ebx, top.ecx, top.edx].map((v) => v >>> 0));
    expect(u32(m, 0x600024) >>> 8 & 0xf).toBe(6); // family 6
    expect(u32(m, 0x600028)).toBe(leaf1.ecx);    // ECX written (was 0x44444444)
    expect(u32(m, 0x60002c) & 1).toBe(0);        // no FPU: the kernel emulates it
  });

  test('RDTSC at CPL3 (SDM): EDX:EAX is the 64-bit time-stamp counter, monotonic across the 32-bit carry, flags unchanged', () => {
    const m = makeMachine(openInterp(), assemble(`
      mov $0x600000, %ebp
      mov $0x8d5, %eax
      push %eax
      popf
      rdtsc
      mov %eax, 0(%ebp)
      mov %edx, 4(%ebp)
      rdtsc
      mov %eax, 8(%ebp)
      mov %edx, 12(%ebp)
      pushf
      pop %eax
      mov %eax, 16(%ebp)
      int $0x80`, CODE));
    // A deterministic clock straddling 2^32, so the carry into EDX is visible.
    const ticks = [0x1fffffff0n, 0x200000010n];
    (m.vcpu as InterpVcpu).cpu.tscSource = () => ticks.shift() ?? 0x300000000n;
    enterCpl3(m.vcpu, CODE, { paging: true });
    expect(m.vcpu.run()).toBe(ExitReason.Io);
    const t0 = BigInt(u32(m, 0x600000)) | (BigInt(u32(m, 0x600004)) << 32n);
    const t1 = BigInt(u32(m, 0x600008)) | (BigInt(u32(m, 0x60000c)) << 32n);
    expect(t1 - t0).toBe(0x20n);
    expect(t0 >> 32n).toBe(1n);
    expect(u32(m, 0x600010) & 0x8d5).toBe(0x8d5);
  });

  test('the instruction count advances (used for deterministic time and MIPS)', () => {
    const m = cpl0('mov $1000, %ecx\n1: dec %ecx\n jnz 1b\n out %al, $0xe1');
    m.vcpu.run();
    expect((m.vcpu as InterpVcpu).cpu.icount).toBeGreaterThanOrEqual(2001);
    void CTRL;
  });
});
