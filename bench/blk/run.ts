// bench/blk: guest `dd` sequential read and write (O_DIRECT, 1 MiB blocks) on a virtio-blk disk,
// tsvmm's interpreter backend against QEMU TCG, same i386 kernel (vmlinux) + raw initramfs, same
// raw image size, same kernel command line. Prints MiB/s (medians) and the tsvmm/QEMU ratios.
//
//   node --import tsx bench/blk/run.ts [--runs 3] [--mib 128]
//
// Each run boots the guest once with the image's `tsvmm_run=` hook (firmware/images/recipe/init):
// it times a full read of /dev/vda, then a full write of it, and powers off. The guest's BusyBox
// dd does not print a rate line here, and its `date` has no %N, so the timing is BusyBox `time`
// around each dd (10 ms resolution: hence a default image of 128 MiB, so even QEMU's pass spans
// many ticks). Runs alternate between tsvmm and QEMU so both see the same machine load.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ensureImages } from '../../firmware/images/build.ts';
import { TSVMM_BIN } from '../../test/support/tsvmm-process.ts';
import { DEFAULT_CMDLINE } from '../../cli/run.ts';
import { INTERP } from '../../hypervisors/interp/descriptor.ts';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '3' }, mib: { type: 'string', default: '128' } } });
const runs = Number(values.runs);
const mib = Number(values.mib);
if (!Number.isInteger(runs) || runs < 1) throw new Error(`--runs ${values.runs}: give a whole number of runs, at least 1`);
if (!Number.isInteger(mib) || mib < 1 || mib > 1024) throw new Error(`--mib ${values.mib}: give a whole number of MiB, 1 to 1024`);

const images = (await ensureImages({ archs: ['i386'], onProgress: (l) => process.stderr.write(`${l}\n`) })).i386;
const MEM = '256M';
// No double quotes inside: the kernel command line ends the value at the next one.
const GUEST_CMD =
  `echo BLK-READ; time dd if=/dev/vda of=/dev/null bs=1M iflag=direct; ` +
  `echo BLK-WRITE; time dd if=/dev/zero of=/dev/vda bs=1M count=${mib} oflag=direct conv=fsync`;
const runWord = `tsvmm_run="${GUEST_CMD}"`;
// What `tsvmm run` itself puts on the command line for the interpreter; QEMU gets the same words.
const qemuCmdline = [DEFAULT_CMDLINE, ...INTERP.kernelArgs, runWord].join(' ');

const dir = mkdtempSync(join(tmpdir(), 'tsvmm-bench-blk-'));
const img = join(dir, 'disk.img');
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

interface Pass { read: number; write: number }

/** Runs a VM to completion and returns the guest's dd times (seconds) parsed from its console. */
function runGuest(name: string, cmd: string, args: string[]): Promise<Pass> {
  // A fresh sparse image for every run, so both sides read and write the same thing.
  writeFileSync(img, '');
  truncateSync(img, mib * 1024 * 1024);
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), 600_000);
    child.stdout.on('data', (d: Buffer) => { out += d.toString('latin1'); });
    child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    child.on('close', (code) => {
      clearTimeout(timer);
      const text = out.replace(/\r/g, '');
      const section = (marker: string): number | undefined => {
        const at = text.indexOf(`${marker}\n`);
        if (at < 0) return undefined;
        const m = /^real\s+(\d+)m\s*([\d.]+)s$/m.exec(text.slice(at));
        const copied = new RegExp(`^${mib}\\+0 records out$`, 'm').test(text.slice(at));
        return m && copied ? Number(m[1]) * 60 + Number(m[2]) : undefined;
      };
      const read = section('BLK-READ');
      const write = section('BLK-WRITE');
      if (read === undefined || write === undefined || !/TSVMM-EXIT 0/.test(text)) {
        reject(new Error(`${name} (exit ${code}): no complete dd read/write timings in its output\n` +
          `${text.slice(-2000)}\n${err.slice(-1500)}`));
      } else if (read <= 0 || write <= 0) {
        reject(new Error(`${name}: a dd took 0.00 s by the guest's 10 ms clock: raise --mib`));
      } else resolve({ read, write });
    });
  });
}

const tsvmmArgs = [TSVMM_BIN, 'run', '--backend', 'interp', '--mem', MEM, '--kernel', images.vmlinux, '--initrd', images.initramfs,
  '--disk', img, '--append', runWord];
const qemuArgs = ['-M', 'microvm,acpi=off', '-cpu', 'qemu32,-apic', '-m', MEM, '-nodefaults', '-no-user-config', '-nographic',
  '-serial', 'stdio', '-no-reboot', '-kernel', images.vmlinux, '-initrd', images.initramfs, '-append', qemuCmdline,
  '-drive', `id=d0,file=${img},format=raw,if=none`, '-device', 'virtio-blk-device,drive=d0'];

const median = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2; };
const rate = (seconds: number): number => mib / seconds;
const fmt = (xs: number[]): string => xs.map((x) => x.toFixed(1)).join(' ');

console.log(`i386 guest: ${images.vmlinux} + ${images.initramfs}; raw image ${mib} MiB; guest RAM ${MEM}`);
console.log(`guest command: ${GUEST_CMD}`);
const t = { read: [] as number[], write: [] as number[] };
const q = { read: [] as number[], write: [] as number[] };
for (let i = 0; i < runs; i++) {
  const a = await runGuest('tsvmm', process.execPath, tsvmmArgs);
  const b = await runGuest('qemu', 'qemu-system-i386', qemuArgs);
  t.read.push(rate(a.read)); t.write.push(rate(a.write));
  q.read.push(rate(b.read)); q.write.push(rate(b.write));
  console.log(`run ${i + 1}/${runs}: tsvmm read ${a.read.toFixed(2)} s write ${a.write.toFixed(2)} s; ` +
    `qemu read ${b.read.toFixed(2)} s write ${b.write.toFixed(2)} s`);
}

console.log('');
for (const dirn of ['read', 'write'] as const) {
  const mt = median(t[dirn]), mq = median(q[dirn]);
  console.log(`${dirn.padEnd(5)}: tsvmm interpreter median ${mt.toFixed(1)} MiB/s (${fmt(t[dirn])}); ` +
    `QEMU TCG median ${mq.toFixed(1)} MiB/s (${fmt(q[dirn])}); tsvmm/QEMU ${(mt / mq).toFixed(2)}x`);
}
