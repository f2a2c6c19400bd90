// Plugin dispatch on the KVM backend: a bare-metal guest at CPL3 reads, writes (non-posted and
// posted), rings a zero-size doorbell and an ioeventfd doorbell in the probe plugin's slot, and
// takes the plugin's irqfd interrupt. The plugin is a real process; its accesses are completed
// by the KVM addon on the vCPU thread, so the test's exit loop must never see one of them.
import { afterEach, describe, expect, test } from 'vitest';
import { ExitReason, ExitReasonName } from '../../hypervisors/backend.ts';
import { PROBE } from '../../devices/plugins/probe/layout.ts';
import { Asm, R } from '../guests/asm.ts';
import { GUEST, TestGuest, kvmSkipReason } from '../guests/guest.ts';
import { littleEndian } from '../guests/run.ts';
import { buildMemoryMap, MiB } from '../../base/memory-map.ts';
import { openWiring } from '../../hypervisors/wiring.ts';
import { builtinPluginArgv, startPluginManager, type PluginManager } from '../../vmm/plugin-host/manager.ts';

const skip = kvmSkipReason();
if (skip) console.warn(skip);

const READY_PORT = 0xe1;
const VECTOR_PORT = 0xe2;
const PIC_BASE = 0x20;
const RAM = 16 * MiB;

let guest: TestGuest | undefined;
let manager: PluginManager | undefined;
afterEach(async () => {
  await manager?.shutdown();
  guest?.destroy();
  guest = undefined;
  manager = undefined;
});

interface ProbeGuest {
  g: TestGuest;
  m: PluginManager;
  base: number;
  irq: number;
  logs: string[];
  /** Resolves with the first log line (so far or later) that matches. */
  waitLog(pattern: RegExp): Promise<string>;
}

async function probeGuest({ restartPlugins = false } = {}): Promise<ProbeGuest> {
  const g = new TestGuest({ mode: 'long64', ramSize: RAM });
  const logs: string[] = [];
  const waiters: { pattern: RegExp; resolve(line: string): void }[] = [];
  const waitLog = (pattern: RegExp) => new Promise<string>((resolve) => {
    const seen = logs.find((l) => pattern.test(l));
    if (seen) resolve(seen);
    else waiters.push({ pattern, resolve });
  });
  const vm = g.vm;
  const m = startPluginManager({
    memoryMap: buildMemoryMap(RAM),
    // KVM_IOEVENTFD / KVM_IRQFD straight on the VM fd, as the VMM's main thread does it.
    machine: { ram: vm.ram.map((r) => ({ fd: r.fd, guestPhys: r.guestPhys, size: r.size })), wiring: openWiring(vm.wiring()) },
    restartPlugins,
    log: (l) => {
      logs.push(l);
      for (const w of waiters.filter((x) => x.pattern.test(l))) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(l);
      }
    },
  });
  const slot = m.addArgv(builtinPluginArgv('probe'), 'probe');
  await m.waitReady();
  guest = g;
  manager = m;
  return { g, m, base: slot.mmioBase, irq: slot.irq, logs, waitLog };
}

function initPic(a: Asm, irq: number): void {
  const outb = (port: number, value: number) => a.movAl(value).out(port, 1);
  outb(0x20, 0x11); outb(0x21, PIC_BASE); outb(0x21, 0x04); outb(0x21, 0x01);
  outb(0xa0, 0x11); outb(0xa1, PIC_BASE + 8); outb(0xa1, 0x02); outb(0xa1, 0x01);
  outb(0x21, 0xff & ~(1 << irq));
  outb(0xa1, 0xff);
}

