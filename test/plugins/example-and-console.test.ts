// The example plugin of docs/plugins.md and the virtio-console plugin, each as a real process
// behind the real plugin manager, driven through the dispatch table as a vCPU would.
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { Reg } from '../../devices/virtio/mmio-transport.ts';
import { builtinPluginArgv } from '../../vmm/plugin-host/manager.ts';
import { startHarness, type Harness } from './support/harness.ts';
import { TestVirtioDriver } from './support/virtio-driver.ts';

let h: Harness;
beforeEach(() => {
  h = startHarness();
});
afterEach(async () => {
  await h.close();
});

describe('the example plugin from docs/plugins.md', () => {
  test('magic, scratch register, doorbell counting and its interrupt', async () => {
    const slot = h.manager.addArgv(builtinPluginArgv('example'), 'example');
    await h.manager.waitReady();
    expect(h.read(slot.mmioBase, 4)).toBe(0x706c7567n);
    h.write(slot.mmioBase + 4, 4, 0xdecafbadn);
    expect(h.read(slot.mmioBase + 4, 4)).toBe(0xdecafbadn);
    expect(h.read(slot.mmioBase + 8, 4)).toBe(0n);
    h.write(slot.mmioBase + 0x10, 4, 1n);
    h.write(slot.mmioBase + 0x10, 1, 0xffn);
    expect(h.read(slot.mmioBase + 8, 4)).toBe(2n); // posted rings are ordered before this read
    await h.waitIrq(slot.irq, 1); // two pulses of an eventfd may coalesce into one
    expect(h.read(slot.mmioBase + 0x20, 4)).toBeUndefined(); // outside every region: the VMM's bus answers
    await h.waitLog(/example device ready at 0xd0000000, irq 5/);
    await h.manager.reset();
    expect(h.read(slot.mmioBase + 4, 4)).toBe(0n);
  });
});

describe('virtio-console plugin (hvc0)', () => {
  test('guest output reaches the VMM console; console input reaches the guest', async () => {
    const slot = h.manager.addConsole();
    await h.manager.waitReady();
    const d = new TestVirtioDriver(h, slot.mmioBase, 0x20_0000);
    expect(d.reg(Reg.DEVICE_ID)).toBe(3);
    d.init(2, 16);
    // Receive buffers first, as Linux's hvc driver posts them.
    for (let i = 0; i < 4; i++) d.submit(0, [{ addr: 0x30_0000 + i * 0x100, len: 64, write: true }], i === 3);
    const text = new TextEncoder().encode('hello from hvc0\r\n');
    h.mem.write(0x31_0000, text);
    d.submit(1, [{ addr: 0x31_0000, len: text.length }]);
    await h.waitHvc0('hello from hvc0\r\n');
    await h.waitIrq(slot.irq, 1);
    d.ackInterrupt();
    expect(d.takeUsed(1)).toEqual([[0, 0]]);

    const before = h.irqCount(slot.irq);
    h.manager.consoleInput(new TextEncoder().encode('ls -l\n'));
    await h.waitIrq(slot.irq, before + 1);
    const used = d.takeUsed(0);
    expect(used).toEqual([[0, 6]]);
    expect(new TextDecoder().decode(h.mem.read(0x30_0000, 6))).toBe('ls -l\n');
  });
});

describe('virtio-console plugin under the restart policy (tsvmm run)', () => {
  beforeEach(async () => {
    await h.close();
    h = startHarness({ restartPlugins: true });
  });

  test('kill -9: the restarted process takes over the queues, the receive buffers posted before still fill, output flows', async () => {
    const slot = h.manager.addConsole();
    await h.manager.waitReady();
    const d = new TestVirtioDriver(h, slot.mmioBase, 0x20_0000);
    d.init(2, 16);
    for (let i = 0; i < 4; i++) d.submit(0, [{ addr: 0x30_0000 + i * 0x100, len: 64, write: true }], i === 3);
    const pid = h.manager.slots[0]!.pid!;
    process.kill(pid, 'SIGKILL');
    await h.waitLog(/is back as pid \d+/);
    expect(h.logs.some((l) => /virtio-console: took over the running device/.test(l))).toBe(true);

    const before = h.irqCount(slot.irq);
    h.manager.consoleInput(new TextEncoder().encode('after\n'));
    await h.waitIrq(slot.irq, before + 1);
    d.ackInterrupt();
    expect(d.takeUsed(0)).toEqual([[0, 6]]);
    expect(new TextDecoder().decode(h.mem.read(0x30_0000, 6))).toBe('after\n');
    const text = new TextEncoder().encode('still here\r\n');
    h.mem.write(0x31_0000, text);
    d.submit(1, [{ addr: 0x31_0000, len: text.length }]);
    await h.waitHvc0('still here\r\n');
  });
});
