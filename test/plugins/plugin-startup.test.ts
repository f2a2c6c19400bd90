// Starting plugins: what the user sees when a plugin cannot start or dies before it is ready,
// and the kernel command line the slots produce.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, test } from 'vitest';
import { vmmNative } from '../../native/vmm.ts';
import { Errno } from '../../wire/protocol.ts';
import { buildMemoryMap, MiB } from '../../base/memory-map.ts';
import { builtinPluginArgv, startPluginManager, type PluginManager } from '../../vmm/plugin-host/manager.ts';
import { cpuLessWiring, startHarness, type Harness } from './support/harness.ts';

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

describe('plugins started before the VM exists (how tsvmm run starts them)', () => {
  let m: PluginManager | undefined;
  const cpu = cpuLessWiring();
  afterEach(async () => {
    await m?.shutdown();
    m = undefined;
  });
  afterAll(() => cpu.stop());

  test('the handshake waits for attachMachine; in-process ranges on the worker are protected', async () => {
    const native = vmmNative();
    const ramFd = native.memfdCreate('deferred-ram', 16 * MiB);
    m = startPluginManager({
      memoryMap: buildMemoryMap(16 * MiB),
      inProcess: [{ bus: 'pio', start: 0x6010, size: 8, name: 'worker-side test device' }],
      log: () => undefined,
    });
    const slot = m.addArgv(builtinPluginArgv('probe'), 'probe');
    const ready = m.waitReady();
    m.attachMachine({ ram: [{ fd: ramFd, guestPhys: 0, size: 16 * MiB }], wiring: cpu.wiring });
    await ready;
    expect(m.registry.list().filter((e) => e.kind === 'ioregion' && e.bus === 'mmio').map((e) => e.start - slot.mmioBase)).toEqual([0, 0x100, 0x200]);
    // A registration over the worker-side device is refused; a late device over a plugin region too.
    const owner = { name: 'other', mmio: { start: 0, size: 0 }, pio: { start: 0x6000, size: 0x100 }, maxEntries: 4 };
    const r = m.registry.ioregion(owner, { guestPaddr: 0x6014n, memorySize: 4n, userData: 0n, flags: 1 });
    expect(r.ok ? 0 : r.errno).toBe(Errno.EEXIST);
    expect(() => m!.registry.reserveInProcess('mmio', slot.mmioBase, 0x10, 'late device')).toThrow(/overlaps ioregion/);
    native.closeFd(ramFd);
  });

  test('RAM that is not a memfd is refused with a clear error', () => {
    m = startPluginManager({ memoryMap: buildMemoryMap(16 * MiB), log: () => undefined });
    expect(() => m!.attachMachine({ ram: [{ fd: -1, guestPhys: 0, size: 16 * MiB }], wiring: cpu.wiring })).toThrow(/not backed by a memfd.*sharedGuestRam/);
  });
});

describe('plugin command-line options', () => {
  test('--disk values are checked before anything starts, with the fix in the message', async () => {
    const { parseDisk, checkPluginSocket } = await import('../../cli/plugin-options.ts');
    const dir = mkdtempSync(join(tmpdir(), 'tsvmm-opts-'));
    const img = join(dir, 'd.img');
    const { writeFileSync } = await import('node:fs');
    writeFileSync(img, Buffer.alloc(4096));
    expect(parseDisk(img)).toEqual({ path: img, readonly: false });
    expect(parseDisk(`${img},readonly`)).toEqual({ path: img, readonly: true });
    expect(() => parseDisk(`${img},fast`)).toThrow(/unknown flag 'fast'/);
    expect(() => parseDisk(join(dir, 'nope.img'))).toThrow(/no such file .*truncate -s/);
    expect(() => parseDisk('')).toThrow(/needs a path/);
    expect(() => checkPluginSocket(img)).toThrow(/exists and is not a socket/);
    expect(checkPluginSocket(join(dir, 'p.sock'))).toBe(join(dir, 'p.sock'));
    rmSync(dir, { recursive: true, force: true });
  });
});

describe('IrqMailbox (plugin interrupts on backends without irqfd)', () => {
  test('pulses posted on one thread are taken once, per line, on a worker thread', async () => {
    const { IrqMailbox } = await import('../../hypervisors/interp/irq-mailbox.ts');
    const { Worker } = await import('node:worker_threads');
    const main = new IrqMailbox();
    main.post(5);
    main.post(5);
    main.post(11);
    const worker = new Worker(`
      const { parentPort, workerData } = require('node:worker_threads');
      const word = new Int32Array(workerData);
      let bits = Atomics.exchange(word, 0, 0);
      parentPort.postMessage(bits);
    `, { eval: true, workerData: main.buffer });
    const bits = await new Promise<number>((resolve) => worker.once('message', resolve));
    await worker.terminate();
    expect(bits).toBe((1 << 5) | (1 << 11));
    const pulses: [number, boolean][] = [];
    main.post(31);
    expect(new IrqMailbox(main.buffer).take((g, l) => pulses.push([g, l]))).toBe(true);
    expect(pulses).toEqual([[31, true], [31, false]]);
    expect(main.take(() => undefined)).toBe(false);
    expect(() => main.post(32)).toThrow(/outside 0-31/);
  });
});
