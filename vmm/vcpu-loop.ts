// The vCPU run loop: run the guest, have the platform's bus complete the exits that reach the
// VMM, and return when the machine must stop. This is the VMM's hot path for exits, so it
// allocates nothing per port-I/O exit and checks for requests from the main thread with one
// atomic load. It knows no addresses: the bus (vmm/platform.ts) decodes them.
import { ExitReason, ExitReasonName, type Vcpu } from '../hypervisors/backend.ts';
import type { IoBus } from './io-bus.ts';
import { Control, type Outcome } from './worker-protocol.ts';

export interface LoopHooks {
  /** Int32 view of MachineSpec.control. */
  control: Int32Array;
  /** Feed queued console input to the devices. */
  takeInput(): void;
  /** Set by devices that reset the platform (the i8042 reset line). */
  resetRequested(): boolean;
}

export function runVcpu(vcpu: Vcpu, bus: IoBus, hooks: LoopHooks): Outcome {
  const exit = vcpu.exit;
  if (Atomics.load(hooks.control, Control.requests) & Control.stop) return { kind: 'stopped', detail: 'stop requested' };
  for (;;) {
    const reason = vcpu.run();
    switch (reason) {
      case ExitReason.Io:
        bus.completePio(exit);
        if (hooks.resetRequested()) return { kind: 'reset', detail: 'the guest pulsed the i8042 reset line' };
        break;
      case ExitReason.Mmio:
        bus.completeMmio(exit);
        break;
      case ExitReason.Kicked:
        break;
      case ExitReason.Hlt:
        return { kind: 'poweroff', detail: 'the guest halted with interrupts disabled' };
      case ExitReason.Shutdown:
        return { kind: 'reset', detail: `the guest reset the CPU (${exit.detail || 'triple fault'})` };
      case ExitReason.SystemEvent:
        if (exit.systemEvent === 1) return { kind: 'poweroff', detail: 'the guest powered off' };
        if (exit.systemEvent === 2) return { kind: 'reset', detail: 'the guest requested a reset' };
        if (exit.systemEvent === 3) return { kind: 'crash', detail: 'the guest reported a crash' };
        return { kind: 'internal-error', detail: `unexpected system event ${exit.systemEvent}: ${exit.detail}` };
      case ExitReason.InternalError:
        return { kind: 'internal-error', detail: exit.detail };
      default:
        return { kind: 'internal-error', detail: `unexpected exit ${ExitReasonName[reason] ?? reason}` };
    }
    const requests = Atomics.load(hooks.control, Control.requests);
    if (requests !== 0) {
      if (requests & Control.stop) return { kind: 'stopped', detail: 'stop requested' };
      if (requests & Control.reset) {
        Atomics.and(hooks.control, Control.requests, ~Control.reset);
        return { kind: 'user-reset', detail: 'reset requested' };
      }
      if (requests & Control.input) {
        Atomics.and(hooks.control, Control.requests, ~Control.input);
        hooks.takeInput();
      }
      if (requests & Control.haltCheck) {
        Atomics.and(hooks.control, Control.requests, ~Control.haltCheck);
        if (vcpu.haltedForGood()) return { kind: 'poweroff', detail: 'the guest halted with interrupts disabled' };
      }
    }
  }
}
