// Runs the real `tsvmm` command as a child process and lets a test wait for what it prints.
// Waiting is event-driven: a promise resolves when the output matches, or the process exits.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const TSVMM_BIN = fileURLToPath(new URL('../../bin/tsvmm.js', import.meta.url));

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export class TsvmmProcess {
  readonly child: ChildProcessWithoutNullStreams;
  stdout = '';
  stderr = '';
  readonly exited: Promise<Exit>;
  private waiters: (() => void)[] = [];

  /** `processGroup`: run tsvmm as the leader of a new process group, so a test can signal the group. */
  constructor(args: string[], env: NodeJS.ProcessEnv = {}, { processGroup = false } = {}) {
    this.child = spawn(process.execPath, [TSVMM_BIN, ...args], { env: { ...process.env, ...env }, detached: processGroup });
    this.child.stdout.on('data', (d: Buffer) => { this.stdout += d.toString('latin1'); this.notify(); });
    this.child.stderr.on('data', (d: Buffer) => { this.stderr += d.toString('latin1'); this.notify(); });
    this.exited = new Promise((resolve) => {
      this.child.on('close', (code, signal) => {
        this.notify();
        resolve({ code, signal, stdout: this.stdout, stderr: this.stderr });
      });
    });
  }

  /**
   * Resolves once stdout (or stderr) matches; rejects if the process exits first, or when
   * `deadlineMs` passes (then the process is killed, so a stuck guest never outlives its test).
   */
  waitFor(pattern: RegExp, stream: 'stdout' | 'stderr' = 'stdout', deadlineMs = 300_000): Promise<void> {
    return this.waitUntil(() => pattern.test(this[stream]), `print ${pattern}`, deadlineMs);
  }

  /**
   * Resolves once `done()` holds, checked each time tsvmm prints; `what` completes "tsvmm did
   * not …" in the error. Rejects and kills as waitFor does.
   */
  async waitUntil(done: () => boolean, what: string, deadlineMs = 300_000): Promise<void> {
    let exited = false;
    let expired = false;
    void this.exited.then(() => { exited = true; });
    const timer = setTimeout(() => { expired = true; this.notify(); }, deadlineMs);
    try {
      for (;;) {
        if (done()) return;
        if (exited || this.child.exitCode !== null || expired) {
          if (expired) this.child.kill('SIGKILL');
          const why = expired ? `did not ${what} within ${deadlineMs / 1000} s` : `exited before it would ${what}`;
          throw new Error(`tsvmm ${why}\n--- stdout\n${this.stdout.slice(-4000)}\n--- stderr\n${this.stderr.slice(-4000)}`);
        }
        await new Promise<void>((r) => this.waiters.push(r));
      }
    } finally {
      clearTimeout(timer);
    }
  }

  private notify(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const r of w) r();
  }
}

/** Runs tsvmm to completion. */
export function runTsvmm(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Exit> {
  const p = new TsvmmProcess(args, env);
  p.child.stdin.end();
  return p.exited;
}
