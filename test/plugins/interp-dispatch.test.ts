// Plugin dispatch on the interpreter backend: a 32-bit guest run by the TypeScript CPU reads,
// writes (non-posted and posted) and rings a doorbell and an ioeventfd in the probe plugin's
// slot; every exit goes through vmm/plugin-host/dispatch.ts, as the vCPU worker's bus does it.
import { afterEach, describe, expect, test } from 'vitest';
import { ExitReason } from '../../hypervisors/backend.ts';
import { openInterp } from '../../hypervisors/interp/index.ts';
import { enter32 } from '../../firmware/entry/index.ts';
import { openWiring } from '../../hypervisors/wiring.ts';
import { PROBE } from '../../devices/plugins/probe/layout.ts';
import { GuestMemory } from '../../base/guest-memory.ts';
import { buildMemoryMap, MiB } from '../../base/memory-map.ts';
import { dispatchToPlugins } from '../../vmm/plugin-host/dispatch.ts';
import { builtinPluginArgv, startPluginManager, type PluginManager } from '../../vmm/plugin-host/manager.ts';
import { Asm, R } from '../guests/asm.ts';

const RAM = 16 * MiB;
const CODE = 0x10_0000;
const DATA = 0x20_0000;
const DONE = 0xe0;

let manager: PluginManager | undefined;
afterEach(async () => {
  await manager?.shutdown();
  manager = undefined;
});

describe('plugin dispatch on the interpreter backend', () => {
  test('reads, writes, posted writes, a doorbell and an ioeventfd reach the probe plugin', async () => {
    // The VM first: its vCPU is what its wiring kicks for plugin interrupts, and its guest RAM
    // memfd is what the plugin maps.
    const vm = openInterp().createVm({ ram: [{ guestPhys: 0, size: RAM }], tssAddress: 0, identityMapAddress: 0 });
    const vcpu = vm.createVcpu(0);
    manager = startPluginManager({
      memoryMap: buildMemoryMap(RAM),
      machine: { ram: vm.ram.map((r) => ({ fd: r.fd, guestPhys: r.guestPhys, size: r.size })), wiring: openWiring(vm.wiring()) },
      log: () => undefined,
    });
    const slot = manager.addArgv(builtinPluginArgv('probe'), 'probe');
    await manager.waitReady();

    const mem = new GuestMemory(vm.ram.map((r) => ({ guestPhys: r.guestPhys, bytes: r.bytes })));
    const a = new Asm(32, CODE).movImm(R.ebx, slot.mmioBase).movImm(R.edi, DATA);
    a.load(R.eax, R.ebx, 4, PROBE.regs).store(R.edi, R.eax, 4, 0);
    a.movImm(R.eax, 0x5566_7788).store(R.ebx, R.eax, 4, PROBE.scratch);
    a.load(R.eax, R.ebx, 4, PROBE.scratch).store(R.edi, R.eax, 4, 4);
    a.movImm(R.eax, 0xa1).store(R.ebx, R.eax, 4, PROBE.posted).movImm(R.eax, 0xa2).store(R.ebx, R.eax, 2, PROBE.posted);
    a.load(R.eax, R.ebx, 4, PROBE.postedCount).store(R.edi, R.eax, 4, 8);
    a.load(R.eax, R.ebx, 4, PROBE.lastPosted).store(R.edi, R.eax, 4, 12);
    a.store(R.ebx, R.eax, 4, PROBE.doorbell);
    a.load(R.eax, R.ebx, 4, PROBE.doorbellCount).store(R.edi, R.eax, 4, 16);
    a.store(R.ebx, R.eax, 4, PROBE.ioeventfd); // the dispatch table signals the plugin's eventfd
    a.label('poll').load(R.eax, R.ebx, 4, PROBE.ioeventfdCount).cmpImm(R.eax, 0).jz('poll');
    a.out(DONE, 1);
    mem.write(CODE, a.assemble());
    const state = enter32(mem, { entry: CODE });
    vcpu.setSregs(state.sregs);
    vcpu.setRegs(state.regs);

    let exits = 0;
    for (;;) {
      const reason = vcpu.run();
      if (reason === ExitReason.Io && vcpu.exit.address === DONE) break;
      expect(reason).toBe(ExitReason.Mmio);
      expect(dispatchToPlugins(vcpu.exit, false)).toBe(true);
      exits++;
    }
    const u32 = (off: number) => mem.readU32(DATA + off);
    expect(u32(0)).toBe(Number(PROBE.constant & 0xffff_ffffn));
    expect(u32(4)).toBe(0x5566_7788);
    expect(u32(8)).toBe(2);
    expect(u32(12)).toBe(0xa2);
    expect(u32(16)).toBe(1);
    expect(exits).toBeGreaterThanOrEqual(10);
    vm.destroy();
  });
});
