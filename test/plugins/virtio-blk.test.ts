// The virtio-blk plugin as a real process behind the real plugin manager, driven by a virtio
// driver in the test process through the same dispatch table a vCPU uses; the image is checked
// on the host. Also: malicious descriptors, and kill -9 of the plugin with the restarted process
// taking the device over (by hand, and by the manager's restart policy).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { BlkFeature, BlkStatus, BlkType } from '../../devices/plugins/virtio-blk/device.ts';
import { Reg, Status } from '../../devices/virtio/mmio-transport.ts';
import { DESC_F_NEXT } from '../../devices/virtio/queue.ts';
import { startHarness, type Harness } from './support/harness.ts';
import { TestVirtioDriver } from './support/virtio-driver.ts';

const IMAGE_SIZE = 1 << 20;
const HDR = 0x10_0000;
const DATA = 0x10_1000;
const STATUS = 0x10_3000;
const RINGS = 0x20_0000;

let dir: string;
let image: string;
let h: Harness;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'tsvmm-blk-'));
  image = join(dir, 'disk.img');
  const init = Buffer.alloc(IMAGE_SIZE);
  for (let i = 0; i < IMAGE_SIZE; i++) init[i] = i % 251;
  writeFileSync(image, init);
  h = startHarness();
});

afterEach(async () => {
  await h.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Issue one request and wait for its completion; returns [status, used length]. */
async function request(d: TestVirtioDriver, irq: number, type: number, sector: bigint, data: { len: number; write: boolean } | undefined): Promise<[number, number]> {
  const hdr = h.mem.range(HDR, 16);
  const hv = new DataView(hdr.buffer, hdr.byteOffset, 16);
  hv.setUint32(0, type, true);
  hv.setUint32(4, 0, true);
  hv.setBigUint64(8, sector, true);
  h.mem.range(STATUS, 1)[0] = 0xaa;
  const before = h.irqCount(irq);
  d.submit(0, [
    { addr: HDR, len: 16 },
    ...(data ? [{ addr: DATA, len: data.len, write: data.write }] : []),
    { addr: STATUS, len: 1, write: true },
  ]);
  await h.waitIrq(irq, before + 1);
  d.ackInterrupt();
  const used = d.takeUsed(0);
  expect(used).toHaveLength(1);
  return [h.mem.range(STATUS, 1)[0]!, used[0]![1]];
}

async function attachDisk(readonly = false): Promise<{ d: TestVirtioDriver; irq: number; slot: number }> {
  const slot = h.manager.addDisk(image, readonly);
  await h.manager.waitReady();
  // Its GET_REGION_IO_FDS description matched what it registered (checked before ready).
  expect(h.logs.filter((l) => /never registered/.test(l))).toEqual([]);
  const d = new TestVirtioDriver(h, slot.mmioBase, RINGS);
  expect(d.reg(Reg.MAGIC)).toBe(0x74726976);
  expect(d.reg(Reg.VERSION)).toBe(2);
  expect(d.reg(Reg.DEVICE_ID)).toBe(2);
  d.init(1, 16);
  return { d, irq: slot.irq, slot: slot.index };
}

describe('virtio-blk plugin', () => {
  test('reads, writes, flushes and identifies, with the image checked on the host', async () => {
    const { d, irq } = await attachDisk();
    expect(d.features & BlkFeature.FLUSH).toBeTruthy();
    expect(d.features & BlkFeature.SEG_MAX).toBeTruthy();
    expect(d.features & BlkFeature.BLK_SIZE).toBeTruthy();
    expect(d.features & BlkFeature.RO).toBeFalsy();
    expect(d.reg(Reg.CONFIG)).toBe(IMAGE_SIZE / 512); // capacity (low word)
    expect(d.reg(Reg.CONFIG + 20)).toBe(512); // blk_size

    const pattern = Uint8Array.from({ length: 4096 }, (_, i) => (i * 7 + 3) & 0xff);
    h.mem.write(DATA, pattern);
    expect(await request(d, irq, BlkType.OUT, 8n, { len: 4096, write: false })).toEqual([BlkStatus.OK, 1]);
    expect(await request(d, irq, BlkType.FLUSH, 0n, undefined)).toEqual([BlkStatus.OK, 1]);
    expect(Buffer.from(readFileSync(image).subarray(8 * 512, 8 * 512 + 4096)).equals(Buffer.from(pattern))).toBe(true);

    h.mem.fill(DATA, 8192, 0);
    expect(await request(d, irq, BlkType.IN, 8n, { len: 4096, write: true })).toEqual([BlkStatus.OK, 4097]);
    expect(Buffer.from(h.mem.read(DATA, 4096)).equals(Buffer.from(pattern))).toBe(true);
    expect(await request(d, irq, BlkType.IN, 0n, { len: 512, write: true })).toEqual([BlkStatus.OK, 513]);
    expect(h.mem.read(DATA, 4)).toEqual(Uint8Array.from([0, 1, 2, 3]));

    expect(await request(d, irq, BlkType.GET_ID, 0n, { len: 20, write: true })).toEqual([BlkStatus.OK, 21]);
    expect(new TextDecoder().decode(h.mem.read(DATA, 14))).toBe('tsvmm-disk.img');
  });

  test('requests past the end and unknown types fail with IOERR / UNSUPP', async () => {
    const { d, irq } = await attachDisk();
    const last = BigInt(IMAGE_SIZE / 512 - 1);
    expect((await request(d, irq, BlkType.IN, last, { len: 1024, write: true }))[0]).toBe(BlkStatus.IOERR);
    expect((await request(d, irq, BlkType.OUT, last + 1n, { len: 512, write: false }))[0]).toBe(BlkStatus.IOERR);
    expect((await request(d, irq, BlkType.IN, 1n << 60n, { len: 512, write: true }))[0]).toBe(BlkStatus.IOERR);
    expect((await request(d, irq, 99, 0n, undefined))[0]).toBe(BlkStatus.UNSUPP);
    // And it still works afterwards.
    expect((await request(d, irq, BlkType.IN, last, { len: 512, write: true }))[0]).toBe(BlkStatus.OK);
  });

  test('a read-only disk offers VIRTIO_BLK_F_RO and refuses writes with IOERR', async () => {
    const { d, irq } = await attachDisk(true);
    expect(d.features & BlkFeature.RO).toBeTruthy();
    h.mem.fill(DATA, 512, 0xee);
    expect((await request(d, irq, BlkType.OUT, 0n, { len: 512, write: false }))[0]).toBe(BlkStatus.IOERR);
    expect(readFileSync(image)[0]).toBe(0);
    expect((await request(d, irq, BlkType.IN, 1n, { len: 512, write: true }))[0]).toBe(BlkStatus.OK);
    expect(h.mem.read(DATA, 1)[0]).toBe(512 % 251);
  });

  const malicious: [string, (d: TestVirtioDriver) => void][] = [
    ['a buffer outside guest RAM', (d) => d.submit(0, [{ addr: HDR, len: 16 }, { addr: 0x7fff_0000_0000, len: 512, write: true }, { addr: STATUS, len: 1, write: true }])],
    ['a buffer in the LAPIC/MSI reserved range', (d) => d.submit(0, [{ addr: HDR, len: 16 }, { addr: 0xfee0_0000, len: 512, write: true }, { addr: STATUS, len: 1, write: true }])],
    ['a buffer in the device window', (d) => d.submit(0, [{ addr: 0xd000_0000, len: 16 }, { addr: STATUS, len: 1, write: true }])],
    ['a buffer straddling the end of RAM', (d) => d.submit(0, [{ addr: HDR, len: 16 }, { addr: 32 * 1024 * 1024 - 256, len: 512, write: true }, { addr: STATUS, len: 1, write: true }])],
    ['a descriptor loop', (d) => d.submit(0, [{ addr: HDR, len: 16 }, { addr: DATA, len: 512, write: true, next: 0, flags: DESC_F_NEXT | 2 }])],
    ['an avail index far ahead of the queue', (d) => { d.setAvailIdx(0, 1000); d.notify(0); }],
  ];
  for (const [what, attack] of malicious) {
    test(`${what}: device error (DEVICE_NEEDS_RESET), logged, and the device keeps serving`, async () => {
      const { d, irq } = await attachDisk();
      const before = h.irqCount(irq);
      attack(d);
      await h.waitIrq(irq, before + 1); // configuration-change interrupt
      expect(d.ackInterrupt() & 2).toBe(2);
      expect(d.reg(Reg.STATUS) & Status.DEVICE_NEEDS_RESET).toBe(Status.DEVICE_NEEDS_RESET);
      await h.waitLog(/device error, needs reset/);
      // The driver resets the device, as Linux does, and carries on.
      d.init(1, 16);
      expect((await request(d, irq, BlkType.IN, 0n, { len: 512, write: true }))[0]).toBe(BlkStatus.OK);
    });
  }

  test('kill -9 of the plugin: the slot reads all-ones; a restarted plugin takes over, fails what was outstanding, serves again', async () => {
    const { d, irq, slot } = await attachDisk();
    expect((await request(d, irq, BlkType.IN, 0n, { len: 512, write: true }))[0]).toBe(BlkStatus.OK);
    const pid = h.manager.slots[0]!.pid!;
    process.kill(pid, 'SIGKILL');
    const line = await h.waitLog(/failed: .*(SIGKILL|closed)/);
    expect(line).toContain('virtio-blk');
    // Its regions are gone from the dispatch table: the access falls through to the VMM's I/O
    // bus, which answers unclaimed reads with all-ones.
    expect(h.read(d.base + Reg.MAGIC, 4)).toBeUndefined();
    expect(h.manager.slots[0]!.state).toBe('failed');
    // Guest I/O issued to the dead device: its doorbell goes nowhere.
    h.mem.fill(STATUS, 1, 0xaa);
    d.submit(0, [{ addr: HDR, len: 16 }, { addr: DATA, len: 512, write: true }, { addr: STATUS, len: 1, write: true }]);

    const before = h.irqCount(irq);
    h.manager.restart(slot);
    await h.manager.whenReady(slot);
    await h.waitIrq(irq, before + 1);
    expect(d.reg(Reg.STATUS) & Status.DRIVER_OK).toBe(Status.DRIVER_OK); // not reset: taken over
    expect(d.ackInterrupt() & 1).toBe(1);
    expect(d.takeUsed(0)).toEqual([[expect.any(Number), 1]]);
    expect(h.mem.range(STATUS, 1)[0]).toBe(BlkStatus.IOERR);
    await h.waitLog(/completed the 1 request outstanding when the previous process died with IOERR/);
    expect((await request(d, irq, BlkType.IN, 0n, { len: 512, write: true }))[0]).toBe(BlkStatus.OK);
  });

  test('a machine reset while the plugin is dead: the next process starts from power-on, not from the old queues', async () => {
    const { d, slot } = await attachDisk();
    process.kill(h.manager.slots[0]!.pid!, 'SIGKILL');
    await h.waitLog(/failed: .*(SIGKILL|closed)/);
    await h.manager.reset();
    h.manager.restart(slot);
    await h.manager.whenReady(slot);
    expect(d.reg(Reg.STATUS)).toBe(0);
    expect(h.logs.some((l) => /took the running device over/.test(l))).toBe(false);
  });
});

describe('virtio-blk plugin under the restart policy (tsvmm run)', () => {
  beforeEach(async () => {
    await h.close();
    h = startHarness({ restartPlugins: true });
  });

  test('kill -9 with a request outstanding: the manager restarts it and the request completes with IOERR', async () => {
    const { d, irq } = await attachDisk();
    expect((await request(d, irq, BlkType.IN, 0n, { len: 512, write: true }))[0]).toBe(BlkStatus.OK);
    const pid = h.manager.slots[0]!.pid!;
    // Stopped first, so the request below is certainly outstanding when the process dies.
    process.kill(pid, 'SIGSTOP');
    h.mem.fill(STATUS, 1, 0xaa);
    d.submit(0, [{ addr: HDR, len: 16 }, { addr: DATA, len: 512, write: true }, { addr: STATUS, len: 1, write: true }]);
    const before = h.irqCount(irq);
    process.kill(pid, 'SIGKILL');
    await h.waitLog(/restarting plugin virtio-blk/);
    await h.waitLog(/is back as pid \d+/);
    await h.waitIrq(irq, before + 1);
    d.ackInterrupt();
    expect(d.takeUsed(0)).toEqual([[expect.any(Number), 1]]);
    expect(h.mem.range(STATUS, 1)[0]).toBe(BlkStatus.IOERR);
    expect(h.manager.slots[0]!.pid).not.toBe(pid);
    expect((await request(d, irq, BlkType.IN, 0n, { len: 512, write: true }))[0]).toBe(BlkStatus.OK);
  });

  test('a plugin that keeps dying right after it starts is given up on after three tries', async () => {
    h.manager.addCommand('exit 3', 'crasher');
    const line = await h.waitLog(/crasher died \d+ times/);
    expect(line).toMatch(/died 3 times within 10 s of starting; not restarting it again/);
    expect(h.logs.filter((l) => /restarting plugin crasher/.test(l))).toHaveLength(2);
    expect(h.manager.slots[0]!.state).toBe('failed');
  });
});
