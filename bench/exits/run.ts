// bench/exits: the cost of a guest exit handled by tsvmm's TypeScript run loop, against the
// floor — a minimal C program driving KVM directly — on the same guest in the same run.
//
//   node --import tsx bench/exits/run.ts [--iterations N] [--rounds R]
//
// Workloads (guest in long mode at CPL3, N iterations each):
//   pio        OUT to a port handled by an in-process device: one exit per iteration
//   mmio       read of an MMIO register answered by a device: one exit per iteration
//   ioeventfd  OUT to a port registered as an ioeventfd: no exit at all
// tsvmm runs each workload twice: through the VMM's run loop (vmm/vcpu-loop.ts with an IoBus
// and devices: what `tsvmm run` does) and through the bare backend (a vcpu.run() loop), which
// separates the backend's cost from the device layer's. Rounds alternate the three; the table
// shows the median and the best of the per-round costs (on a shared 2-core host the best round
// is the least disturbed one). The ratio is the VMM loop's against the C floor.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { probeKvm } from '../../hypervisors/kvm/probe.ts';
import { startTsWorker } from '../../base/worker.ts';
import { WORKLOADS, type Workload } from './guest.ts';
import type { BenchReply, BenchRequest } from './worker.ts';

const { values } = parseArgs({
  options: { iterations: { type: 'string', default: '50000' }, rounds: { type: 'string', default: '5' } },
});
const iterations = Number(values.iterations);
const rounds = Number(values.rounds);
if (!Number.isSafeInteger(iterations) || iterations < 1 || !Number.isSafeInteger(rounds) || rounds < 1) {
  console.error('bench/exits: --iterations and --rounds take positive integers');
  process.exit(2);
}

const probe = probeKvm();
if (!probe.available) {
  console.error(`bench/exits needs KVM: ${probe.reason}`);
  process.exit(1);
}

const here = fileURLToPath(new URL('.', import.meta.url));
const buildDir = join(here, '..', 'build');
const floorBinary = join(buildDir, 'exits-floor');
mkdirSync(buildDir, { recursive: true });
execFileSync('cc', ['-O2', '-Wall', '-o', floorBinary, join(here, 'floor.c')], { stdio: 'inherit' });

const scratch = mkdtempSync(join(tmpdir(), 'tsvmm-bench-exits-'));
const worker = startTsWorker(new URL('./worker.ts', import.meta.url));

/** One measurement on the tsvmm side (the worker handles one request at a time). */
function ask(request: BenchRequest): Promise<BenchReply> {
  return new Promise((resolve, reject) => {
    worker.once('message', (m: { ok?: BenchReply; error?: string }) => (m.ok ? resolve(m.ok) : reject(new Error(m.error))));
    worker.postMessage(request);
  });
}

function floor(workload: Workload, imagePath: string): BenchReply {
  const [exits, seconds] = execFileSync(floorBinary, [imagePath, workload, String(iterations)], { encoding: 'utf8' }).trim().split(' ');
  return { exits: Number(exits), seconds: Number(seconds) };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const us = (r: BenchReply) => (r.seconds * 1e6) / iterations;

try {
  console.log(`bench/exits: ${iterations} iterations × ${rounds} rounds per workload, guest in long mode at CPL3`);
  console.log(`host: ${probe.reason}\n`);
  // Warm-up: let V8 optimise the run loop before anything is timed.
  for (const workload of WORKLOADS) {
    for (const loop of ['vmm', 'backend'] as const) await ask({ workload, loop, iterations: Math.min(iterations, 20000) });
  }

  const results = new Map<Workload, { tsvmm: number[]; backend: number[]; floor: number[] }>();
  for (const w of WORKLOADS) results.set(w, { tsvmm: [], backend: [], floor: [] });
  for (let round = 0; round < rounds; round++) {
    for (const workload of WORKLOADS) {
      const imagePath = join(scratch, `${workload}.img`);
      const t = await ask({ workload, loop: 'vmm', iterations, imagePath });
      const c = floor(workload, imagePath);
      const b = await ask({ workload, loop: 'backend', iterations });
      const expectedExits = workload === 'ioeventfd' ? 1 : iterations + 1;
      if (t.exits !== expectedExits || b.exits !== expectedExits || c.exits !== expectedExits) {
        throw new Error(`${workload}: expected ${expectedExits} exits, saw ${t.exits} (VMM loop), ${b.exits} (backend) and ${c.exits} (C floor)`);
      }
      results.get(workload)!.tsvmm.push(us(t));
      results.get(workload)!.backend.push(us(b));
      results.get(workload)!.floor.push(us(c));
    }
  }

  const label: Record<Workload, string> = {
    pio: 'port I/O exit (OUT)',
    mmio: 'MMIO read exit',
    ioeventfd: 'ioeventfd doorbell (no exit)',
  };
  const cell = (xs: number[]) => `${median(xs).toFixed(2)} / ${Math.min(...xs).toFixed(2)}`;
  console.log('µs per access, median / best round:\n');
  console.log('| workload | tsvmm (VMM run loop) | tsvmm (backend only) | C floor | ratio VMM loop / C (median / best) |');
  console.log('|---|---|---|---|---|');
  for (const workload of WORKLOADS) {
    const r = results.get(workload)!;
    const ratio = `${(median(r.tsvmm) / median(r.floor)).toFixed(2)}× / ${(Math.min(...r.tsvmm) / Math.min(...r.floor)).toFixed(2)}×`;
    console.log(`| ${label[workload]} | ${cell(r.tsvmm)} | ${cell(r.backend)} | ${cell(r.floor)} | ${ratio} |`);
  }
  console.log('\nper round (VMM loop / backend / C, µs):');
  for (const workload of WORKLOADS) {
    const r = results.get(workload)!;
    console.log(`  ${workload.padEnd(9)} ${r.tsvmm.map((t, i) => `${t.toFixed(1)}/${r.backend[i]!.toFixed(1)}/${r.floor[i]!.toFixed(1)}`).join('  ')}`);
  }
} finally {
  await worker.terminate();
  rmSync(scratch, { recursive: true, force: true });
}
