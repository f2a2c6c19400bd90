// `tsvmm run` end to end on the KVM backend with bare-metal guests: console output and input,
// and how each way of ending a guest maps to an exit code. These guests run at CPL0, which this
// project's KVM hosts execute in KVM's emulator: slow, but fine for a few hundred instructions.
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { builtinPluginArgv } from '../../vmm/plugin-host/manager.ts';
import { kvmSkipReason as probeSkipReason } from '../guests/guest.ts';
import { TSVMM_BIN, TsvmmProcess, runTsvmm } from '../support/tsvmm-process.ts';
import { printThenHalt, printThenReset, pvhElf, serialEcho } from './fixtures/bare-metal-elf.ts';

const kvmSkipReason = probeSkipReason();
if (kvmSkipReason) console.warn(`SKIP tsvmm run lifecycle tests: ${kvmSkipReason}`);

const dir = mkdtempSync(join(tmpdir(), 'tsvmm-lifecycle-'));
function kernel(name: string, image: Uint8Array): string {
  const path = join(dir, name);
  writeFileSync(path, pvhElf(image));
  return path;
}
const run = (path: string, ...extra: string[]) => ['run', '--backend', 'kvm', '--kernel', path, '--mem', '32M', ...extra];

describe.skipIf(kvmSkipReason !== undefined)('tsvmm run lifecycle (KVM, bare-metal guests)', () => {
  test('guest output reaches the terminal; an i8042 reset ends the run with exit 0', async () => {
    const r = await runTsvmm(run(kernel('hello.elf', printThenReset('hello from the guest\n'))));
    expect(r.stdout).toContain('hello from the guest');
    expect(r.stderr).toMatch(/guest finished: the guest pulsed the i8042 reset line/);
    expect(r.code).toBe(0);
  });

  test('a guest that halts with interrupts off (Linux power-off without ACPI) ends the run with exit 0', async () => {
    const r = await runTsvmm(run(kernel('halt.elf', printThenHalt('powering off\n'))));
    expect(r.stdout).toContain('powering off');
    expect(r.stderr).toMatch(/guest finished: the guest halted with interrupts disabled/);
    expect(r.code).toBe(0);
  });

  test('a kernel panic banner on the console makes the run fail, showing the last lines', async () => {
    const r = await runTsvmm(run(kernel('panic.elf', printThenReset('booting\nKernel panic - not syncing: test panic\n')), '--no-stdio'));
    expect(r.stderr).toMatch(/guest kernel panic: Kernel panic - not syncing: test panic/);
    expect(r.stderr).toMatch(/\| booting/);
    expect(r.code).toBe(1);
  });

  test('terminal input reaches the guest; SIGTERM stops the VM cleanly with 128+15', async () => {
    const p = new TsvmmProcess(run(kernel('echo.elf', serialEcho())));
    await p.waitFor(/VM running/, 'stderr');
    p.child.stdin.write('ping-123\n');
    await p.waitFor(/ping-123/);
    p.child.kill('SIGTERM');
    const r = await p.exited;
    expect(r.stderr).toMatch(/stopped by SIGTERM/);
    expect(r.code).toBe(143);
  });

  test('a signal to the whole process group (a terminal\'s Ctrl-C, a supervisor) reaches the VMM, which shuts its plugins down', async () => {
    const p = new TsvmmProcess(run(kernel('group.elf', serialEcho())), {}, { processGroup: true });
    await p.waitFor(/VM running/, 'stderr');
    process.kill(-p.child.pid!, 'SIGINT');
    const r = await p.exited;
    expect(r.code).toBe(130);
    // The plugins were not hit by the signal: no failure, no restart, their SHUTDOWN answered.
    expect(r.stderr).not.toMatch(/failed:|restarting plugin|shutdown:/);
  });

  test('when tsvmm is killed, its plugins see the control socket close and exit by themselves', async () => {
    const socket = join(dir, 'orphan.sock');
    const p = new TsvmmProcess(run(kernel('orphan.elf', serialEcho()), '--no-stdio', '--plugin-socket', socket));
    await p.waitFor(/VM running/, 'stderr');
    // The docs' example plugin, started by hand so that this test is its parent and sees it exit.
    const [node, ...args] = builtinPluginArgv('example');
    const plugin = spawn(node!, args, { env: { ...process.env, TSVMM_PLUGIN_SOCKET: socket }, stdio: 'ignore' });
    const exited = new Promise<[number | null, string | null]>((resolve) => plugin.once('exit', (code, signal) => resolve([code, signal])));
    await p.waitFor(/example device ready/, 'stderr');
    p.child.kill('SIGKILL');
    expect(await exited).toEqual([0, null]);
  });

  test('Ctrl-A x quits with exit 0; Ctrl-A Ctrl-A sends one Ctrl-A to the guest', async () => {
    const p = new TsvmmProcess(run(kernel('echo2.elf', serialEcho())));
    await p.waitFor(/VM running/, 'stderr');
    p.child.stdin.write('a\x01\x01b\n');
    await p.waitFor(/a\x01b/);
    p.child.stdin.write('\x01x');
    const r = await p.exited;
    expect(r.stderr).toMatch(/quit with Ctrl-A x/);
    expect(r.code).toBe(0);
  });
});

describe.skipIf(kvmSkipReason !== undefined)('terminal restored on every way out (real TTY through script(1))', () => {
  // `stty -g` prints the terminal's settings; tsvmm puts the TTY in raw mode while it runs. The
  // shell in script(1)'s pseudo-terminal prints them before and after, and tsvmm's exit status.
  async function sttyAround(tsvmmArgs: string[], killWith?: 'TERM'): Promise<string[]> {
    const log = join(dir, `tty-${Math.random().toString(36).slice(2)}.log`);
    const start = `node ${TSVMM_BIN} ${tsvmmArgs.join(' ')} >/dev/null 2>${log} & pid=$!; `;
    // Wait (polling a real condition) until the VM runs, then signal it.
    const kill = killWith ? `until grep -q 'VM running' ${log}; do sleep 0.05; done; kill -${killWith} $pid; ` : '';
    const cmd = `stty -g; ${start}${kill}wait $pid; echo "exit=$?"; stty -g`;
    const child = spawn('script', ['-qec', cmd, '/dev/null'], { stdio: ['pipe', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    await new Promise((r) => child.on('close', r));
    return out.split(/\r?\n/).map((l) => l.trim()).filter((l) => /^[0-9a-f:]{20,}$|^exit=/.test(l));
  }

  test('after the guest resets', async () => {
    const [before, exit, after] = await sttyAround(run(kernel('tty-hello.elf', printThenReset('hi\n'))));
    expect(exit).toBe('exit=0');
    expect(after).toBe(before);
  });

  test('after SIGTERM', async () => {
    const [before, exit, after] = await sttyAround(run(kernel('tty-echo.elf', serialEcho())), 'TERM');
    expect(exit).toBe('exit=143');
    expect(after).toBe(before);
  });
});
