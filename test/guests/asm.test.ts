// The test-guest emitter against a real disassembler: every instruction it can emit, in both
// modes, must disassemble (binutils objdump) to the instruction that was meant.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, test } from 'vitest';
import { Asm, R } from './asm.ts';

function hasObjdump(): boolean {
  try {
    execFileSync('objdump', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
const skip = hasObjdump() ? undefined : 'asm tests skipped: objdump (binutils) is not installed';
if (skip) console.warn(skip);

const dir = mkdtempSync(join(tmpdir(), 'tsvmm-asm-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function disassemble(code: Uint8Array, bits: 32 | 64): string[] {
  const file = join(dir, `code${bits}.bin`);
  writeFileSync(file, code);
  const text = execFileSync('objdump', ['-D', '-b', 'binary', '-m', bits === 64 ? 'i386:x86-64' : 'i386', '--adjust-vma=0x1000', file], { encoding: 'utf8' });
  return text.split('\n')
    .map((line) => /^\s+[0-9a-f]+:\t[0-9a-f ]+\t(.*)$/.exec(line)?.[1]?.replace(/\s+/g, ' ').trim())
    .filter((s): s is string => s !== undefined);
}

function program(bits: 32 | 64): Asm {
  return new Asm(bits, 0x1000).label('top')
    .movImm(R.ebx, 0xd000_0000).movAl(0x41).movReg(R.ecx, R.eax)
    .load(R.eax, R.ebx, 1).load(R.eax, R.ebx, 2, 8).load(R.ecx, R.esp, 4, 0x100).load(R.edx, R.ebp, 4)
    .store(R.ebx, R.eax, 1).store(R.ebx, R.eax, 2, -4).store(R.ebx, R.edx, 4, 0x200)
    .inc(R.ecx).dec(R.ecx).incMem(R.ebx).addImm(R.esi, 5).cmpImm(R.ecx, 10).testAl(0x20).xor(R.eax, R.eax)
    .out(0x80, 1).out(0x80, 2).out(0x80, 4).outDx(1).outDx(2).outDx(4).inDx(1).inDx(2).inDx(4)
    .repOuts(1).repOuts(2).repOuts(4).repIns(1).repIns(4)
    .jmp('top').jnz('top').jz('end').spin().hlt().sti().cli().nop().cpuid().ud2().label('end');
}

function expected(bits: 32 | 64): string[] {
  const b = bits === 64 ? 'r' : 'e';
  return [
    'mov $0xd0000000,%ebx', 'mov $0x41,%al', 'mov %eax,%ecx',
    `mov (%${b}bx),%al`, `mov 0x8(%${b}bx),%ax`, `mov 0x100(%${b}sp),%ecx`, `mov 0x0(%${b}bp),%edx`,
    `mov %al,(%${b}bx)`, `mov %ax,-0x4(%${b}bx)`, `mov %edx,0x200(%${b}bx)`,
    'inc %ecx', 'dec %ecx', `incl (%${b}bx)`, 'add $0x5,%esi', 'cmp $0xa,%ecx', 'test $0x20,%al', 'xor %eax,%eax',
    'out %al,$0x80', 'out %ax,$0x80', 'out %eax,$0x80', 'out %al,(%dx)', 'out %ax,(%dx)', 'out %eax,(%dx)',
    'in (%dx),%al', 'in (%dx),%ax', 'in (%dx),%eax',
    `rep outsb %ds:(%${b}si),(%dx)`, `rep outsw %ds:(%${b}si),(%dx)`, `rep outsl %ds:(%${b}si),(%dx)`,
    `rep insb (%dx),%es:(%${b}di)`, `rep insl (%dx),%es:(%${b}di)`,
    'jmp 0x1000', 'jne 0x1000', 'je 0x1070', 'jmp 0x1066', 'hlt', 'sti', 'cli', 'nop', 'cpuid', 'ud2',
  ];
}

test.skipIf(skip)('32-bit encodings disassemble to the intended instructions', () => {
  expect(disassemble(program(32).assemble(), 32)).toEqual(expected(32));
});

test.skipIf(skip)('64-bit encodings, including REX.W forms', () => {
  const a = program(64).movImm(R.eax, 0x1122_3344_5566_7788n, 8).load(R.eax, R.ebx, 8).store(R.ebx, R.eax, 8, 16)
    .inc(R.ecx, 8).movReg(R.ecx, R.eax, 8);
  expect(disassemble(a.assemble(), 64)).toEqual([
    ...expected(64),
    'movabs $0x1122334455667788,%rax', 'mov (%rbx),%rax', 'mov %rax,0x10(%rbx)', 'inc %rcx', 'mov %rax,%rcx',
  ]);
});

test('64-bit operands are refused in 32-bit code', () => {
  expect(() => new Asm(32, 0).load(R.eax, R.ebx, 8)).toThrow(/long mode/);
});
