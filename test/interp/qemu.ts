// The QEMU TCG oracle (qemu-system-i386): for what KVM cannot show on this project's hosts —
// 32-bit-mode-only forms (stack width, BCD, segment registers, INT n, x87 #NM) and kernel-mode
// behaviour. The whole test runs inside the guest: a multiboot boot stub at CPL0 builds the
// system structures (LGDT, LIDT, LTR, CR3/CR4/CR0 with paging, PSE, EM) and IRETs to the first
// CPL3 case; the exception handler records each fault and IRETs to the next case through the
// TSS ring transition. The same blob runs on the interpreter from the same multiboot state, so
// the kernel-mode path is compared too. At the end the guest dumps the result records and data
// areas over COM1 (QEMU) and signals on port 0xf5 (the interpreter harness reads memory there).

import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ExitReason, type Hypervisor } from '../../hypervisors/backend.ts';
import { assemble } from './asm.ts';
import type { BatchResult } from './diff.ts';
import { LOW_CODE, LOW_CODE_END, Rng } from './gen.ts';
import { buildSystem, CODE, CTRL, DATA, DATA_SIZE, EXIT_PORT, RAM_SIZE, REC, RESULTS, SEG_BASE_33, vmConfig } from './guest.ts';

const BLOB = 0xf00000;
const SYS_SIZE = 0x13000;
const DONE_PORT = 0xf5;
/**
 * Kernel-mode state compared after the run: the GDT (accessed bits, the TSS busy bit) and the
 * page directory and first page table (accessed/dirty bits the page walks set).
 */
const SYS_DUMP = [0x1000, 0x68] as const;
const PT_DUMP = [0x5000, 0x2000] as const;
const TAIL = SYS_DUMP[1] + PT_DUMP[1];
const QEMU_EXIT_PORT = 0xf4;

export function haveQemu(): boolean {
  try { execFileSync('qemu-system-i386', ['--version'], { stdio: 'ignore' }); return true; } catch { return false; }
}

/** Code appended to the recording handler (guest.ts) for in-guest resumption; see resumeAsm. */
function resumeAsm(n: number): string {
  return `
  cmpl $0x81, 32(%esp)
  je 9f
  mov ${CTRL}, %eax
  inc %eax
  mov %eax, ${CTRL}
  mov ${CODE}(,%eax,4), %ecx
  mov $0x9000, %esp
  push $0x23
  push $0x8000
  push $0x2
  push $0x1b
  push %ecx
  iret
9:
  # Touch the pages the dump reads first, so their accessed bits are set before the interpreter
  # harness snapshots memory at DONE_PORT (QEMU sets them while dumping).
  mov ${SYS_DUMP[0]}, %al
  mov ${PT_DUMP[0]}, %al
  mov ${PT_DUMP[0] + 0x1000}, %al
  out %al, $${DONE_PORT}
  mov $0x3f8, %dx
  mov $${RESULTS}, %esi
  mov $${n * REC}, %ecx
  rep outsb
  mov $${DATA}, %esi
  mov $${n * DATA_SIZE}, %ecx
  rep outsb
  mov $${SEG_BASE_33}, %esi
  mov $0x10000, %ecx
  rep outsb
  mov $${SYS_DUMP[0]}, %esi
  mov $${SYS_DUMP[1]}, %ecx
  rep outsb
  mov $${PT_DUMP[0]}, %esi
  mov $${PT_DUMP[1]}, %ecx
  rep outsb
  out %al, $${QEMU_EXIT_PORT}
  hlt`;
}

