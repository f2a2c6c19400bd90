// A web-console viewer in its own process, as a browser tab would be, for bench/web/run.ts.
//   client.ts throughput WS_URL BYTES   counts and hashes console bytes until BYTES arrived
//   client.ts echo WS_URL COUNT WARMUP  types COUNT+WARMUP keys, one at a time, timing each echo
// Prints "ready" once attached, then one JSON line with the result.
import { createHash } from 'node:crypto';
import WebSocket from 'ws';

const [mode, url, a, b] = process.argv.slice(2);
if (!url || (mode !== 'throughput' && mode !== 'echo')) {
  process.stderr.write('usage: client.ts throughput|echo WS_URL N [WARMUP]\n');
  process.exit(2);
}

const ws = new WebSocket(url);
let onBytes: (data: Buffer) => void = () => {};
// The scrollback replay comes first; the measurement starts after it.
let replay = -1;
ws.on('message', (data: Buffer, isBinary) => {
  if (isBinary) {
    if (replay > 0) {
      replay -= data.length;
      if (replay === 0) process.stdout.write('ready\n');
      return;
    }
    return onBytes(data);
  }
  const m = JSON.parse(data.toString()) as { type: string; t?: number; scrollback?: number };
  if (m.type === 'ping') ws.send(JSON.stringify({ type: 'pong', t: m.t }));
  if (m.type === 'console') {
    replay = m.scrollback!;
    if (replay === 0) process.stdout.write('ready\n');
  }
});
let got = 0;
ws.on('close', (code, reason) => {
  // A throughput viewer that the server dropped reports how far it got.
  if (mode === 'throughput') {
    process.stdout.write(`${JSON.stringify({ bytes: got, dropped: `${code} ${reason.toString()}` })}\n`);
    process.exit(0);
  }
  process.stderr.write(`closed ${code} ${reason.toString()}\n`);
  process.exit(1);
});

if (mode === 'throughput') {
  const want = Number(a);
  const hash = createHash('sha256');
  let first = 0;
  onBytes = (data) => {
    if (got === 0) first = performance.now();
    hash.update(data);
    got += data.length;
    if (got >= want) {
      process.stdout.write(`${JSON.stringify({ bytes: got, sha256: hash.digest('hex'), ms: performance.now() - first })}\n`);
      process.exit(0);
    }
  };
} else {
  const count = Number(a);
  const warmup = Number(b ?? 20);
  const samples: number[] = [];
  let sentAt = 0;
  let i = 0;
  // Typing starts when the parent says so on stdin (after it measured its own baseline).
  process.stdin.once('data', () => type());
  function type(): void {
    sentAt = performance.now();
    ws.send(Buffer.from([0x61 + (i % 26)]));
  }
  onBytes = (data) => {
    // The key's echo: a pty echoes exactly that byte; a guest's line editor may add more.
    if (!data.includes(0x61 + (i % 26))) return;
    if (i >= warmup) samples.push(performance.now() - sentAt);
    i++;
    if (i < count + warmup) type();
    else {
      process.stdout.write(`${JSON.stringify({ samples })}\n`);
      process.exit(0);
    }
  };
}
