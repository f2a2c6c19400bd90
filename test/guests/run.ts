// A miniature VMM loop for tests, the same shape as the real one (run → switch → answer):
// it runs a test guest until it writes to DONE_PORT, hands every other I/O and MMIO exit to
// the test's handlers (which check writes and answer reads), and fails on anything else.
import { ExitReason, ExitReasonName, type VcpuExit } from '../../hypervisors/backend.ts';
import type { TestGuest } from './guest.ts';

/** The guest writes here (any size) to say it has finished. */
export const DONE_PORT = 0xe0;

export interface ExitHandlers {
  /** Port I/O exit: check exit.data (writes) or fill it (reads). */
  io?(exit: VcpuExit): void;
  mmio?(exit: VcpuExit): void;
}

export interface RunStats {
  exits: number;
  /** The value of the DONE_PORT write. */
  doneValue: number;
}

export function runUntilDone(guest: TestGuest, handlers: ExitHandlers, timeoutMs = 20_000): RunStats {
  const exit = guest.vcpu.exit;
  const deadline = performance.now() + timeoutMs;
  for (let exits = 1; ; exits++) {
    const remaining = Math.max(1, deadline - performance.now());
    const reason = guest.run(remaining);
    switch (reason) {
      case ExitReason.Io:
        if (exit.address === DONE_PORT && exit.write) return { exits, doneValue: littleEndian(exit.data) };
        if (!handlers.io) throw new Error(`unexpected port I/O exit: ${describe(exit)}`);
        handlers.io(exit);
        break;
      case ExitReason.Mmio:
        if (!handlers.mmio) throw new Error(`unexpected MMIO exit: ${describe(exit)}`);
        handlers.mmio(exit);
        break;
      default:
        throw new Error(`unexpected ${ExitReasonName[reason]} exit at rip 0x${guest.vcpu.getRegs().rip.toString(16)}: ${exit.detail}`);
    }
  }
}

/** The value of a 1-, 2- or 4-byte access. */
export function littleEndian(bytes: Uint8Array): number {
  if (bytes.length > 4) throw new Error(`littleEndian: ${bytes.length} bytes; use littleEndianBig`);
  let v = 0;
  for (let i = bytes.length - 1; i >= 0; i--) v = v * 256 + bytes[i]!;
  return v;
}

export function littleEndianBig(bytes: Uint8Array): bigint {
  let v = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(bytes[i]!);
  return v;
}

export function putLittleEndian(bytes: Uint8Array, value: bigint): void {
  for (let i = 0; i < bytes.length; i++, value >>= 8n) bytes[i] = Number(value & 0xffn);
}

export function describe(exit: VcpuExit): string {
  return `${exit.write ? 'write' : 'read'} of ${exit.size}×${exit.count} at 0x${exit.address.toString(16)}`;
}
