// Interpreter speed in guest instructions per second, against the real CPU (KVM, CPL3) as the
// ceiling, on three loops: (a) integer compute, (b) memory-heavy with paging on, (c) REP MOVSD
// copy. Each interpreter measurement runs in a fresh Node process so "cold" really is cold:
// cold = instructions retired in the first second of guest execution, warm = the rate over
// the following seconds.
//
//   npx tsx bench/interp-mips/bench.ts            (all, prints a table)
//   npx tsx bench/interp-mips/bench.ts --one a    (one interpreter measurement, JSON)

import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { ExitReason, type Hypervisor } from '../../hypervisors/backend.ts';
import { openInterp } from '../../hypervisors/interp/index.ts';
import { assemble } from '../../test/interp/asm.ts';
import { CODE, enterCpl3, EXIT_PORT, makeMachine, PAGE_NP } from '../../test/interp/guest.ts';

/** Each loop runs `INNER` iterations of its body, then OUT 0xe1 (an exit that lets us read the clock). */
const INNER = 200_000;

interface Workload { name: string; body: string; perIter: number; setup?: string }

const WORKLOADS: Record<string, Workload> = {
  a: {
    name: 'integer compute loop',
    // 8 instructions per iteration: ALU, shifts, LEA, compare-and-branch.
    body: `
1: add %ecx, %eax
   xor %edx, %eax
   lea 7(%eax,%ebx,2), %edx
   shl $3, %ebx
   or %edx, %ebx
   sub $1, %esi
   cmp $0, %ecx
   loop 1b`,
    perIter: 8,
  },
  b: {
    name: 'memory-heavy loop, paging on',
    // Walks 1 MiB at a 4 KiB + 4 stride (a new page almost every access): load, add, store.
    body: `
1: mov (%edi), %eax
   add %ecx, %eax
   mov %eax, (%edi)
   add $4100, %edi
   and $0xfffff, %edi
   or $0x800000, %edi
   loop 1b`,
    setup: 'mov $0x800000, %edi',
    perIter: 7,
  },
  c: {
    name: 'REP MOVSD copy (64 KiB blocks)',
    body: `
1: mov $0x800000, %esi
   mov $0x900000, %edi
   push %ecx
   mov $16384, %ecx
   rep movsl
   pop %ecx
   loop 1b`,
    // REP MOVSD counts as one instruction per element (as the CPU retires it: one per iteration).
    perIter: 6 + 16384,
  },
};

function program(w: Workload, iters: number): string {
  return `${w.setup ?? ''}
outer:
  mov $${iters}, %ecx
  ${w.body}
  out %al, $0xe1
  jmp outer`;
}

/** Iterations per OUT for each workload (so one OUT ~ a few million instructions). */
function itersFor(w: Workload): number { return Math.max(1, Math.floor(INNER * 8 / w.perIter)); }

/**
 * MIPS over wall time, and over the process's CPU time (user + system, all threads): on a
 * shared, oversubscribed host the second says what the interpreter does per core-second.
 */
interface InterpResult { coldMips: number; warmMips: number; coldCpuMips: number; warmCpuMips: number }

