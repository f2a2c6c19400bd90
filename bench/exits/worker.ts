// The tsvmm side of bench/exits, on a worker thread as in `tsvmm run`. Each request's guest runs
// either through the VMM's own run loop (vmm/vcpu-loop.ts runVcpu with an IoBus and in-process
// devices) or through the bare backend (a vcpu.run() loop that answers exits inline), and the
// reply is the time from the first KVM_RUN to the guest's DONE write.
import { parentPort } from 'node:worker_threads';
import { ExitReason, ExitReasonName } from '../../hypervisors/backend.ts';
import type { TestGuest } from '../../test/guests/guest.ts';
import { loadKvmAddon } from '../../hypervisors/kvm/addon.ts';
import type { MmioDevice, PioDevice } from '../../devices/device.ts';
import { IoBus } from '../../vmm/io-bus.ts';
import { runVcpu } from '../../vmm/vcpu-loop.ts';
import { Control } from '../../vmm/worker-protocol.ts';
import { buildGuest, DONE_PORT, DOORBELL_PORT, EXIT_PORT, MMIO_ADDRESS, writeImage, type Workload } from './guest.ts';

export type Loop = 'vmm' | 'backend';
export interface BenchRequest { workload: Workload; loop: Loop; iterations: number; imagePath?: string }
export interface BenchReply { exits: number; seconds: number }

class Counter implements PioDevice, MmioDevice {
  readonly name = 'bench counter';
  count = 0;
  pioRead(): number { return 0; }
  pioWrite(): void { this.count++; }
  mmioRead(): bigint { this.count++; return 1n; }
  mmioWrite(): void {}
}

/** DONE_PORT: asks the run loop to stop, the way the main thread's stop request does. */
class Done implements PioDevice {
  readonly name = 'bench done';
  constructor(private readonly control: Int32Array) {}
  pioRead(): number { return 0; }
  pioWrite(): void { Atomics.or(this.control, Control.requests, Control.stop); }
}

/** The KVM backend alone: what a run loop costs before any device model is involved. */
function runBare(vcpu: TestGuest['vcpu'], counter: Counter): string {
  const exit = vcpu.exit;
  for (;;) {
    const reason = vcpu.run();
    if (reason === ExitReason.Io && exit.write) {
      if (exit.address === DONE_PORT) return 'stopped';
      counter.count++;
    } else if (reason === ExitReason.Mmio && !exit.write) {
      exit.data[0] = 1;
      counter.count++;
    } else {
      return `exit ${ExitReasonName[reason]}: ${exit.detail}`;
    }
  }
}

function measure({ workload, loop, iterations, imagePath }: BenchRequest): BenchReply {
  const guest = buildGuest(workload, iterations);
  const addon = loadKvmAddon();
  let doorbell = -1;
  try {
    if (imagePath) writeImage(guest, imagePath);
    const control = new Int32Array(new SharedArrayBuffer(Control.words * 4));
    const counter = new Counter();
    const bus = new IoBus();
    bus.addPio(EXIT_PORT, 1, counter);
    bus.addPio(DONE_PORT, 1, new Done(control));
    bus.addMmio(MMIO_ADDRESS, 0x1000, counter);
    if (workload === 'ioeventfd') {
      doorbell = addon.eventfd(0, true);
      guest.vm.assignIoeventfd({ address: DOORBELL_PORT, length: 1, pio: true, fd: doorbell });
    }
    const hooks = { control, takeInput() {},
    resetRequested: () => false };

    const t0 = performance.now();
    const outcome = loop === 'vmm' ? runVcpu(guest.vcpu, bus, hooks) : { kind: runBare(guest.vcpu, counter), detail: '' };
    const seconds = (performance.now() - t0) / 1000;

    if (outcome.kind !== 'stopped') throw new Error(`the ${workload} guest ended with ${outcome.kind}: ${outcome.detail}`);
    const accesses = workload === 'ioeventfd' ? Number(addon.eventfdRead(doorbell)) : counter.count;
    if (accesses !== iterations) throw new Error(`the ${workload} guest made ${accesses} accesses, expected ${iterations}`);
    return { exits: counter.count + 1, seconds };
  } finally {
    if (doorbell >= 0) addon.closeFd(doorbell);
    guest.destroy();
  }
}

parentPort!.on('message', (request: BenchRequest) => {
  try {
    parentPort!.postMessage({ ok: measure(request) });
  } catch (e) {
    parentPort!.postMessage({ error: (e as Error).stack });
  }
});
