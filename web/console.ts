// What the web console serves: one VM's consoles, as the web console itself defines them. It
// depends on nothing of the VMM; whoever runs a VM hands it something of this shape (cli/run.ts
// hands it the VM's ConsoleHub, vmm/console-hub.ts).
import type { ConsoleName, PowerAction, VmState } from './protocol.ts';

export interface ConsoleStatus {
  state: VmState;
  backend: string;
  /** Set once state is 'stopped'. */
  exitCode?: number;
  /** Why it stopped, or why the backend was chosen; for people. */
  reason?: string;
}

export interface WebConsoleSource {
  /** Guest output of every console; returns the way to stop listening. */
  onOutput(listener: (console: ConsoleName, bytes: Uint8Array) => void): () => void;
  /** Keystrokes of a full-access viewer for the guest. */
  input(console: ConsoleName, bytes: Uint8Array): void;
  power(action: PowerAction): void;
  status(): ConsoleStatus;
  onStatus(listener: (status: ConsoleStatus) => void): () => void;
  /** Optional: the terminal size of the last full-access viewer that resized, for the guest's console. */
  resize?(console: ConsoleName, cols: number, rows: number): void;
}
