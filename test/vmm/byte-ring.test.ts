// The console ring between the vCPU worker and the main thread, exercised across a real worker.
import { expect, test } from 'vitest';
import { ByteRing } from '../../vmm/byte-ring.ts';
import { startTsWorker } from '../../base/worker.ts';

test('a worker pushes 1 MiB through a 64 KiB ring; the consumer gets every byte in order', async () => {
  const ring = new ByteRing(64 * 1024);
  const total = 1 << 20;
  const worker = startTsWorker(new URL('./fixtures/ring-producer.ts', import.meta.url), {
    workerData: { ring: ring.buffer, total },
  });
  let received = 0;
  let ok = true;
  while (received < total) {
    const seen = ring.signal;
    const bytes = ring.drain();
    if (!bytes) {
      await ring.waitForData(seen);
      continue;
    }
    for (const b of bytes) {
      if (b !== (received & 0xff)) ok = false;
      received++;
    }
  }
  await worker.terminate();
  expect(ok).toBe(true);
  expect(received).toBe(total);
  expect(ring.dropped).toBe(0);
});

test('a full ring drops and counts instead of blocking the producer', () => {
  const ring = new ByteRing(16);
  expect(ring.push(new Uint8Array(20))).toBe(16);
  ring.pushByte(1);
  expect(ring.dropped).toBe(5);
  expect(ring.drain()).toHaveLength(16);
  expect(ring.isEmpty()).toBe(true);
  expect(() => new ByteRing(100)).toThrow(/power of two/);
});
