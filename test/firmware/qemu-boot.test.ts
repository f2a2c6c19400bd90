// The guest images boot: each architecture's kernel and initramfs under QEMU (TCG, the peer
// VMM from Debian) reach the readiness marker, run commands in the console shell with job
// control, and end the VM on `poweroff`. This checks the recipe (kernel config, /init, busybox)
// independently of tsvmm's own backends; the loader has its own tests.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { afterEach, describe, expect, test } from 'vitest';
import { imagePaths, EXIT_MARKER, GUEST_PROMPT, IMAGE_ARCHS, READY_MARKER, type ImageArch } from '../../firmware/images/build.ts';

const QEMU: Record<ImageArch, { binary: string; args: string[] }> = {
  x86_64: { binary: '/usr/bin/qemu-system-x86_64', args: ['-M', 'microvm,acpi=off'] },
  // The i386 guest has no local APIC: give QEMU a CPU without one (as guest-kernel.md does).
  i386: { binary: '/usr/bin/qemu-system-i386', args: ['-M', 'microvm,acpi=off', '-cpu', 'qemu32,-apic'] },
};

function skipReason(arch: ImageArch): string | undefined {
  if (!imagePaths(arch).built) return `no ${arch} guest images (build them with \`tsvmm image build\`)`;
  if (!existsSync(QEMU[arch].binary)) return `${QEMU[arch].binary} not found (apt-get install qemu-system-x86)`;
  return undefined;
}
for (const arch of IMAGE_ARCHS) {
  const why = skipReason(arch);
  if (why) console.warn(`qemu-boot.test: skipping the ${arch} QEMU boots: ${why}`);
}

interface Guest {
  /** Resolves when the console output (from the start) matches. */
  waitFor(pattern: RegExp): Promise<string>;
  send(text: string): void;
  exited: Promise<number | null>;
  output(): string;
}

/** Console on the serial port (stdio), or on a virtio console (stdio) with the serial port discarded. */
type ConsoleKind = 'serial' | 'virtio';

/** QEMU processes of the current test: a failed test must not leave its VM running. */
const running = new Set<ChildProcess>();
afterEach(() => {
  for (const child of running) child.kill('SIGKILL');
  running.clear();
});