/** The multiboot blob for a batch whose program (32-bit) is `program` with `n` cases. */
/** `low`: code for the low code page (LOW_CODE, cases of 16-bit-operand branch forms), if any. */
export function buildBlob(program: Uint8Array, n: number, seed: number, em: boolean, low?: Uint8Array): Uint8Array {
  const sys = new Uint8Array(SYS_SIZE);
  buildSystem(sys);
  if (low !== undefined) {
    if (LOW_CODE + low.length > LOW_CODE_END) throw new Error(`low code page overflow: ${low.length} bytes at 0x${LOW_CODE.toString(16)} (fewer cases per 16-bit branch form)`);
    sys.set(low, LOW_CODE);
  }
  // The handler (hand-assembled in guest.ts) ends in OUT 0xE0; HLT; JMP. Put the resume code
  // over that HLT so that outside a VMM that stops at the OUT, the guest continues by itself.
  const hlt = sys.indexOf(0xf4, 0x4000);
  sys.set(assemble(resumeAsm(n), hlt), hlt);
  const rng = new Rng(seed);
  const data = new Uint8Array(n * DATA_SIZE);
  const dd = new DataView(data.buffer);
  for (let a = 0; a < data.length; a += 4) dd.setUint32(a, rng.u32(), true);
  const seg33 = new Uint8Array(0x10000);
  const sd = new DataView(seg33.buffer);
  for (let a = 0; a < seg33.length; a += 4) sd.setUint32(a, rng.u32(), true);

  const header = 0x100; // stub code follows the multiboot header
  const sysOff = 0x1000, progOff = sysOff + SYS_SIZE, dataOff = progOff + program.length, segOff = dataOff + data.length;
  const total = segOff + seg33.length;
  const cr0 = 0x80000031 | (em ? 4 : 0);
  const stub = assemble(`
  cli
  mov $0x9000, %esp
  cld
  mov $${BLOB + sysOff}, %esi
  xor %edi, %edi
  mov $${SYS_SIZE}, %ecx
  rep movsb
  mov $${BLOB + progOff}, %esi
  mov $${CODE}, %edi
  mov $${program.length}, %ecx
  rep movsb
  mov $${BLOB + dataOff}, %esi
  mov $${DATA}, %edi
  mov $${data.length}, %ecx
  rep movsb
  mov $${BLOB + segOff}, %esi
  mov $${SEG_BASE_33}, %edi
  mov $0x10000, %ecx
  rep movsb
  movl $0, ${CTRL}
  lgdt gdtr
  ljmp $0x08, $1f
1:
  mov $0x10, %ax
  mov %ax, %ds
  mov %ax, %es
  mov %ax, %ss
  mov %ax, %fs
  mov %ax, %gs
  lidt idtr
  andb $0xfd, 0x1000 + 0x50 + 5   # the TSS descriptor is written busy for KVM; LTR wants it available
  mov $0x50, %ax
  ltr %ax
  mov $0x5000, %eax
  mov %eax, %cr3
  mov %cr4, %eax
  or $0x10, %eax
  mov %eax, %cr4
  mov $${cr0}, %eax
  mov %eax, %cr0
  push $0x23
  push $0x8000
  push $0x2
  push $0x1b
  pushl ${CODE}
  iret
gdtr: .word 0x67
  .long 0x1000
idtr: .word 0x7ff
  .long 0x2000
`, BLOB + header);
  const blob = new Uint8Array(total);
  const bv = new DataView(blob.buffer);
  // Multiboot header with the a.out kludge (flags bit 16): load the flat blob at BLOB.
  bv.setUint32(0, 0x1badb002, true);
  bv.setUint32(4, 0x00010000, true);
  bv.setUint32(8, (-(0x1badb002 + 0x00010000)) >>> 0, true);
  bv.setUint32(12, BLOB, true);        // header_addr
  bv.setUint32(16, BLOB, true);        // load_addr
  bv.setUint32(20, BLOB + total, true); // load_end_addr
  bv.setUint32(24, BLOB + total, true); // bss_end_addr
  bv.setUint32(28, BLOB + header, true); // entry
  blob.set(stub, header);
  blob.set(sys, sysOff);
  blob.set(program, progOff);
  blob.set(data, dataOff);
  blob.set(seg33, segOff);
  return blob;
}

function split(bytes: Uint8Array, n: number): BatchResult {
  const rl = n * REC, dl = n * DATA_SIZE, sl = rl + dl + 0x10000;
  return { records: bytes.slice(0, rl), data: bytes.slice(rl, rl + dl), seg33: bytes.slice(rl + dl, sl), system: bytes.slice(sl, sl + TAIL), exits: 0 };
}

