// Starting plugins: what the user sees when a plugin cannot start or dies before it is ready,
// and the kernel command line the slots produce.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { startHarness, type Harness } from './support/harness.ts';

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

describe('plugin start-up failures', () => {
  test('--disk with a missing image: waitReady names the plugin and shows its error', async () => {
    h = startHarness();
    const dir = mkdtempSync(join(tmpdir(), 'tsvmm-startup-'));
    h.manager.addDisk(join(dir, 'missing.img'));
    await expect(h.manager.waitReady()).rejects.toThrow(/virtio-blk\(.*missing\.img\) failed before it was ready[\s\S]*cannot open .*missing\.img/);
    rmSync(dir, { recursive: true, force: true });
  });

  test('--device with a command that exits: its status is reported', async () => {
    h = startHarness();
    h.manager.addCommand('echo about to fail >&2; exit 3', 'broken-device');
    await expect(h.manager.waitReady()).rejects.toThrow(/broken-device failed before it was ready[\s\S]*about to fail/);
    await h.waitLog(/broken-device.*exited with status 3/);
  });

  test('slots become virtio_mmio.device= words in slot order', () => {
    h = startHarness();
    h.manager.addSocket(join(tmpdir(), `tsvmm-cmdline-${process.pid}-a.sock`));
    h.manager.addSocket(join(tmpdir(), `tsvmm-cmdline-${process.pid}-b.sock`));
    expect(h.manager.kernelCmdline()).toEqual(['virtio_mmio.device=4K@0xd0000000:5', 'virtio_mmio.device=4K@0xd0001000:6']);
  });
});
