// Keystroke-to-echo latency against the real VMM and its guest shell: the same guest, echo
// measured through tsvmm's stdio terminal (the peer: no web console in the path) and through the
// web console's WebSocket (a viewer in another process), in one run.
//
//   npx tsx bench/web/vm-echo.ts [--keys 200] [-- tsvmm run options]
//
// Boots the default guest with `tsvmm run --web 127.0.0.1:0`; under the interpreter that takes
// minutes (TSVMM_BENCH_BOOT_MS bounds it, default 30 min).
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { TsvmmProcess } from '../../test/support/tsvmm-process.ts';
import { wsUrl } from '../../test/web/support/ws-viewer.ts';

const { values, positionals } = parseArgs({ options: { keys: { type: 'string', default: '200' } }, allowPositionals: true });
const KEYS = Number(values.keys);
const WARMUP = 20;
const BOOT_MS = Number(process.env.TSVMM_BENCH_BOOT_MS ?? 30 * 60_000);
/** BusyBox ash's prompt; its line editor follows it with a cursor-position query (ESC [6n). */
const PROMPT = /\n# (\x1b\[6n)?$/;

const vmm = new TsvmmProcess(['run', '--web', '127.0.0.1:0', ...positionals]);
// A viewer process waiting on a dead VMM would wait forever: end the bench instead.
let finished = false;
void vmm.exited.then((e) => {
  if (finished) return;
  console.error(`tsvmm exited (${e.code}) during the benchmark; its output ended with:\n${e.stdout.slice(-2000)}`);
  process.exit(1);
});
vmm.child.stderr.pipe(process.stderr);

const t0 = performance.now();
await vmm.waitUntil(() => /^tsvmm: web console at (http:\/\/\S+)$/m.test(vmm.stdout), 'print the web console URL', 120_000);
const url = /^tsvmm: web console at (http:\/\/\S+)$/m.exec(vmm.stdout)![1]!;
await vmm.waitUntil(() => PROMPT.test(vmm.stdout), 'show the guest shell prompt', BOOT_MS);
const bootS = (performance.now() - t0) / 1000;

// The peer: echo through the stdio terminal (a pipe here).
const direct: number[] = [];
for (let i = 0; i < KEYS + WARMUP; i++) {
  const key = String.fromCharCode(0x61 + (i % 26));
  const from = vmm.stdout.length;
  const sent = performance.now();
  vmm.child.stdin.write(key);
  await vmm.waitUntil(() => vmm.stdout.indexOf(key, from) >= 0, `echo key ${i}`, 60_000);
  if (i >= WARMUP) direct.push(performance.now() - sent);
}
let mark = vmm.stdout.length;
vmm.child.stdin.write('\r'); // the typed word is run (not found) and a new prompt follows
await vmm.waitUntil(() => PROMPT.test(vmm.stdout.slice(mark)), 'show a new prompt', 60_000);

// Through the web console.
const client = spawn(process.execPath, ['--import', 'tsx', new URL('./client.ts', import.meta.url).pathname, 'echo', wsUrl(url), String(KEYS), String(WARMUP)], {
  stdio: ['pipe', 'pipe', 'inherit'],
});
const lines = createInterface({ input: client.stdout });
const result = new Promise<number[]>((resolve) =>
  lines.on('line', (line) => {
    if (line === 'ready') client.stdin.write('go\n');
    else resolve((JSON.parse(line) as { samples: number[] }).samples);
  }),
);
const web = await result;
mark = vmm.stdout.length;
vmm.child.stdin.write('\r');
await vmm.waitUntil(() => PROMPT.test(vmm.stdout.slice(mark)), 'show a new prompt', 60_000);
finished = true;
vmm.child.kill('SIGTERM');

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;
const mean = (xs: number[]) => xs.reduce((a, b) => a + b) / xs.length;
const f = (x: number) => x.toFixed(2);
console.log(`tsvmm run --web ${positionals.join(' ')}: guest prompt after ${bootS.toFixed(0)} s; ${KEYS} keys after ${WARMUP} warm-up, one at a time\n`);
console.log('| path | p50 ms | p99 ms | mean ms |');
console.log('|---|---:|---:|---:|');
console.log(`| stdio terminal (pipe) — the guest's own echo | ${f(pct(direct, 50))} | ${f(pct(direct, 99))} | ${f(mean(direct))} |`);
console.log(`| web console WebSocket (viewer in another process) | ${f(pct(web, 50))} | ${f(pct(web, 99))} | ${f(mean(web))} |`);
console.log(`\nWebSocket adds ${f(pct(web, 50) - pct(direct, 50))} ms at p50 (target ≤ 5 ms).`);
