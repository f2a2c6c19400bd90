// bench/interp-boot: wall time from process start to the guest's readiness marker for the i386
// guest, on tsvmm's interpreter backend and on QEMU TCG, with the same kernel, initramfs and
// kernel command line; plus the guest instructions executed to the marker and the MIPS they imply.
//
//   node --import tsx bench/interp-boot/bench.ts [--runs 5] [--forms]
//
// Runs alternate between tsvmm and QEMU so both see the same machine load. --forms also boots
// each kernel/initramfs form once in-process (deterministic, so instruction counts are exact) to
// show which form is fastest on the interpreter.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { ensureImages, READY_MARKER } from '../../firmware/images/build.ts';
import { TSVMM_BIN } from '../../test/support/tsvmm-process.ts';
import { DEFAULT_CMDLINE } from '../../cli/run.ts';
import { INTERP } from '../../hypervisors/interp/descriptor.ts';
import { bootToMarker } from './guest-run.ts';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '5' }, forms: { type: 'boolean', default: false } } });
const runs = Number(values.runs);
if (!Number.isInteger(runs) || runs < 1) throw new Error(`--runs ${values.runs}: give a whole number of runs, at least 1`);

const images = (await ensureImages({ archs: ['i386'], onProgress: (l) => process.stderr.write(`${l}\n`) })).i386;
// What `tsvmm run` itself puts on the command line for this backend; QEMU gets the same words.
const cmdline = [DEFAULT_CMDLINE, ...INTERP.kernelArgs].join(' ');
const MEM = '256M';

/** Spawns `cmd`, resolves with the seconds until `marker` appears on its stdout, then kills it. */
function timeToMarker(cmd: string, args: string[], marker: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let done = false;
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString('latin1');
      if (!done && out.includes(marker)) {
        done = true;
        resolve((performance.now() - t0) / 1000);
        child.kill('SIGKILL');
      }
    });
    child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    child.on('close', (code) => {
      if (!done) reject(new Error(`${cmd} exited (${code}) before printing ${marker}\n${out.slice(-1500)}\n${err.slice(-1500)}`));
    });
  });
}

const tsvmmArgs = [TSVMM_BIN, 'run', '--backend', 'interp', '--mem', MEM, '--kernel', images.vmlinux, '--initrd', images.initramfs,
  '--cmdline', DEFAULT_CMDLINE];
const qemuArgs = ['-M', 'microvm,acpi=off', '-cpu', 'qemu32,-apic', '-m', MEM, '-nodefaults', '-no-user-config', '-nographic',
  '-serial', 'stdio', '-kernel', images.vmlinux, '-initrd', images.initramfs, '-append', cmdline];

const median = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2; };
const fmt = (xs: number[]): string => xs.map((x) => x.toFixed(2)).join(' ');

console.log(`i386 guest: ${images.vmlinux} + ${images.initramfs}`);
console.log(`command line: ${cmdline}`);
const tsvmm: number[] = [];
const qemu: number[] = [];
for (let i = 0; i < runs; i++) {
  tsvmm.push(await timeToMarker(process.execPath, tsvmmArgs, READY_MARKER));
  qemu.push(await timeToMarker('qemu-system-i386', qemuArgs, READY_MARKER));
  console.log(`run ${i + 1}/${runs}: tsvmm ${tsvmm[i]!.toFixed(2)} s, qemu ${qemu[i]!.toFixed(2)} s`);
}

// Instructions to the marker: counted in-process on the same machine tsvmm builds (real-time
// guest clock, as `tsvmm run`), which also gives the interpreter's speed without process start.
const kernel = new Uint8Array(readFileSync(images.vmlinux));
const initrd = new Uint8Array(readFileSync(images.initramfs));
const inProcess = bootToMarker({ kernel, initrd, cmdline, deterministic: false, marker: READY_MARKER });

const mt = median(tsvmm), mq = median(qemu);
console.log('');
console.log(`tsvmm interpreter, process start to ${READY_MARKER}: median ${mt.toFixed(2)} s  (${fmt(tsvmm)})`);
console.log(`QEMU TCG,          process start to ${READY_MARKER}: median ${mq.toFixed(2)} s  (${fmt(qemu)})`);
console.log(`ratio tsvmm / QEMU: ${(mt / mq).toFixed(2)}x (target: within 3x)`);
console.log(`guest instructions to the marker: ${(inProcess.instructions / 1e6).toFixed(1)} M; ` +
  `implied ${(inProcess.instructions / 1e6 / mt).toFixed(1)} MIPS over tsvmm's median wall time`);
console.log(`in-process boot (no process start-up): ${inProcess.seconds.toFixed(2)} s wall, ${inProcess.cpuSeconds.toFixed(2)} s CPU, ` +
  `${(inProcess.instructions / 1e6 / inProcess.seconds).toFixed(1)} MIPS`);

if (values.forms) {
  console.log('\nboot forms on the interpreter, in-process, deterministic guest clock:');
  const forms: [string, string, string][] = [
    ['vmlinux (PVH) + raw cpio', images.vmlinux, images.initramfs],
    ['vmlinux (PVH) + cpio.gz', images.vmlinux, images.initramfsGz],
    ['bzImage + raw cpio', images.bzImage, images.initramfs],
    ['bzImage + cpio.gz', images.bzImage, images.initramfsGz],
  ];
  for (const [name, k, r] of forms) {
    const b = bootToMarker({ kernel: new Uint8Array(readFileSync(k)), initrd: new Uint8Array(readFileSync(r)), cmdline, deterministic: true, marker: READY_MARKER });
    console.log(`  ${name.padEnd(26)} ${(b.instructions / 1e6).toFixed(1).padStart(7)} M instructions  ${b.seconds.toFixed(2).padStart(6)} s  ` +
      `${(b.instructions / 1e6 / b.seconds).toFixed(1)} MIPS`);
  }
}
