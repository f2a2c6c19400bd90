// Kicking a vCPU out of KVM_RUN: from the main thread while a worker's guest spins at CPL3
// (natively, in guest mode), before run() is even entered, and by a kick timer. The main thread
// watches the guest's counter through its own mapping of the guest-RAM memfd, so it kicks only
// once the guest is demonstrably running.
import { Worker } from 'node:worker_threads';
import { afterEach, describe, expect, test } from 'vitest';
import { ExitReason, type KickToken } from '../../hypervisors/backend.ts';
import { kick } from '../../hypervisors/kick.ts';
import { loadKvmAddon } from '../../hypervisors/kvm/addon.ts';
import { startTsWorker } from '../../base/worker.ts';
import { Asm, R } from '../guests/asm.ts';
import { GUEST, TestGuest, kvmSkipReason } from '../guests/guest.ts';
import type { KickWorkerData } from './kick-worker.ts';

const skip = kvmSkipReason();
if (skip) console.warn(skip);

let worker: Worker | undefined;
let guest: TestGuest | undefined;
afterEach(async () => {
  await worker?.terminate();
  worker = undefined;
  guest?.destroy();
  guest = undefined;
});

type Message =
  | { type: 'ready'; token: KickToken; ramFd: number; ramSize: number; counter: number }
  | { type: 'returned'; round: number; reason: string; counter: number }
  | { type: 'error'; message: string };

/** Messages from the worker, in order, as promises. */
function inbox(w: Worker): () => Promise<Message> {
  const queue: Message[] = [];
  const waiters: ((m: Message) => void)[] = [];
  w.on('message', (m: Message) => (waiters.shift() ?? ((x: Message) => queue.push(x)))(m));
  w.on('error', (e) => (waiters.shift() ?? ((x: Message) => queue.push(x)))({ type: 'error', message: String(e) }));
  return () => {
    const m = queue.shift();
    return m ? Promise.resolve(m) : new Promise((resolve) => waiters.push(resolve));
  };
}

async function until(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((resolve) => setImmediate(resolve));
}

describe.skipIf(skip)('kicking a vCPU', () => {
  test('the main thread kicks a vCPU spinning at CPL3 in a worker, three times; it resumes in between', async () => {
    const rounds = 3;
    worker = startTsWorker(new URL('./kick-worker.ts', import.meta.url), { workerData: { rounds, safetyTimeoutMs: 60_000 } satisfies KickWorkerData });
    const next = inbox(worker);
    const ready = await next();
    if (ready.type !== 'ready') throw new Error(`worker failed: ${JSON.stringify(ready)}`);

    // The guest's RAM, mapped again here from its memfd: what device processes will do.
    const addon = loadKvmAddon();
    const ram = addon.mapFd(ready.ramFd, 0, ready.ramSize, false);
    const counter = new Uint32Array(ram, ready.counter, 1);
    try {
      for (let round = 0; round < rounds; round++) {
        const before = counter[0]!;
        await until(() => counter[0] !== before); // the guest is running (again)
        const observed = counter[0]!;
        kick(ready.token);
        const m = await next();
        expect(m).toMatchObject({ type: 'returned', round, reason: 'kicked' });
        // It ran at least until we looked: this return is our kick, not a stale one.
        expect((m as { counter: number }).counter).toBeGreaterThanOrEqual(observed);
      }
    } finally {
      addon.unmap(ram);
    }
  }, 30_000);

  test('a kick that lands before run() is honoured by the next run(), and only by that one', () => {
    guest = new TestGuest({ mode: 'long64' });
    guest.load(new Asm(64, GUEST.code).movImm(R.eax, 0x42).out(0xe0, 1).hlt());
    guest.start(GUEST.code);
    guest.enterUserMode(GUEST.code);
    kick(guest.vcpu.kickToken());
    expect(guest.vcpu.run()).toBe(ExitReason.Kicked);
    expect(guest.vcpu.getRegs().rip).toBe(BigInt(GUEST.code)); // no guest code ran
    expect(guest.run()).toBe(ExitReason.Io);
    expect(guest.vcpu.exit.address).toBe(0xe0);
  });

  test('a kick between an MMIO read exit and the next run() does not lose the answer', () => {
    guest = new TestGuest({ mode: 'long64' });
    guest.load(new Asm(64, GUEST.code).movImm(R.ebx, GUEST.mmio).load(R.eax, R.ebx, 4).out(0xe0, 4));
    guest.start(GUEST.code);
    guest.enterUserMode(GUEST.code);
    expect(guest.run()).toBe(ExitReason.Mmio);
    guest.vcpu.exit.data.set([0x78, 0x56, 0x34, 0x12]);
    kick(guest.vcpu.kickToken());
    // KVM completes the pending read before it looks at immediate_exit.
    expect(guest.vcpu.run()).toBe(ExitReason.Kicked);
    expect(guest.run()).toBe(ExitReason.Io);
    expect([...guest.vcpu.exit.data]).toEqual([0x78, 0x56, 0x34, 0x12]);
  });

  test('a kick timer ends a run that would never exit', () => {
    guest = new TestGuest({ mode: 'long64' });
    guest.load(new Asm(64, GUEST.code).spin());
    guest.start(GUEST.code);
    guest.enterUserMode(GUEST.code);
    guest.vcpu.armKickTimer(50);
    expect(guest.vcpu.run()).toBe(ExitReason.Kicked);
    expect(guest.vcpu.getRegs().rip).toBe(BigInt(GUEST.code));
  });

  test('a worker that exits without destroying its vCPU leaves no dead thread to signal', async () => {
    worker = startTsWorker(new URL('./abandon-worker.ts', import.meta.url));
    // Listen for the exit before awaiting the message: the worker exits right after posting it.
    const exited = new Promise((resolve) => worker!.once('exit', resolve));
    const token = await new Promise<KickToken>((resolve, reject) => { worker!.once('message', resolve); worker!.once('error', reject); });
    await exited;
    worker = undefined;
    // The worker's environment teardown released the slot: this kick finds nothing to signal
    // (signalling the exited thread would be undefined behaviour).
    expect(loadKvmAddon().kick((token as { slot: number }).slot)).toBe(false);
    expect(() => kick(token)).not.toThrow();
  });

  test('kicking a destroyed vCPU does nothing', () => {
    guest = new TestGuest({ mode: 'long64' });
    const token = guest.vcpu.kickToken();
    guest.destroy();
    guest = undefined;
    expect(() => kick(token)).not.toThrow();
  });
});

test('an interpreter token: kick sets control word 0 and wakes a thread waiting on it', async () => {
  const control = new SharedArrayBuffer(16);
  // Stands in for the interpreter's vCPU thread idling in Atomics.wait (hypervisors/interp/platform.ts).
  const waiter = new Worker(
    "const { workerData, parentPort } = require('node:worker_threads');" +
    "const c = new Int32Array(workerData); parentPort.postMessage('waiting');" +
    "parentPort.postMessage(Atomics.wait(c, 0, 0, 60000) + ':' + Atomics.load(c, 0));",
    { eval: true, workerData: control });
  try {
    const messages: string[] = [];
    const done = new Promise<void>((resolve) => waiter.on('message', (m: string) => { messages.push(m); if (messages.length === 2) resolve(); }));
    await new Promise<void>((resolve) => waiter.once('message', () => resolve()));
    // Whether the kick lands before or during the wait, it is not lost: the flag is stored
    // before the notify, so a wait that starts late sees it at once ('not-equal').
    kick({ backend: 'interp', control });
    await done;
    expect(messages[1]).toMatch(/^(ok|not-equal):1$/);
  } finally {
    await waiter.terminate();
  }
});
