// The CLI as users meet it: help, and every bad input ending in a clear message and exit code 2.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { runTsvmm } from '../support/tsvmm-process.ts';

const dir = mkdtempSync(join(tmpdir(), 'tsvmm-cli-'));

describe('tsvmm CLI', () => {
  test('--help lists the commands and options', async () => {
    const r = await runTsvmm(['--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/tsvmm run \[options\]/);
    for (const option of ['--kernel', '--initrd', '--cmdline', '--mem', '--image', '--backend', '--console']) {
      expect(r.stdout).toContain(option);
    }
    expect((await runTsvmm(['run', '--help'])).stdout).toMatch(/Ctrl-A x/);
  });

  test.each([
    [['run', '--kernel', join(dir, 'missing-bzImage')], /--kernel .*missing-bzImage: no such file; check the path/],
    [['run', '--kernel', dir], /is a directory/],
    [['run', '--mem', 'lots'], /--mem: "lots" is not a size; write it like 256M/],
    [['run', '--mem', '1M'], /--mem 1M: guest RAM size .* out of range: use between 16 MiB and 64 GiB/],
    [['run', '--backend', 'xen'], /--backend xen: not one of auto, kvm, interp/],
    [['run', '--image', 'arm64'], /--image arm64: not one of x86_64, i386/],
    [['run', '--console', 'tty1'], /--console tty1: not one of ttyS0, hvc0/],
    [['run', '--frobnicate'], /Unknown option '--frobnicate'.*see tsvmm --help/],
    [['run', '--backend', 'interp', '--image', 'x86_64'], /interpreter backend runs 32-bit x86 guests; use --image i386/],
    [['reboot'], /unknown command "reboot"/],
    [['image', 'delete'], /the only image command is "tsvmm image build"/],
  ])('tsvmm %j → exit 2', async (args, message) => {
    const r = await runTsvmm(args);
    expect(r.stderr).toMatch(message);
    expect(r.code).toBe(2);
  });

  test('bad input found while the device plugins start: the message and exit 2, no stack trace from tsvmm or its plugins', async () => {
    // The console plugin is still in its handshake when the image is refused and it is shut down.
    const r = await runTsvmm(['run', '--backend', 'interp', '--image', 'x86_64', '--no-stdio']);
    expect(r.stderr).toMatch(/--image x86_64: the interpreter backend runs 32-bit x86 guests; use --image i386/);
    expect(r.code).toBe(2);
    expect(r.stderr).not.toMatch(/^\s+at |Node\.js v\d|\bError: /m);
    expect(r.stderr).not.toMatch(/virtio-console/);
  });

  test('--web on a port that is taken: the message with the fix and exit 2, no stack trace', async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const port = (taken.address() as AddressInfo).port;
    const kernel = join(dir, 'web-kernel');
    writeFileSync(kernel, 'never booted: the web console fails first');
    try {
      const r = await runTsvmm(['run', '--backend', 'interp', '--kernel', kernel, '--no-stdio', '--web', `127.0.0.1:${port}`]);
      expect(r.stderr).toMatch(/cannot serve the web console on 127\.0\.0\.1:\d+: EADDRINUSE: the port is in use; choose another/);
      expect(r.code).toBe(2);
      expect(r.stderr).not.toMatch(/^\s+at |internal error/m);
    } finally {
      taken.close();
    }
  });

  test('a kernel file that is neither bzImage nor ELF is refused with exit 2', async () => {
    const bogus = join(dir, 'notes.txt');
    writeFileSync(bogus, 'this is not a kernel\n'.repeat(100));
    const r = await runTsvmm(['run', '--backend', 'interp', '--kernel', bogus, '--no-stdio']);
    expect(r.stderr).toMatch(/neither a bzImage nor an ELF|not a bzImage|not an ELF/i);
    expect(r.code).toBe(2);
  });

  test('no usable /dev/kvm: --backend kvm says so and how to fix it', async () => {
    const r = await runTsvmm(['run', '--backend', 'kvm', '--no-stdio'], { TSVMM_KVM_DEVICE: join(dir, 'no-such-kvm') });
    expect(r.stderr).toMatch(/--backend kvm: .*no-such-kvm/);
    expect(r.stderr).toMatch(/kvm/i);
    expect(r.code).toBe(2);
  });
});
