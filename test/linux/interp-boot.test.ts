// Boots the i386 guest on the interpreter backend through the real `tsvmm run`, as a user
// would: to the readiness marker, then the shared command table (test/linux/commands.ts)
// through the serial console, then `poweroff -f`, which must end tsvmm with exit code 0.
// The interpreter needs nothing from the host, so these tests never skip.
import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, test } from 'vitest';
import { READY_MARKER } from '../../firmware/images/recipe.ts';
import { GuestShell } from '../support/guest-shell.ts';
import { runTsvmm } from '../support/tsvmm-process.ts';
import { guestCommands } from './commands.ts';

const INTERP = ['run', '--backend', 'interp', '--image', 'i386', '--mem', '128M'];
// Generous: the first run may wait for the guest image build, and CI machines are shared.
const BOOT_TIMEOUT_MS = 15 * 60_000;

describe('i386 Linux guest on the interpreter', () => {
  let shell: GuestShell | undefined;
  afterEach(() => { shell?.kill(); shell = undefined; });

  test('boots to the marker, answers the command table, powers off with exit 0', async () => {
    shell = await GuestShell.boot(INTERP, READY_MARKER);
    expect(shell.vm.stderr).toMatch(/backend interp: requested with --backend interp/);
    for (const c of guestCommands('i386')) {
      const output = await shell.run(c.command);
      if (typeof c.expected === 'string') expect(output, c.what).toBe(c.expected);
      else expect(output, c.what).toMatch(c.expected);
    }
    const exit = await shell.powerOff();
    expect(exit.code, exit.stderr).toBe(0);
    expect(exit.stderr).toMatch(/guest finished/);
  }, BOOT_TIMEOUT_MS);

  test('an idle guest at the shell prompt uses well under 10% of a core', async () => {
    shell = await GuestShell.boot(INTERP, READY_MARKER);
    expect(await shell.run('echo idle')).toBe('idle'); // the shell is up and waiting for input
    const pid = shell.vm.child.pid!;
    // Not sleeps standing in for synchronisation: the measurement is CPU time over 5 s of wall
    // time in which the guest has nothing to do, taken after 3 s in which the just-booted guest
    // and V8's background compiler settle (the platform starts batching idle ticks after ~0.1 s).
    await new Promise((r) => setTimeout(r, 3000));
    const before = cpuSeconds(pid);
    const wallBefore = performance.now();
    await new Promise((r) => setTimeout(r, 5000));
    const used = cpuSeconds(pid) - before;
    const wall = (performance.now() - wallBefore) / 1000;
    console.log(`idle guest: ${used.toFixed(3)} s of CPU in ${wall.toFixed(2)} s (${((100 * used) / wall).toFixed(1)}% of a core)`);
    expect(used / wall).toBeLessThan(0.1);
    expect(await shell.run('echo still here')).toBe('still here');
    expect((await shell.powerOff()).code).toBe(0);
  }, BOOT_TIMEOUT_MS);

  test('--deterministic: two boots print the same transcript', async () => {
    // tsvmm_run makes /init run the command and power off: no console input whose arrival
    // time could differ between the runs. The command shows guest time and the RTC date.
    const args = [...INTERP, '--deterministic', '--append', 'tsvmm_run="cat /proc/uptime; date -u; dmesg | tail -3"'];
    const first = await runTsvmm(args);
    const second = await runTsvmm(args);
    expect(first.code, first.stderr).toBe(0);
    expect(second.code, second.stderr).toBe(0);
    expect(first.stdout).toContain(READY_MARKER);
    expect(first.stdout).toMatch(/TSVMM-EXIT 0/);
    expect(second.stdout).toBe(first.stdout);
  }, BOOT_TIMEOUT_MS);

  test('--deterministic is refused for the KVM backend', async () => {
    const exit = await runTsvmm(['run', '--backend', 'kvm', '--deterministic']);
    expect(exit.code).toBe(2);
    expect(exit.stderr).toMatch(/--deterministic: only the interpreter backend .*--backend interp/);
  }, 60_000);
});

/** utime + stime of every thread of process `pid`, in seconds (/proc/<pid>/stat). */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields after the command name start at field 3 (state); utime and stime are fields 14, 15.
  const ticks = Number(fields[14 - 3]) + Number(fields[15 - 3]);
  return ticks / 100; // USER_HZ is 100 on Linux
}
