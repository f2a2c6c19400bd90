// bench/exits/alloc: JavaScript heap allocated per exit by the KVM backend's run() and by the
// VMM's run loop. Run with a young generation big enough that no scavenge happens during the
// measurement, so the growth of heapUsed is exactly what was allocated:
//
//   node --expose-gc --min-semi-space-size=64 --max-semi-space-size=64 --import tsx bench/exits/alloc.ts
import { ExitReason } from '../../hypervisors/backend.ts';
import type { MmioDevice, PioDevice } from '../../devices/device.ts';
import { IoBus } from '../../vmm/io-bus.ts';
import { runVcpu } from '../../vmm/vcpu-loop.ts';
import { Control } from '../../vmm/worker-protocol.ts';
import { buildGuest, DONE_PORT, EXIT_PORT, MMIO_ADDRESS, type Workload } from './guest.ts';

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) {
  console.error('run with --expose-gc (see the comment at the top of bench/exits/alloc.ts)');
  process.exit(2);
}
const EXITS = 100_000;
const WARM_UP = 2_000;

class Device implements PioDevice, MmioDevice {
  readonly name = 'alloc bench device';
  pioRead(): number { return 0; }
  pioWrite(): void {}
  mmioRead(): bigint { return 1n; }
  mmioWrite(): void {}
}

/** Bytes of heap growth per exit over EXITS exits, after WARM_UP exits and a full GC. */
function measure(workload: Workload, loop: 'backend' | 'vmm'): number {
  const guest = buildGuest(workload, WARM_UP + EXITS);
  try {
    const vcpu = guest.vcpu;
    const exit = vcpu.exit;
    const step = (): void => {
      const reason = vcpu.run();
      if (reason === ExitReason.Mmio) exit.data[0] = 1;
      else if (reason !== ExitReason.Io) throw new Error(`unexpected exit ${reason}: ${exit.detail}`);
    };
    for (let i = 0; i < WARM_UP; i++) step();
    gc!();
    const before = process.memoryUsage().heapUsed;
    if (loop === 'backend') {
      for (let i = 0; i < EXITS; i++) step();
    } else {
      const control = new Int32Array(new SharedArrayBuffer(Control.words * 4));
      const bus = new IoBus();
      const device = new Device();
      bus.addPio(EXIT_PORT, 1, device);
      bus.addMmio(MMIO_ADDRESS, 0x1000, device);
      bus.addPio(DONE_PORT, 1, { name: 'done', pioRead: () => 0, pioWrite: () => { Atomics.or(control, Control.requests, Control.stop); } });
      const outcome = runVcpu(vcpu, bus, { control, takeInput() {},
    resetRequested: () => false });
      if (outcome.kind !== 'stopped') throw new Error(`${outcome.kind}: ${outcome.detail}`);
    }
    return (process.memoryUsage().heapUsed - before) / EXITS;
  } finally {
    guest.destroy();
  }
}

console.log(`heap bytes allocated per exit (${EXITS} exits after ${WARM_UP} warm-up exits; guest at CPL3 in long mode)`);
console.log('| exit | KVM backend (vcpu.run) | VMM run loop (runVcpu + IoBus) |');
console.log('|---|---|---|');
for (const workload of ['pio', 'mmio'] as const) {
  const backend = measure(workload, 'backend');
  const vmm = measure(workload, 'vmm');
  console.log(`| ${workload === 'pio' ? 'port I/O (OUT)' : 'MMIO read'} | ${backend.toFixed(1)} | ${vmm.toFixed(1)} |`);
}
