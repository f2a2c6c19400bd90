// The commands every Linux boot test runs through the guest console, with what each must print.
// One table for all backends (interpreter, KVM): the same guest userland must give the same
// answers wherever it runs; only `uname -m` depends on the guest architecture.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { recipePath } from '../../firmware/images/recipe.ts';
import type { GuestShell } from '../support/guest-shell.ts';

export type GuestArch = 'i386' | 'x86_64';

export interface GuestCommand {
  /** What the command checks, for test names and failure messages. */
  what: string;
  command: string;
  /** The exact output, or a pattern the whole output must match. */
  expected: string | RegExp;
}

/** sha256 of the guest's /init, as the host computes it from the recipe file it was built from. */
function hostInitSha256(): string {
  return createHash('sha256').update(readFileSync(recipePath('init'))).digest('hex');
}

export function guestCommands(arch: GuestArch): GuestCommand[] {
  return [
    { what: 'machine name', command: 'uname -m', expected: arch === 'x86_64' ? 'x86_64' : /^i[3-6]86$/ },
    { what: 'shell arithmetic', command: 'echo $(( (6 * 7) << 2 )) $(( 1000000 / 7 % 1000 ))', expected: '168 857' },
    {
      what: 'procfs',
      command: 'ls /proc | grep -E "^(1|cpuinfo|meminfo|uptime|self)$" | sort | tr "\\n" " "',
      expected: '1 cpuinfo meminfo self uptime ',
    },
    // On the i386 guest this is x87 code run by the kernel's FPU emulator (CR0.EM, no FPU).
    { what: 'floating point in awk', command: "awk 'BEGIN{print 355/113}'", expected: '3.14159' },
    { what: 'sha256 of a file in the initramfs', command: 'sha256sum /init', expected: `${hostInitSha256()}  /init` },
  ];
}

/** Runs every command of the table, in order, and returns each with its output. */
export async function runGuestCommands(shell: GuestShell, arch: GuestArch): Promise<{ command: GuestCommand; output: string }[]> {
  const results: { command: GuestCommand; output: string }[] = [];
  for (const command of guestCommands(arch)) results.push({ command, output: await shell.run(command.command) });
  return results;
}