/** The whole probe program: every kind of access, the ioeventfd, then the irqfd interrupt. */
function exerciseProbe(g: TestGuest, base: number, irq: number): void {
  const a = new Asm(64, GUEST.code);
  initPic(a, irq);
  a.out(READY_PORT, 1);
  // ---- CPL3 from here: rbx = the probe's slot, rdi = where results go.
  a.label('work').movImm(R.ebx, base).movImm(R.edi, GUEST.data);
  a.load(R.eax, R.ebx, 8, PROBE.regs).store(R.edi, R.eax, 8, 0x00); // 8-byte read
  a.load(R.eax, R.ebx, 4, PROBE.regs).store(R.edi, R.eax, 4, 0x08); // 4-byte read
  a.load(R.eax, R.ebx, 2, PROBE.regs).store(R.edi, R.eax, 2, 0x10); // 2-byte read
  a.load(R.eax, R.ebx, 1, PROBE.regs).store(R.edi, R.eax, 1, 0x18); // 1-byte read
  a.movImm(R.eax, 0x1122_3344_5566_7788n, 8).store(R.ebx, R.eax, 8, PROBE.scratch); // non-posted write
  a.load(R.eax, R.ebx, 8, PROBE.scratch).store(R.edi, R.eax, 8, 0x20);
  for (const v of [0xa1, 0xa2, 0xa3]) a.movImm(R.eax, v).store(R.ebx, R.eax, 4, PROBE.posted); // posted writes
  a.load(R.eax, R.ebx, 8, PROBE.postedCount).store(R.edi, R.eax, 8, 0x28); // ordered after them
  a.load(R.eax, R.ebx, 8, PROBE.lastPosted).store(R.edi, R.eax, 8, 0x30);
  a.store(R.ebx, R.eax, 4, PROBE.doorbell).store(R.ebx, R.eax, 1, PROBE.doorbell); // two doorbell rings
  a.load(R.eax, R.ebx, 8, PROBE.doorbellCount).store(R.edi, R.eax, 8, 0x38);
  a.store(R.ebx, R.eax, 4, PROBE.ioeventfd); // KVM signals the plugin's eventfd: no exit at all
  a.label('poll').load(R.eax, R.ebx, 8, PROBE.ioeventfdCount).cmpImm(R.eax, 0, 8).jz('poll');
  a.store(R.edi, R.eax, 8, 0x40);
  a.movImm(R.eax, 1).store(R.ebx, R.eax, 4, PROBE.irqOnDoorbell);
  a.store(R.ebx, R.eax, 4, PROBE.doorbell); // this ring raises the plugin's irqfd
  a.spin();
  a.label('handler').movAl(PIC_BASE + irq).out(VECTOR_PORT, 1).hlt();
  g.load(a);
  g.start(GUEST.code);
  g.setIdt({ [PIC_BASE + irq]: a.address('handler') });

  expect(g.run()).toBe(ExitReason.Io);
  expect(g.vcpu.exit.address).toBe(READY_PORT);
  g.enterUserMode(a.address('work'), { interrupts: true });
  const reason = g.run(20_000);
  // Any plugin access reaching JavaScript would show up here as an MMIO exit.
  expect(ExitReasonName[reason], `${g.vcpu.exit.address.toString(16)} ${g.vcpu.exit.detail}`).toBe('io');
  expect(g.vcpu.exit.address).toBe(VECTOR_PORT);
  expect(littleEndian(g.vcpu.exit.data)).toBe(PIC_BASE + irq);

  const r = (off: number) => g.memory.read(GUEST.data + off, 8);
  const u64 = (off: number) => new DataView(r(off).buffer).getBigUint64(0, true);
  expect(u64(0x00)).toBe(PROBE.constant);
  expect(u64(0x08) & 0xffff_ffffn).toBe(PROBE.constant & 0xffff_ffffn);
  expect(u64(0x10) & 0xffffn).toBe(PROBE.constant & 0xffffn);
  expect(u64(0x18) & 0xffn).toBe(PROBE.constant & 0xffn);
  expect(u64(0x20)).toBe(0x1122_3344_5566_7788n);
  expect(u64(0x28)).toBe(3n);
  expect(u64(0x30)).toBe(0xa3n);
  expect(u64(0x38)).toBe(2n);
  expect(u64(0x40)).toBeGreaterThanOrEqual(1n);
}

describe.skipIf(skip)('plugin dispatch on KVM (bare-metal guest at CPL3)', () => {
  test('reads, non-posted and posted writes, a zero-size doorbell, an ioeventfd and an irqfd interrupt, with no exit to JavaScript', async () => {
    const { g, base, irq, logs } = await probeGuest();
    exerciseProbe(g, base, irq);
    expect(logs.filter((l) => /failed/.test(l))).toEqual([]);
  });

  test('a killed plugin restarted by the manager is wired again: its KVM_IOEVENTFD and KVM_IRQFD work from the new process', async () => {
    const { g, m, base, irq, waitLog } = await probeGuest({ restartPlugins: true });
    const first = m.slots[0]!.pid!;
    process.kill(first, 'SIGKILL');
    await waitLog(/plugin probe \(slot 0\) is back as pid \d+/);
    expect(m.slots[0]!.pid).not.toBe(first);
    exerciseProbe(g, base, irq);
  });

  test('a killed plugin: the guest keeps running and reads all-ones from its slot', async () => {
    const { g, m, base, waitLog } = await probeGuest();
    process.kill(m.slots[0]!.pid!, 'SIGKILL');
    expect(await waitLog(/failed/)).toMatch(/plugin probe .*failed: .*(SIGKILL|closed)/);
    const a = new Asm(64, GUEST.code);
    a.label('work').movImm(R.ebx, base).movImm(R.edi, GUEST.data);
    a.load(R.eax, R.ebx, 4, PROBE.regs).out(0xe3, 4);
    g.load(a);
    g.start(GUEST.code);
    g.enterUserMode(a.address('work'));
    // Its regions are gone: the read reaches the VMM's exit loop (here: the test), which answers
    // an unclaimed address with all-ones as vmm/io-bus.ts does.
    expect(g.run()).toBe(ExitReason.Mmio);
    expect(g.vcpu.exit.address).toBe(base);
    g.vcpu.exit.data.fill(0xff);
    expect(g.run()).toBe(ExitReason.Io);
    expect(g.vcpu.exit.address).toBe(0xe3);
    expect(littleEndian(g.vcpu.exit.data)).toBe(0xffff_ffff);
  });
});
