// A viewer that stops reading must not hold up the VM or other viewers: the server bounds what it
// queues for that viewer and then drops it, with the reason in the close frame. Real clients over
// real sockets; the slow one simply stops reading its socket (ws pause()), as a frozen tab would.
import { createHash } from 'node:crypto';
import { afterEach, expect, test } from 'vitest';
import { ConsoleHub } from '../../vmm/console-hub.ts';
import { CloseCode } from '../../web/protocol.ts';
import { startWebConsole, type WebConsole } from '../../web/server.ts';
import { WsViewer, wsUrl } from './support/ws-viewer.ts';

const cleanup: { close(): Promise<void> }[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c.close();
});

test('a stalled viewer is dropped with a reason while the producer and a healthy viewer carry on', async () => {
  const hub = new ConsoleHub('test', { input() {}, power() {} });
  let dropped!: () => void;
  const droppedLine = new Promise<void>((r) => (dropped = r));
  const log: string[] = [];
  const limit = 256 << 10;
  const wc: WebConsole = await startWebConsole({
    hub,
    maxViewerQueueBytes: limit,
    closeGraceMs: 120_000, // the stalled client resumes only after the healthy one is checked
    log: (line) => {
      log.push(line);
      if (/dropped: viewer too slow/.test(line)) dropped();
    },
  });
  cleanup.push(wc);
  const healthy = new WsViewer(wsUrl(wc.url));
  const stalled = new WsViewer(wsUrl(wc.readOnlyUrl));
  cleanup.push(healthy, stalled);
  await Promise.all([healthy.opened(), stalled.opened()]);
  await Promise.all([healthy.control('console'), stalled.control('console')]);
  stalled.ws.pause(); // stops reading: the kernel buffers fill, then the server's queue grows

  const sent = createHash('sha256');
  let total = 0;
  let isDropped = false;
  void droppedLine.then(() => (isDropped = true));
  const chunk = Buffer.alloc(16 << 10);
  // Produce like a chatty guest until the stalled viewer is dropped, then a bit more.
  for (let i = 0; total < 512 << 20; i++) {
    chunk.fill(i & 0xff);
    chunk.writeUInt32LE(i, 0);
    hub.output('ttyS0', chunk);
    sent.update(chunk);
    total += chunk.length;
    if (i % 16 === 15) await new Promise((r) => setImmediate(r)); // let the event loop flush
    if (isDropped && total >= 2 * (32 << 20)) break;
  }
  expect(isDropped).toBe(true);
  expect(wc.viewerCount()).toBe(1);

  // The healthy viewer got every byte, in order.
  await healthy.until(() => healthy.bytes === total, `${total} bytes`);
  expect(createHash('sha256').update(Buffer.concat(healthy.chunks)).digest('hex')).toBe(sent.digest('hex'));

  // The stalled viewer, once it reads again, finds the reason after what it had been sent.
  stalled.ws.resume();
  const closed = await stalled.closed;
  expect(closed.code).toBe(CloseCode.slowViewer);
  expect(closed.reason).toMatch(new RegExp(`viewer too slow: \\d+ bytes queued, limit ${limit}`));
  expect(stalled.bytes).toBeLessThan(total);
  expect(log.some((l) => /viewer #2 .* dropped: viewer too slow/.test(l))).toBe(true);
});

test('a viewer that never reads again is cut off once the close grace has passed', async () => {
  const hub = new ConsoleHub('test', { input() {}, power() {} });
  let cut!: (line: string) => void;
  const cutLine = new Promise<string>((r) => (cut = r));
  const wc = await startWebConsole({
    hub,
    maxViewerQueueBytes: 64 << 10,
    closeGraceMs: 50,
    log: (line) => {
      if (/connection cut/.test(line)) cut(line);
    },
  });
  cleanup.push(wc);
  const frozen = new WsViewer(wsUrl(wc.url));
  cleanup.push(frozen);
  await frozen.opened();
  await frozen.control('console');
  frozen.ws.pause();
  let isCut = false;
  void cutLine.then(() => (isCut = true));
  const chunk = Buffer.alloc(64 << 10, 'z');
  for (let i = 0; !isCut && i < 16384; i++) {
    hub.output('ttyS0', chunk);
    await new Promise((r) => setImmediate(r));
  }
  expect(await cutLine).toMatch(/viewer #1 .* did not take the close frame within 50 ms; connection cut/);
  expect(wc.viewerCount()).toBe(0);
  frozen.ws.resume();
  expect((await frozen.closed).code).not.toBe(1000);
});
