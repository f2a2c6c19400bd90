// Web console benchmark: keystroke-to-echo latency through the WebSocket against the echo path
// without it, and console throughput with 0, 1 and 4 viewers (each its own process, like browser
// tabs) — everything delivered and verified, and what the viewers cost the producer.
//
// Until tsvmm boots a guest, the "guest" is a real host process: an interactive sh on a pty
// (via script(1)) for echo, and producer.ts for bulk output (unpaced, then paced to --rate MiB/s),
// fed through a real ConsoleHub.
//
//   npx tsx bench/web/run.ts [--keys 200] [--mib 32] [--runs 3] [--rate 16]
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { cpus } from 'node:os';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { ConsoleHub } from '../../vmm/console-hub.ts';
import { CloseCode } from '../../web/protocol.ts';
import { startWebConsole } from '../../web/server.ts';
import { HostShell, PROMPT } from '../../test/web/support/host-shell.ts';
import { wsUrl } from '../../test/web/support/ws-viewer.ts';

const { values } = parseArgs({
  options: {
    keys: { type: 'string', default: '200' },
    mib: { type: 'string', default: '32' },
    runs: { type: 'string', default: '3' },
    rate: { type: 'string', default: '16' },
  },
});
const KEYS = Number(values.keys);
const WARMUP = 20;
const BYTES = Number(values.mib) << 20;
const RUNS = Number(values.runs);
/** MiB/s of the paced producer: a fast guest console. */
const RATE = Number(values.rate);
const CLIENT = new URL('./client.ts', import.meta.url).pathname;
const PRODUCER = new URL('./producer.ts', import.meta.url).pathname;

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}
const f2 = (x: number) => x.toFixed(2);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

function client(args: string[], nice = false): { child: ChildProcess; ready: Promise<void>; result: Promise<unknown> } {
  const argv = [process.execPath, '--import', 'tsx', CLIENT, ...args];
  // Niced viewers yield the CPU to the producer and the VMM, separating their own cost from the VMM's.
  const child = nice ? spawn('nice', ['-n', '19', ...argv], { stdio: ['pipe', 'pipe', 'inherit'] }) : spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout! });
  let ready!: () => void;
  let result!: (v: unknown) => void;
  const p = { ready: new Promise<void>((r) => (ready = r)), result: new Promise<unknown>((r) => (result = r)) };
  lines.on('line', (line) => (line === 'ready' ? ready() : result(JSON.parse(line))));
  child.once('exit', (code) => {
    if (code !== 0) throw new Error(`bench client ${args[0]} exited with ${code}`);
  });
  return { child, ...p };
}

async function echoLatency(): Promise<void> {
  const shell = new HostShell();
  await shell.waitFor(PROMPT);
  // Baseline: the same keystrokes straight into the hub, echo seen on the hub.
  let echoed: (() => void) | undefined;
  const off = shell.hub.onOutput(() => echoed?.());
  const direct: number[] = [];
  for (let i = 0; i < KEYS + WARMUP; i++) {
    const t0 = performance.now();
    const got = new Promise<void>((r) => (echoed = r));
    shell.hub.input('ttyS0', Buffer.from([0x61 + (i % 26)]));
    await got;
    if (i >= WARMUP) direct.push(performance.now() - t0);
  }
  off();
  const mark = shell.output.length;
  shell.hub.input('ttyS0', Buffer.from([0x15])); // Ctrl-U: empty the line again
  await shell.waitFor('\b \b'.repeat(KEYS + WARMUP), mark);
  const web = await startWebConsole({ hub: shell.hub });
  const c = client(['echo', wsUrl(web.url), String(KEYS), String(WARMUP)]);
  await c.ready;
  await new Promise((r) => setImmediate(r));
  c.child.stdin!.write('go\n');
  const { samples } = (await c.result) as { samples: number[] };
  await web.close();
  await shell.close();
  const d = direct.sort((a, b) => a - b);
  const w = samples.sort((a, b) => a - b);
  console.log(`\n### Keystroke-to-echo latency (${KEYS} keys after ${WARMUP} warm-up, one at a time)\n`);
  console.log('| path | p50 ms | p99 ms | mean ms |');
  console.log('|---|---:|---:|---:|');
  console.log(`| hub directly (the "guest's own echo": sh on a pty) | ${f2(pct(d, 50))} | ${f2(pct(d, 99))} | ${f2(d.reduce((a, b) => a + b) / d.length)} |`);
  console.log(`| through the WebSocket (viewer in another process) | ${f2(pct(w, 50))} | ${f2(pct(w, 99))} | ${f2(w.reduce((a, b) => a + b) / w.length)} |`);
  console.log(`\nWebSocket adds ${f2(pct(w, 50) - pct(d, 50))} ms at p50 and ${f2(pct(w, 99) - pct(d, 99))} ms at p99 (target: p50 ≤ 5 ms on top of the guest's echo).`);
}

