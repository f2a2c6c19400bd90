// The vCPU worker thread: builds the machine and runs its vCPU. KVM_RUN (or the interpreter)
// blocks this thread only; the main thread stays free for the console, web viewers and plugins.
import { parentPort, workerData } from 'node:worker_threads';
import { openBackend } from '../hypervisors/open.ts';
import { isExitCodeError } from './errors.ts';
import { buildMachine } from './machine.ts';
import { runVcpu } from './vcpu-loop.ts';
import type { MachineSpec, Outcome, WorkerMessage } from './worker-protocol.ts';

const spec = (workerData as { data: MachineSpec }).data;
const port = parentPort!;
const post = (m: WorkerMessage) => port.postMessage(m);

async function main(): Promise<Outcome> {
  const hv = await openBackend(spec.backend, { kvmDevice: spec.kvmDevice, nativeKernelMode: spec.nativeKernelMode });
  let machine;
  try {
    machine = buildMachine(hv, spec);
  } catch (e) {
    if (isExitCodeError(e)) return { kind: 'load-error', detail: e.message, exitCode: e.exitCode };
    throw e;
  }
  post({ type: 'started', kick: machine.vcpu.kickToken(), boot: machine.boot });
  try {
    return runVcpu(machine.vcpu, machine.bus, {
      control: new Int32Array(spec.control),
      takeInput: machine.takeInput,
      resetRequested: machine.resetRequested,
    });
  } finally {
    machine.destroy();
  }
}

main().then(
  (outcome) => post({ type: 'stopped', outcome }),
  (e: unknown) => post({ type: 'stopped', outcome: { kind: 'internal-error', detail: e instanceof Error ? (e.stack ?? e.message) : String(e) } }),
);