/** Relative fault EIPs, as the KVM harness reports them (diff.ts). */
function relEips(res: BatchResult, program: Uint8Array, n: number): void {
  const dv = new DataView(res.records.buffer), pv = new DataView(program.buffer, program.byteOffset);
  for (let k = 0; k < n; k++) {
    const rec = k * REC;
    const eip = dv.getUint32(rec + 44, true);
    if (dv.getInt32(rec + 36, true) !== -1 && eip >= CODE && eip < CODE + 0x200000) dv.setUint32(rec + 44, (eip - pv.getUint32(4 * (n + 1 + k), true)) >>> 0, true);
  }
}

export function runQemu(blob: Uint8Array, program: Uint8Array, n: number): BatchResult {
  const dir = mkdtempSync(join(tmpdir(), 'tsvmm-qemu-'));
  try {
    writeFileSync(join(dir, 'blob.bin'), blob);
    try {
      execFileSync('qemu-system-i386', ['-M', 'pc', '-cpu', 'qemu32', '-m', String(RAM_SIZE >> 20), '-display', 'none', '-nodefaults', '-no-reboot',
        '-kernel', join(dir, 'blob.bin'), '-chardev', `file,id=c0,path=${join(dir, 'out.bin')}`, '-serial', 'chardev:c0',
        '-device', `isa-debug-exit,iobase=${QEMU_EXIT_PORT},iosize=1`], { stdio: ['ignore', 'ignore', 'pipe'], timeout: 120_000 });
    } catch (e) {
      // isa-debug-exit makes QEMU exit with a non-zero status by design.
      const status = (e as { status?: number }).status;
      if (status === undefined || status === null) throw e;
    }
    const out = new Uint8Array(readFileSync(join(dir, 'out.bin')));
    const expect = n * (REC + DATA_SIZE) + 0x10000 + TAIL;
    const res = split(out, n);
    if (out.length !== expect) res.error = `QEMU produced ${out.length} bytes of results, expected ${expect}`;
    relEips(res, program, n);
    return res;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The same blob on a backend, from the multiboot entry state (flat CPL0, paging off). */
export function runBlob(hv: Hypervisor, blob: Uint8Array, program: Uint8Array, n: number): BatchResult {
  const vm = hv.createVm(vmConfig());
  const ram = vm.ram[0]!.bytes;
  ram.set(blob, BLOB);
  const vcpu = vm.createVcpu(0);
  const s = vcpu.getSregs();
  const seg = (selector: number, type: number) => ({ base: 0n, limit: 0xffffffff, selector, type, present: true, dpl: 0, db: true, s: true, l: false, g: true, avl: false, unusable: false });
  vcpu.setSregs({ ...s, cs: seg(0x08, 11), ss: seg(0x10, 3), ds: seg(0x10, 3), es: seg(0x10, 3), fs: seg(0x10, 3), gs: seg(0x10, 3), cr0: 0x11n, cr4: 0n });
  vcpu.setRegs({ ...vcpu.getRegs(), rip: BigInt(BLOB + 0x100), rsp: 0x9000n, rflags: 0x2n, rax: 0x2badb002n });
  let exits = 0;
  for (;;) {
    const r = vcpu.run();
    exits++;
    if (r === ExitReason.Io && vcpu.exit.address === EXIT_PORT) continue; // the handler resumes by itself
    if (r === ExitReason.Io && vcpu.exit.address === DONE_PORT) break;
    const res = split(new Uint8Array(n * (REC + DATA_SIZE) + 0x10000 + TAIL), n);
    res.error = `unexpected exit ${r} (0x${vcpu.exit.address.toString(16)} ${vcpu.exit.detail}) at rip 0x${vcpu.getRegs().rip.toString(16)}`;
    vm.destroy();
    return res;
  }
  const res: BatchResult = {
    records: ram.slice(RESULTS, RESULTS + n * REC), data: ram.slice(DATA, DATA + n * DATA_SIZE),
    seg33: ram.slice(SEG_BASE_33, SEG_BASE_33 + 0x10000), exits,
    system: Uint8Array.from([...ram.subarray(SYS_DUMP[0], SYS_DUMP[0] + SYS_DUMP[1]), ...ram.subarray(PT_DUMP[0], PT_DUMP[0] + PT_DUMP[1])]),
  };
  vm.destroy();
  relEips(res, program, n);
  return res;
}
