// The VM's consoles as seen from the main thread. Guest output arrives here (from the vCPU
// worker's output ring) and is fanned out to every viewer: the user's terminal, browser
// viewers (web/), log files. Viewer input goes back to the guest. Viewers never block the VM:
// each listener must queue or drop on its own; the hub calls them synchronously and moves on.
import { EventEmitter } from 'node:events';

export type ConsoleName = 'ttyS0' | 'hvc0';
export const CONSOLE_NAMES: readonly ConsoleName[] = ['ttyS0', 'hvc0'];

export type VmState = 'starting' | 'running' | 'paused' | 'stopped';

export interface VmStatus {
  state: VmState;
  backend: string;
  /** Set once state is 'stopped'. */
  exitCode?: number;
  /** Why it stopped, or why the backend was chosen; for people. */
  reason?: string;
}

export type PowerAction = 'reset' | 'poweroff';

interface HubEvents {
  output: [console: ConsoleName, bytes: Uint8Array];
  status: [status: VmStatus];
}

export class ConsoleHub {
  private readonly events = new EventEmitter<HubEvents>();
  private current: VmStatus;

  constructor(
    backend: string,
    private readonly sink: {
      input(console: ConsoleName, bytes: Uint8Array): void;
      power(action: PowerAction): void;
    },
  ) {
    this.current = { state: 'starting', backend };
    this.events.setMaxListeners(0);
  }

  /** Called by the VMM with guest output. */
  output(console: ConsoleName, bytes: Uint8Array): void {
    this.events.emit('output', console, bytes);
  }

  onOutput(listener: (console: ConsoleName, bytes: Uint8Array) => void): () => void {
    this.events.on('output', listener);
    return () => this.events.off('output', listener);
  }

  /** Called by a viewer with keystrokes for the guest. */
  input(console: ConsoleName, bytes: Uint8Array): void {
    this.sink.input(console, bytes);
  }

  power(action: PowerAction): void {
    this.sink.power(action);
  }

  status(): VmStatus {
    return this.current;
  }

  setStatus(status: VmStatus): void {
    this.current = status;
    this.events.emit('status', status);
  }

  onStatus(listener: (status: VmStatus) => void): () => void {
    this.events.on('status', listener);
    return () => this.events.off('status', listener);
  }
}
