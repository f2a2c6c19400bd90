// A real interactive shell on the host, behind a real ConsoleHub, standing in for a guest until
// the VMM can boot one: `script` gives `sh` a pseudo-terminal (so it prompts, and the tty echoes
// keystrokes as a guest's serial console would), its output goes to hub.output('ttyS0'), and hub
// input goes to its terminal. Power actions restart or end the shell like a VM's.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { ConsoleHub } from '../../../vmm/console-hub.ts';

export const PROMPT = 'tsvmm-test$ ';

export class HostShell {
  readonly hub: ConsoleHub;
  private child!: ChildProcessWithoutNullStreams;
  /** Everything the shell printed, for assertions. */
  output = '';
  powerActions: string[] = [];

  constructor(private readonly command = 'sh') {
    this.hub = new ConsoleHub('host-shell', {
      input: (console, bytes) => {
        if (console === 'ttyS0') this.child.stdin.write(bytes);
      },
      power: (action) => {
        this.powerActions.push(action);
        if (action === 'reset') this.restart();
        else this.stop();
      },
    });
    this.start();
  }

  private start(): void {
    const child = spawn('script', ['-qfec', this.command, '/dev/null'], {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: '/tmp', TERM: 'xterm-256color', PS1: PROMPT, ENV: '' },
      stdio: 'pipe',
    });
    this.child = child;
    child.stdout.on('data', (chunk: Buffer) => {
      this.output += chunk.toString('latin1');
      this.hub.output('ttyS0', chunk);
    });
    child.stdin.on('error', () => {}); // the shell may exit while input is in flight
    child.on('exit', (code, signal) => {
      if (this.child !== child) return;
      this.hub.setStatus({ state: 'stopped', backend: 'host-shell', exitCode: code ?? 128, reason: signal ? `killed by ${signal}` : 'shell exited' });
    });
    this.hub.setStatus({ state: 'running', backend: 'host-shell' });
  }

  private restart(): void {
    const old = this.child;
    this.start();
    old.kill('SIGKILL');
  }

  private stop(): void {
    this.child.kill('SIGTERM');
  }

  /** Resolves when the shell's output (from offset `from`) contains `text`. */
  waitFor(text: string, from = 0): Promise<void> {
    return new Promise((resolve) => {
      if (this.output.indexOf(text, from) >= 0) return resolve();
      // `output` is appended before the hub is told, so a listener sees the new text.
      const off = this.hub.onOutput(() => {
        if (this.output.indexOf(text, from) >= 0) {
          off();
          resolve();
        }
      });
    });
  }

  async close(): Promise<void> {
    const child = this.child;
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;
  }
}
