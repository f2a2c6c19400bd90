// Messages and shared buffers between the main thread (vmm/virtual-machine.ts) and the vCPU worker
// (vmm/vcpu-worker.ts). Console bytes and requests travel through SharedArrayBuffers so the
// worker can take them between two KVM_RUNs without going through its event loop.
import type { BackendName, KickToken, WiringToken } from '../hypervisors/backend.ts';

export interface MachineSpec {
  backend: BackendName;
  /** What the backend's probe found that opening it needs (BackendProbe.openOptions). */
  backendOptions: unknown;
  memBytes: number;
  kernel: Uint8Array;
  initrd: Uint8Array | undefined;
  cmdline: string;
  /** Enter the kernel in 64-bit mode where it supports that (BackendDescriptor.longMode). */
  longMode: boolean;
  /** Guest time from the instruction count, RTC at a fixed date (interpreter only). */
  deterministic: boolean;
  /** ByteRing: serial output, worker → main. */
  serialOut: SharedArrayBuffer;
  /** ByteRing: serial input, main → worker. */
  serialIn: SharedArrayBuffer;
  /** Int32 words, see Control. */
  control: SharedArrayBuffer;
}

/** Words of MachineSpec.control. The main thread sets a request bit, then kicks the vCPU. */
export const Control = {
  /** Word index of the request bits. */
  requests: 0,
  stop: 1,
  reset: 2,
  input: 4,
  /** Is the guest halted for good (powered off)? Asked periodically on backends whose HLT never exits. */
  haltCheck: 8,
  /** Word index: the main thread's go-ahead once device plugins are ready. */
  start: 1,
  startWait: 0,
  startRun: 1,
  startAbort: 2,
  words: 4,
} as const;

export type OutcomeKind =
  | 'poweroff' // the guest halted for good (HLT with interrupts off, or a power-off event)
  | 'reset' // the guest reset itself (triple fault, i8042 reset line, reset event)
  | 'stopped' // the VMM was asked to stop (signal, Ctrl-A x, web power-off)
  | 'user-reset' // the user asked for a reset: handled inside the worker, never reported
  | 'crash' // the guest reported a crash (KVM_SYSTEM_EVENT_CRASH)
  | 'internal-error' // the backend could not go on
  | 'load-error'; // the kernel could not be loaded (bad file, does not fit)

export interface Outcome {
  kind: OutcomeKind;
  detail: string;
  /** For load errors: the loader's exit code (2). */
  exitCode?: number;
}

export type WorkerMessage =
  | {
    type: 'started';
    kick: KickToken;
    boot: string;
    /** Guest RAM memfds, for device plugins (fd numbers are process-wide). */
    ram: { fd: number; guestPhys: number; size: number }[];
    /** How the main thread wires plugins' ioeventfds and irqfds to this VM (hypervisors/wiring.ts). */
    wiring: WiringToken;
  }
  | { type: 'stopped'; outcome: Outcome };
