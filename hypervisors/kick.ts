// Kicking a vCPU out of Vcpu.run() from another thread (typically the main thread stopping or
// pausing the vCPU worker). The KickToken comes from vcpu.kickToken(), posted across threads.
//   kvm:    the addon sets kvm_run.immediate_exit and signals the vCPU thread (docs/kvm.md);
//           run() returns ExitReason.Kicked.
//   interp: control word 0 of the interpreter's shared control block is its kick flag; the
//           interpreter polls it and returns ExitReason.Kicked (notify wakes it from Atomics.wait).
import type { KickToken } from './backend.ts';
import { loadKvmAddon } from './kvm/addon.ts';

/** Kicks the vCPU; a kick of a vCPU that has since been destroyed does nothing. */
export function kick(token: KickToken): void {
  switch (token.backend) {
    case 'kvm':
      loadKvmAddon().kick(token.slot);
      return;
    case 'interp': {
      const control = new Int32Array(token.control);
      Atomics.store(control, 0, 1);
      Atomics.notify(control, 0);
      return;
    }
  }
}
