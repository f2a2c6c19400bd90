// The stand-in guest for bench/web: a separate process printing BYTES of console-like text
// lines to stdout, as fast as the reader takes them, or paced to RATE MiB/s (a guest console is
// rarely faster than a few MiB/s). Deterministic, so every viewer's copy can be checked. When
// done it prints {"ms": …} on stderr: its own time from first write until the reader had
// everything, which excludes process start-up.
//   producer.ts BYTES [RATE_MIB_PER_S]
const total = Number(process.argv[2]);
const rate = Number(process.argv[3] ?? 0) * (1 << 20);

const CHUNK = 64 << 10;
const chunk = Buffer.alloc(CHUNK);
let n = 0;
function fill(): void {
  let at = 0;
  while (at < CHUNK) at += chunk.write(`[${String(n++).padStart(9, '0')}] the quick brown fox jumps over the lazy dog; tsvmm console line\r\n`, at);
}

const start = performance.now();
let sent = 0;
async function run(): Promise<void> {
  while (sent < total) {
    fill();
    const part = chunk.subarray(0, Math.min(CHUNK, total - sent));
    sent += part.length;
    if (!process.stdout.write(part)) await new Promise((r) => process.stdout.once('drain', r));
    if (rate > 0) {
      const due = start + (sent / rate) * 1000;
      const wait = due - performance.now();
      if (wait > 1) await new Promise((r) => setTimeout(r, wait)); // pacing, not synchronisation
    }
  }
}
await run();
process.stdout.end(() => process.stderr.write(`${JSON.stringify({ ms: performance.now() - start })}\n`));