/** Runs in a child process: guest instructions over the first second and then 3 more seconds. */
function measureInterp(key: string): InterpResult {
  const w = WORKLOADS[key]!;
  const m = makeMachine(openInterp(), assemble(program(w, itersFor(w)), CODE));
  enterCpl3(m.vcpu, CODE, { paging: true });
  const regs = m.vcpu.getRegs();
  m.vcpu.setRegs({ ...regs, rflags: 0x3002n }); // IOPL 3: OUT from CPL3 exits to us
  // Instructions are counted as the CPU retires them (each REP iteration is one), from the
  // loop structure: every OUT ends `iters` iterations of `perIter` instructions.
  const perOut = itersFor(w) * w.perIter;
  const cpuMs = (): number => { const u = process.cpuUsage(); return (u.user + u.system) / 1000; };
  const t0 = performance.now(), c0 = cpuMs();
  let outs = 0, coldOuts = -1, tCold = 0, cCold = 0;
  for (;;) {
    const r = m.vcpu.run();
    if (r !== ExitReason.Io) throw new Error(`unexpected exit ${r}: ${m.vcpu.exit.detail}`);
    outs++;
    const t = performance.now() - t0;
    if (coldOuts < 0 && t >= 1000) { coldOuts = outs; tCold = t; cCold = cpuMs() - c0; }
    if (t >= 4000) {
      const c = cpuMs() - c0;
      return {
        coldMips: (coldOuts * perOut) / tCold / 1000, warmMips: ((outs - coldOuts) * perOut) / (t - tCold) / 1000,
        coldCpuMips: (coldOuts * perOut) / cCold / 1000, warmCpuMips: ((outs - coldOuts) * perOut) / (c - cCold) / 1000,
      };
    }
  }
}

/** The same loop at CPL3 on KVM. On this project's hosts only 64-bit CPL3 code runs natively, so the ceiling runs the 64-bit assembly of the same source. */
async function measureKvm(key: string): Promise<number | string> {
  let hv: Hypervisor;
  try {
    const { openKvm } = await import('../../hypervisors/kvm/kvm.ts');
    hv = openKvm();
  } catch (e) { return `skipped (${(e as Error).message.split('\n')[0]})`; }
  const w = WORKLOADS[key]!;
  const iters = itersFor(w) * 20;
  // Port I/O from CPL3 faults under this host's KVM even with IOPL 3, so each round ends with a
  // page fault instead (the handler exits to us) and the next round re-enters at CPL3.
  const src = program(w, iters).replace(/push %ecx/g, 'push %rcx').replace(/pop %ecx/g, 'pop %rcx')
    .replace('out %al, $0xe1', `mov ${PAGE_NP}, %ebx`);
  const m = makeMachine(hv, assemble(src, CODE, 64));
  const round = (): number => { enterCpl3(m.vcpu, CODE, { paging: true, long: true }); return m.vcpu.run(); };
  round(); // warm-up
  const t0 = performance.now();
  const rounds = 5;
  for (let k = 0; k < rounds; k++) {
    const r = round();
    if (r !== ExitReason.Io || m.vcpu.exit.address !== EXIT_PORT) return `unexpected exit ${r}: ${m.vcpu.exit.detail}`;
  }
  const t = performance.now() - t0;
  m.vm.destroy();
  return (rounds * iters * w.perIter) / t / 1000;
}

async function main(): Promise<void> {
  const one = process.argv.indexOf('--one');
  if (one > 0) { console.log(JSON.stringify(measureInterp(process.argv[one + 1]!))); return; }
  const self = fileURLToPath(import.meta.url);
  const os = await import('node:os');
  console.log(`host load average ${os.loadavg().map((x) => x.toFixed(1)).join(' ')} on ${os.cpus().length} CPUs\n`);
  console.log('| workload | interp cold (first s) MIPS | interp warm MIPS | per CPU-second: cold / warm | KVM CPL3 MIPS (ceiling) | warm / ceiling |');
  console.log('|---|---|---|---|---|---|');
  for (const key of Object.keys(WORKLOADS)) {
    const out = execFileSync(process.execPath, [...process.execArgv, self, '--one', key], { encoding: 'utf8' });
    const r = JSON.parse(out.trim().split('\n').pop()!) as InterpResult;
    const k = await measureKvm(key);
    const ratio = typeof k === 'number' ? `1/${(k / r.warmMips).toFixed(0)}` : '-';
    console.log(`| (${key}) ${WORKLOADS[key]!.name} | ${r.coldMips.toFixed(1)} | ${r.warmMips.toFixed(1)} | ${r.coldCpuMips.toFixed(1)} / ${r.warmCpuMips.toFixed(1)} | ${typeof k === 'number' ? k.toFixed(0) : k} | ${ratio} |`);
  }
}

void main();
