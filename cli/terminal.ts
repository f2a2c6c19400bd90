// The user's terminal as a console viewer: guest output to stdout, keystrokes to the guest.
// On a TTY, stdin goes into raw mode so every key (Ctrl-C included) reaches the guest, and
// QEMU's escape key works: Ctrl-A x quits, Ctrl-A Ctrl-A sends a literal Ctrl-A, Ctrl-A h
// prints help. Raw mode is undone on every way out (see `restore` and the exit hook).
import type { ConsoleHub, ConsoleName } from '../vmm/console-hub.ts';

const CTRL_A = 0x01;

const HELP = '\r\ntsvmm console: C-a x  quit tsvmm | C-a C-a  send C-a | C-a h  this help\r\n';

export interface TerminalOptions {
  hub: ConsoleHub;
  console: ConsoleName;
  /** Ctrl-A x. */
  onQuit: () => void;
  stdin?: NodeJS.ReadStream;
  stdout?: NodeJS.WriteStream;
}

export class Terminal {
  private readonly stdin: NodeJS.ReadStream;
  private readonly stdout: NodeJS.WriteStream;
  private escapePending = false;
  private rawMode = false;
  private readonly detachOutput: () => void;
  private readonly onData = (chunk: Buffer) => this.input(chunk);
  private readonly restoreOnExit = () => this.restore();

  constructor(private readonly options: TerminalOptions) {
    this.stdin = options.stdin ?? process.stdin;
    this.stdout = options.stdout ?? process.stdout;
    const detach = options.hub.onOutput((name, bytes) => {
      if (name === options.console) this.stdout.write(bytes);
    });
    this.detachOutput = detach;
    // Whoever read our output went away (`tsvmm run | head`): stop writing, keep the VM running
    // for its other viewers; a signal or Ctrl-A x still ends it.
    this.stdout.once('error', (e: NodeJS.ErrnoException) => {
      detach();
      process.stderr.write(`tsvmm: terminal output closed (${e.code ?? e.message}); the guest keeps running\n`);
    });
    if (this.stdin.isTTY) {
      this.stdin.setRawMode(true);
      this.rawMode = true;
      process.on('exit', this.restoreOnExit);
    }
    this.stdin.on('data', this.onData);
    this.stdin.resume();
  }

  /** Give the terminal back as it was: cooked mode, stdin released. Idempotent. */
  restore(): void {
    this.detachOutput();
    this.stdin.off('data', this.onData);
    this.stdin.pause();
    if (this.rawMode) {
      this.stdin.setRawMode(false);
      this.rawMode = false;
      process.off('exit', this.restoreOnExit);
    }
  }

  /** Print a line for the user (not guest output), on its own line even in raw mode. */
  message(text: string): void {
    process.stderr.write(`${this.rawMode ? '\r\n' : ''}${text}${this.rawMode ? '\r\n' : '\n'}`);
  }

  private input(chunk: Buffer): void {
    const forward: number[] = [];
    for (const byte of chunk) {
      if (this.escapePending) {
        this.escapePending = false;
        if (byte === 0x78 /* x */) {
          this.options.onQuit();
          return;
        }
        if (byte === 0x68 /* h */ || byte === 0x3f /* ? */) this.stdout.write(HELP);
        else if (byte === CTRL_A) forward.push(CTRL_A);
        // Any other key after Ctrl-A is swallowed, as in QEMU.
      } else if (byte === CTRL_A) {
        this.escapePending = true;
      } else {
        forward.push(byte);
      }
    }
    if (forward.length > 0) this.options.hub.input(this.options.console, Uint8Array.from(forward));
  }
}
