// The vCPU run loop: run the guest, answer the exits that in-process devices handle, and return
// when the machine must stop. This is the VMM's hot path for exits, so it allocates nothing per
// port-I/O exit and checks for requests from the main thread with one atomic load.
import { ExitReason, ExitReasonName, type Vcpu } from '../hypervisors/backend.ts';
import type { IoBus } from './io-bus.ts';
import { DEVICE_WINDOW } from '../base/memory-map.ts';
import { dispatchToPlugins } from './regions/dispatch.ts';
import { PIO_SLOT_BASE } from '../base/slots.ts';
import { Control, type Outcome } from './worker-protocol.ts';

export interface LoopHooks {
  /** Int32 view of MachineSpec.control. */
  control: Int32Array;
  /** Feed queued console input to the devices. */
  takeInput(): void;
  /** Set by devices that reset the platform (the i8042 reset line). */
  resetRequested(): boolean;
}

const DEVICE_WINDOW_END = DEVICE_WINDOW.start + DEVICE_WINDOW.size;

/**
 * Accesses to device-plugin regions (the device MMIO window, the plugin port range) go to the
 * plugins first: on KVM the addon completes nearly all of them natively and only string I/O
 * gets here; on the interpreter every one does. Everything else is an in-process device's.
 */
export function runVcpu(vcpu: Vcpu, bus: IoBus, hooks: LoopHooks): Outcome {
  const exit = vcpu.exit;
  if (Atomics.load(hooks.control, Control.requests) & Control.stop) return { kind: 'stopped', detail: 'stop requested' };
  for (;;) {
    const reason = vcpu.run();
    switch (reason) {
      case ExitReason.Io: {
        const { address: port, size, count, data } = exit;
        if (port >= PIO_SLOT_BASE && dispatchToPlugins(exit, true)) break;
        if (exit.write) {
          for (let i = 0; i < count; i++) bus.pioWrite(port, size, readLE(data, i * size, size));
        } else {
          for (let i = 0; i < count; i++) writeLE(data, i * size, size, bus.pioRead(port, size));
        }
        if (hooks.resetRequested()) return { kind: 'reset', detail: 'the guest pulsed the i8042 reset line' };
        break;
      }
      case ExitReason.Mmio: {
        const { address, size, data } = exit;
        if (address >= DEVICE_WINDOW.start && address < DEVICE_WINDOW_END && dispatchToPlugins(exit, false)) break;
        if (exit.write) {
          bus.mmioWrite(address, size, readLE64(data, size));
        } else {
          writeLE64(data, size, bus.mmioRead(address, size));
        }
        break;
      }
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

function readLE(data: Uint8Array, offset: number, size: number): number {
  if (size === 1) return data[offset]!;
  if (size === 2) return data[offset]! | (data[offset + 1]! << 8);
  return (data[offset]! | (data[offset + 1]! << 8) | (data[offset + 2]! << 16) | (data[offset + 3]! << 24)) >>> 0;
}

function writeLE(data: Uint8Array, offset: number, size: number, value: number): void {
  data[offset] = value;
  if (size >= 2) data[offset + 1] = value >>> 8;
  if (size >= 4) {
    data[offset + 2] = value >>> 16;
    data[offset + 3] = value >>> 24;
  }
}

function readLE64(data: Uint8Array, size: number): bigint {
  let v = 0n;
  for (let i = size - 1; i >= 0; i--) v = (v << 8n) | BigInt(data[i]!);
  return v;
}

function writeLE64(data: Uint8Array, size: number, value: bigint): void {
  for (let i = 0; i < size; i++) data[i] = Number((value >> BigInt(8 * i)) & 0xffn);
}
