// Console throughput against the real VMM: the guest prints MiB of text lines on its console
// (timed inside the guest with `time`), with 0, 1 and 4 web viewers attached (each its own
// process, checking the payload byte for byte), the stdio terminal attached in every case.
//
//   npx tsx bench/web/vm-throughput.ts [--mib 32] [--runs 1] [-- tsvmm run options]
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { TsvmmProcess } from '../../test/support/tsvmm-process.ts';
import { wsUrl } from '../../test/web/support/ws-viewer.ts';

const { values, positionals } = parseArgs({
  options: { mib: { type: 'string', default: '32' }, runs: { type: 'string', default: '1' }, viewers: { type: 'string', default: '0,1,4' } },
  allowPositionals: true,
});
const BYTES = Number(values.mib) << 20;
const RUNS = Number(values.runs);
const BOOT_MS = Number(process.env.TSVMM_BENCH_BOOT_MS ?? 30 * 60_000);
const PROMPT = /\n# (\x1b\[6n)?$/;
// 63 characters and a newline; the guest's tty turns "\n" into "\r\n".
const LINE = 'tsvmm web console throughput: the quick brown fox jumps over it';
if (LINE.length !== 63 || BYTES % 64 !== 0) throw new Error('payload lines must be 64 bytes');
const expected = Buffer.from(`${LINE}\r\n`.repeat(BYTES / 64));
const expectedSha = createHash('sha256').update(expected).digest('hex');
// Markers are printed by arithmetic so the echoed command line does not contain them.
const COMMAND = `echo S$((1+1))T; time sh -c 'yes "${LINE}" | head -c ${BYTES}'; echo E$((1+2))D\r`;

const vmm = new TsvmmProcess(['run', '--web', '127.0.0.1:0', ...positionals]);
// A viewer process waiting on a dead VMM would wait forever: end the bench instead.
let finished = false;
void vmm.exited.then((e) => {
  if (finished) return;
  console.error(`tsvmm exited (${e.code}); stderr:\n${e.stderr.slice(-2000)}`);
  process.exit(1);
});

function viewer(url: string): { child: ChildProcess; ready: Promise<void>; result: Promise<{ sha256: string; bytes: number; frames?: number; dropped?: string }> } {
  const child = spawn(process.execPath, ['--import', 'tsx', new URL('./vm-viewer.ts', import.meta.url).pathname, url], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout! });
  let ready!: () => void;
  let result!: (r: { sha256: string; bytes: number; frames?: number; dropped?: string }) => void;
  const p = { ready: new Promise<void>((r) => (ready = r)), result: new Promise<{ sha256: string; bytes: number; frames?: number; dropped?: string }>((r) => (result = r)) };
  lines.on('line', (l) => (l === 'ready' ? ready() : result(JSON.parse(l))));
  return { child, ...p };
}

await vmm.waitUntil(() => /^tsvmm: web console at (http:\/\/\S+)$/m.test(vmm.stdout), 'print the web console URL', 120_000);
const url = /^tsvmm: web console at (http:\/\/\S+)$/m.exec(vmm.stdout)![1]!;
await vmm.waitUntil(() => PROMPT.test(vmm.stdout), 'show the guest shell prompt', BOOT_MS);
{
  // Kernel messages (e.g. "random: crng init done") must not land in the middle of the payload.
  const mark = vmm.stdout.length;
  vmm.child.stdin.write('dmesg -n 1\r');
  await vmm.waitUntil(() => PROMPT.test(vmm.stdout.slice(mark)), 'show a prompt after dmesg -n 1', 120_000);
}

const rows: { viewers: number; guestS: number; ok: number; note: string }[] = [];
for (const viewers of values.viewers.split(',').map(Number)) {
  for (let r = 0; r < RUNS; r++) {
    const vs = Array.from({ length: viewers }, () => viewer(wsUrl(url)));
    await Promise.all(vs.map((v) => v.ready));
    const mark = vmm.stdout.length;
    vmm.child.stdin.write(COMMAND);
    await vmm.waitUntil(() => PROMPT.test(vmm.stdout.slice(mark)) && vmm.stdout.includes('E3D', mark), 'finish the run', Number(process.env.TSVMM_BENCH_RUN_MS ?? 60 * 60_000));
    const tail = vmm.stdout.slice(mark);
    const m = /real\s+(\d+)m\s*([\d.]+)s/.exec(tail);
    if (!m) throw new Error(`no "real" time in the guest's output: ${tail.slice(-500)}`);
    const guestS = Number(m[1]) * 60 + Number(m[2]);
    // What the stdio terminal saw, as a check that the VMM itself lost nothing.
    const s = tail.indexOf('S2T\r\n') + 5;
    const stdioOk = Buffer.from(tail.slice(s, s + expected.length), 'latin1').equals(expected);
    if (!stdioOk) writeFileSync('/tmp/tsvmm-vm-throughput-stdio.txt', tail);
    const results = await Promise.all(vs.map((v) => v.result));
    const ok = results.filter((x) => x.sha256 === expectedSha).length;
    const dropped = results.filter((x) => x.dropped).map((x) => x.dropped);
    const frames = results.length ? `; ~${Math.round(results.reduce((a, x) => a + (x.frames ?? 0), 0) / results.length)} frames per viewer` : '';
    rows.push({ viewers, guestS, ok, note: `${stdioOk ? 'stdio complete' : 'STDIO INCOMPLETE'}${frames}${dropped.length ? `; dropped: ${dropped.join(', ')}` : ''}` });
    for (const v of vs) v.child.kill();
  }
}
finished = true;
vmm.child.kill('SIGTERM');

const base = rows.filter((r) => r.viewers === 0).reduce((a, r) => a + r.guestS, 0) / RUNS;
console.log(`\ntsvmm run --web ${positionals.join(' ')}: the guest prints ${BYTES >> 20} MiB (${BYTES / 64} lines) on ttyS0\n`);
console.log('| web viewers | guest time s (busybox time, real) | vs 0 viewers | viewers with the exact payload | notes |');
console.log('|---:|---:|---:|---|---|');
for (const r of rows) console.log(`| ${r.viewers} | ${r.guestS.toFixed(2)} | ${((r.guestS / base - 1) * 100).toFixed(1)}% | ${r.viewers ? `${r.ok}/${r.viewers}` : '—'} | ${r.note} |`);