function boot(arch: ImageArch, kernel: string, initrd: string, extraCmdline = '', consoleKind: ConsoleKind = 'serial'): Guest {
  const cmdline = `console=ttyS0 reboot=t panic=-1 ${extraCmdline}`.trim();
  // With acpi=off, microvm announces its virtio-mmio devices on the kernel command line.
  const consoleArgs = consoleKind === 'serial'
    ? ['-serial', 'stdio']
    : ['-serial', 'null', '-device', 'virtio-serial-device', '-chardev', 'stdio,id=c0', '-device', 'virtconsole,chardev=c0'];
  const child = spawn(QEMU[arch].binary, [
    ...QEMU[arch].args, '-m', '128M', '-nodefaults', '-no-user-config', '-display', 'none', ...consoleArgs,
    '-no-reboot', '-kernel', kernel, '-initrd', initrd, '-append', cmdline,
  ], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  const waiters: { pattern: RegExp; resolve: (s: string) => void }[] = [];
  const check = (): void => {
    for (const w of [...waiters]) {
      if (w.pattern.test(out)) { waiters.splice(waiters.indexOf(w), 1); w.resolve(out); }
    }
  };
  child.stdout.on('data', (d: Buffer) => { out += d.toString('latin1'); check(); });
  child.stderr.on('data', (d: Buffer) => { out += d.toString('latin1'); });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  running.add(child);
  void exited.then(() => running.delete(child));
  return {
    waitFor: (pattern) => new Promise((resolve, reject) => {
      // A bound on a failure, not a synchronisation: report the console instead of a bare test timeout.
      const deadline = setTimeout(() => reject(new Error(`no ${pattern} within 60 s; console:\n${out}`)), 60_000);
      waiters.push({ pattern, resolve: (o) => { clearTimeout(deadline); resolve(o); } });
      check();
      void exited.then(() => {
        if (!pattern.test(out)) { clearTimeout(deadline); reject(new Error(`QEMU exited before ${pattern}; console:\n${out}`)); }
      });
    }),
    send: (text) => { child.stdin.write(text); },
    exited,
    output: () => out,
  };
}

for (const arch of IMAGE_ARCHS) {
  describe.skipIf(skipReason(arch) !== undefined)(`${arch} guest under QEMU`, () => {
    const paths = imagePaths(arch);
    const machine = arch === 'x86_64' ? /x86_64/ : /i[3-6]86/;

    test('vmlinux (PVH) + raw cpio: marker, interactive shell with job control and Ctrl-C, poweroff ends the VM', async () => {
      const g = boot(arch, paths.vmlinux, paths.initramfs);
      await g.waitFor(new RegExp(READY_MARKER));
      await g.waitFor(new RegExp(`${READY_MARKER}[\\s\\S]*${GUEST_PROMPT.replace(/[#$]/g, '\\$&')}`));
      g.send('uname -m; echo sum=$((6*7)); tty; cut -d" " -f5,7,8 /proc/self/stat\n');
      // Wait for the whole line: output arrives in pieces, and "24" may come as "2" then "4".
      const out = await g.waitFor(/sum=42[\s\S]*\/dev\/ttyS0\s+-?\d+ -?\d+ -?\d+\r?\n/);
      expect(out).toMatch(machine);
      // Job control works: the command runs in its own process group, which is the foreground
      // group of its controlling terminal (tty_nr != 0; without a controlling tty tpgid is -1).
      const [pgrp, ttyNr, tpgid] = /\/dev\/ttyS0\s+(-?\d+) (-?\d+) (-?\d+)/.exec(out)!.slice(1).map(Number);
      expect(ttyNr, out).not.toBe(0);
      expect(tpgid, out).toBe(pgrp);
      // Ctrl-C interrupts a foreground command (SIGINT reaches it through the terminal).
      // The child prints "started" only once it is the terminal's foreground process group
      // (the shell hands the terminal over before the child runs), so the ^C cannot come early.
      g.send(`sh -c 'echo started; exec sleep 1000'; echo not-interrupted\n`);
      await g.waitFor(/started\r?\n/);
      g.send('\x03');
      g.send('echo alive=$((1+1))\n');
      const after = await g.waitFor(/alive=2\r?\n/);
      expect(after).not.toMatch(/^not-interrupted\r?$/m); // (the echoed command line contains it, not alone)
      g.send('poweroff\n');
      expect(await g.exited).toBe(0);
    });

    test('tsvmm_console=hvc0 puts the shell on the virtio console', async () => {
      const g = boot(arch, paths.vmlinux, paths.initramfs, 'tsvmm_console=hvc0', 'virtio');
      await g.waitFor(/# /);
      g.send('tty; echo sum=$((2*3))\n');
      const out = await g.waitFor(/sum=6\r?\n/);
      expect(out).toMatch(/^\/dev\/hvc0\r?$/m);
      g.send('poweroff\n');
      expect(await g.exited).toBe(0);
    });

    test('bzImage + cpio.gz with tsvmm_run: runs the command, prints its status, ends the VM', async () => {
      const g = boot(arch, paths.bzImage, paths.initramfsGz, 'tsvmm_run="uname -m; mount | grep -c -e devtmpfs -e proc -e sysfs; exit 3"');
      expect(await g.exited).toBe(0);
      const out = g.output();
      expect(out).toContain(READY_MARKER);
      expect(out).toMatch(machine);
      expect(out).toMatch(/^3\r?$/m);
      expect(out).toContain(`${EXIT_MARKER} 3`);
    });
  });
}
