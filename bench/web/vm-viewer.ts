// One web-console viewer for bench/web/vm-throughput.ts: after the scrollback, collects the
// console until the guest's end marker and reports the SHA-256 of the payload between the
// markers ("S2T" and "E3D" lines, printed by shell arithmetic so the echoed command lacks them).
import { createHash } from 'node:crypto';
import WebSocket from 'ws';

const ws = new WebSocket(process.argv[2]!);
let replay = -1;
const chunks: Buffer[] = [];
let tail = '';
let size = 0;
ws.on('message', (data: Buffer, isBinary) => {
  if (!isBinary) {
    const m = JSON.parse(data.toString()) as { type: string; t?: number; scrollback?: number };
    if (m.type === 'ping') ws.send(JSON.stringify({ type: 'pong', t: m.t }));
    if (m.type === 'console') {
      replay = m.scrollback!;
      if (replay === 0) process.stdout.write('ready\n');
    }
    return;
  }
  if (replay > 0) {
    replay -= data.length;
    if (replay === 0) process.stdout.write('ready\n');
    return;
  }
  chunks.push(data);
  size += data.length;
  // The end marker arrives last, possibly split over several tiny frames.
  tail = (tail + data.toString('latin1')).slice(-16);
  if (tail.includes('E3D\r\n')) finish();
});
ws.on('close', (code, reason) => {
  process.stdout.write(`${JSON.stringify({ sha256: '', bytes: size, dropped: `${code} ${reason.toString()}` })}\n`);
  process.exit(0);
});

function finish(): void {
  const all = Buffer.concat(chunks).toString('latin1');
  const start = all.indexOf('S2T\r\n') + 5;
  const end = all.indexOf('real', start);
  // Payload: from after the start marker to the line before busybox time's report.
  const payload = Buffer.from(all.slice(start, all.lastIndexOf('\r\n', end) + 2), 'latin1');
  process.stdout.write(`${JSON.stringify({ sha256: createHash('sha256').update(payload).digest('hex'), bytes: payload.length, frames: chunks.length })}\n`);
  process.exit(0);
}
