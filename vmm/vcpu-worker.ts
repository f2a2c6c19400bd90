// The vCPU worker thread: builds the machine and runs its vCPU. KVM_RUN (or the interpreter)
// blocks this thread only; the main thread stays free for the console, web viewers and plugins.
import { parentPort, workerData } from 'node:worker_threads';
import { backendNamed } from '../hypervisors/backends.ts';
import { LoaderError } from '../firmware/loader-error.ts';
import { buildMachine, type Machine } from './machine.ts';
import { runVcpu } from './vcpu-loop.ts';
import { Control, type MachineSpec, type Outcome, type WorkerMessage } from './worker-protocol.ts';

const spec = (workerData as { data: MachineSpec }).data;
const port = parentPort!;
const post = (m: WorkerMessage) => port.postMessage(m);
const control = new Int32Array(spec.control);

async function main(): Promise<Outcome> {
  const hv = await backendNamed(spec.backend).open(spec.backendOptions);
  let machine: Machine;
  try {
    machine = buildMachine(hv, spec);
  } catch (e) {
    if (e instanceof LoaderError) return { kind: 'load-error', detail: e.message, exitCode: e.exitCode };
    throw e;
  }
  try {
    post({
      type: 'started',
      kick: machine.vcpu.kickToken(),
      boot: machine.boot,
      ram: machine.vm.ram.map((r) => ({ fd: r.fd, guestPhys: r.guestPhys, size: r.size })),
      wiring: machine.vm.wiring(),
    });
    // Device plugins attach to the VM now; the guest must not probe them before they answer.
    Atomics.wait(control, Control.start, Control.startWait);
    if (Atomics.load(control, Control.start) === Control.startAbort) return { kind: 'stopped', detail: 'device plugins failed to start' };
    const hooks = {
      control,
      takeInput: () => machine.takeInput(),
      resetRequested: () => machine.resetRequested(),
    };
    for (;;) {
      const outcome = runVcpu(machine.vcpu, machine.bus, hooks);
      if (outcome.kind !== 'user-reset') return outcome;
      machine.reset();
    }
  } finally {
    machine.destroy();
  }
}

main().then(
  (outcome) => post({ type: 'stopped', outcome }),
  (e: unknown) => post({ type: 'stopped', outcome: { kind: 'internal-error', detail: e instanceof Error ? e.message : String(e) } }),
);
