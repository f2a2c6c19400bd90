// Drives a Linux guest's shell through `tsvmm run`'s console: boot to the readiness marker,
// run commands and capture exactly their output, power off. Each command's output is framed
// by markers the shell computes ($((…))), so the echo of the typed line never matches them.
import { GUEST_PROMPT } from '../../firmware/images/recipe.ts';
import { TsvmmProcess, type Exit } from './tsvmm-process.ts';

export class GuestShell {
  private seq = 0;

  private constructor(readonly vm: TsvmmProcess) {}

  /**
   * Starts tsvmm and waits for the guest's readiness marker and then the shell's first prompt:
   * what is typed before the shell has opened its terminal may be lost (hvc0 drops it).
   */
  static async boot(args: string[], marker: string, prompt = GUEST_PROMPT): Promise<GuestShell> {
    const vm = new TsvmmProcess(args);
    await vm.waitFor(new RegExp(`${escape(marker)}[\\s\\S]*${escape(prompt)}`));
    return new GuestShell(vm);
  }

  /** Runs one shell command and returns its output (without the trailing newline). */
  async run(command: string): Promise<string> {
    const n = ++this.seq;
    const begin = `__B${n}__`;
    const end = `__E${n}__`;
    const from = this.vm.stdout.length;
    // A command ending in '&' must not be followed by ';' (a syntax error in sh).
    const separator = /&\s*$/.test(command) ? ' ' : '; ';
    this.vm.child.stdin.write(`echo __B$((${n}))__; ${command}${separator}echo __E$((${n}))__\n`);
    const framed = new RegExp(`${begin}\\r?\\n([\\s\\S]*?)${end}`);
    await this.vm.waitFor(new RegExp(`${escape(end)}\\r?\\n`));
    const match = framed.exec(this.vm.stdout.slice(from));
    if (!match) throw new Error(`could not find the output of "${command}" in:\n${this.vm.stdout.slice(from)}`);
    return match[1]!.replace(/\r/g, '').replace(/\n$/, '');
  }

  /** Types `poweroff -f` and waits for tsvmm to exit. */
  async powerOff(): Promise<Exit> {
    this.vm.child.stdin.write('poweroff -f\n');
    return this.vm.exited;
  }

  kill(): void {
    this.vm.child.kill('SIGKILL');
  }
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