function producer(rate: number): ChildProcess {
  return spawn(process.execPath, ['--import', 'tsx', PRODUCER, String(BYTES), String(rate)], { stdio: ['ignore', 'pipe', 'pipe'] });
}

async function expectedHash(): Promise<string> {
  const p = producer(0);
  const h = createHash('sha256');
  p.stdout!.on('data', (c: Buffer) => h.update(c));
  await once(p, 'close');
  return h.digest('hex');
}

interface ThroughputRun {
  producerMs: number;
  cpuMs: number;
  deliveredMs: number;
  complete: number;
  /** MiB received by each viewer dropped as too slow. */
  dropped: number[];
}

async function throughputRun(viewers: number, rate: number, sha: string, nice: boolean): Promise<ThroughputRun> {
  const hub = new ConsoleHub('bench', { input() {}, power() {} });
  const web = await startWebConsole({ hub });
  const clients = Array.from({ length: viewers }, () => client(['throughput', wsUrl(web.url), String(BYTES)], nice));
  await Promise.all(clients.map((c) => c.ready));
  const p = producer(rate);
  let report = '';
  p.stderr!.on('data', (c: Buffer) => (report += c.toString()));
  let got = 0;
  let cpu0 = process.cpuUsage();
  let t0 = 0;
  p.stdout!.on('data', (chunk: Buffer) => {
    if (got === 0) {
      // Measure from the first byte: the producer's start-up is not what is being measured.
      cpu0 = process.cpuUsage();
      t0 = performance.now();
    }
    got += chunk.length;
    hub.output('ttyS0', chunk);
  });
  await once(p, 'close');
  const producerMs = (JSON.parse(report.trim().split('\n').pop()!) as { ms: number }).ms;
  const results = (await Promise.all(clients.map((c) => c.result))) as { bytes: number; sha256?: string; dropped?: string }[];
  const deliveredMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  await web.close();
  if (got !== BYTES) throw new Error(`producer wrote ${got} bytes, expected ${BYTES}`);
  const dropped: number[] = [];
  let complete = 0;
  for (const r of results) {
    if (r.dropped !== undefined) {
      if (!r.dropped.startsWith(`${CloseCode.slowViewer} `)) throw new Error(`a viewer was dropped for another reason: ${r.dropped}`);
      dropped.push(r.bytes / (1 << 20));
    }
    else if (r.bytes === BYTES && r.sha256 === sha) complete++;
    else throw new Error(`a viewer received wrong data: ${r.bytes} bytes, sha256 ${r.sha256}`);
  }
  return { producerMs, cpuMs: (cpu.user + cpu.system) / 1000, deliveredMs, complete, dropped };
}

async function throughput(rate: number, sha: string, nice = false): Promise<void> {
  const rows: [number, ThroughputRun[]][] = [];
  for (const viewers of [0, 1, 4]) {
    const runs: ThroughputRun[] = [];
    for (let r = 0; r < RUNS; r++) runs.push(await throughputRun(viewers, rate, sha, nice));
    rows.push([viewers, runs]);
  }
  const base = median(rows[0]![1].map((r) => r.producerMs));
  const baseCpu = median(rows[0]![1].map((r) => r.cpuMs));
  const pace = (rate > 0 ? `paced to ${rate} MiB/s` : 'unpaced: as fast as the VMM reads') + (nice ? ', viewers at nice 19' : '');
  console.log(`\n### Console throughput: ${BYTES >> 20} MiB, producer ${pace} (median of ${RUNS} runs)\n`);
  console.log('| viewers | producer time ms | vs 0 viewers | VMM main-thread CPU ms | extra CPU per MiB | all delivered ms | viewers complete (SHA-256 checked) |');
  console.log('|---:|---:|---:|---:|---:|---:|---|');
  for (const [v, runs] of rows) {
    const ms = median(runs.map((r) => r.producerMs));
    const cpu = median(runs.map((r) => r.cpuMs));
    const complete = runs.reduce((a, r) => a + r.complete, 0);
    const drops = runs.flatMap((r) => r.dropped);
    const delivered = v === 0 ? '—' : median(runs.map((r) => r.deliveredMs)).toFixed(0);
    const extra = v === 0 ? '—' : `${((cpu - baseCpu) / (BYTES / (1 << 20))).toFixed(2)} ms`;
    const range = drops.length ? `${Math.min(...drops).toFixed(0)}–${Math.max(...drops).toFixed(0)} MiB` : '';
    const status = v === 0 ? '—' : `${complete}/${v * runs.length}${drops.length ? `; ${drops.length} dropped as too slow (8 MiB queued) after ${range}` : ''}`;
    console.log(`| ${v} | ${ms.toFixed(0)} | ${((ms / base - 1) * 100).toFixed(1)}% | ${cpu.toFixed(0)} | ${extra} | ${delivered} | ${status} |`);
  }
}

console.log(`bench/web on ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, node ${process.version}`);
await echoLatency();
const sha = await expectedHash();
await throughput(0, sha);
await throughput(0, sha, true);
await throughput(RATE, sha);
