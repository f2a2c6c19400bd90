// Boots the x86_64 guest on KVM to a shell. It needs hardware virtualization: on hosts whose
// KVM runs guest kernel code in its emulator (this project's CI machines), Linux cannot boot,
// and the test says so and skips.
import { afterAll, describe, expect, test } from 'vitest';
import { READY_MARKER } from '../../firmware/images/recipe.ts';
import { probeKvm } from '../../hypervisors/kvm/probe.ts';
import { GuestShell } from '../support/guest-shell.ts';
import { runGuestCommands } from './commands.ts';

const probe = probeKvm();
const skipReason = !probe.available
  ? `KVM is not available: ${probe.reason}`
  : !probe.nativeKernelMode
    ? `KVM cannot boot Linux on this host: ${probe.reason}`
    : undefined;
if (skipReason) console.warn(`SKIP Linux-on-KVM boot test: ${skipReason}`);

describe.skipIf(skipReason !== undefined)('x86_64 Linux guest on KVM', () => {
  let shell: GuestShell | undefined;
  afterAll(() => shell?.kill());

  test('boots to the marker, runs the shared command table, powers off with exit 0', async () => {
    shell = await GuestShell.boot(['run', '--backend', 'kvm', '--image', 'x86_64', '--mem', '256M'], READY_MARKER);
    for (const { command, output } of await runGuestCommands(shell, 'x86_64')) {
      if (typeof command.expected === 'string') expect(output, command.what).toBe(command.expected);
      else expect(output, command.what).toMatch(command.expected);
    }
    const memTotalKiB = Number((await shell.run("awk '/MemTotal/ {print $2}' /proc/meminfo")).trim());
    expect(memTotalKiB).toBeGreaterThan(200 * 1024);
    expect(memTotalKiB).toBeLessThanOrEqual(256 * 1024);
    const exit = await shell.powerOff();
    expect(exit.code).toBe(0);
  });
});
