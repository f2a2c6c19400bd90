// A VMM without a CPU, for plugin tests: real guest RAM (a memfd, mapped here and in the
// plugins), the real plugin manager and region registry, and guest accesses made exactly as a
// vCPU thread makes them (the native dispatch table). Interrupts arrive through the
// interpreter's wiring (an irq mailbox and a kick), taken as its vCPU takes them, so tests can
// wait for them.
import { DISPATCH_MISS, vmmNative } from '../../../native/vmm.ts';
import { BUS_MMIO, BUS_PIO } from '../../../wire/protocol.ts';
import { GuestMemory } from '../../../base/guest-memory.ts';
import { buildMemoryMap, MiB } from '../../../base/memory-map.ts';
import type { VmWiring } from '../../../hypervisors/backend.ts';
import { IrqMailbox } from '../../../hypervisors/interp/irq-mailbox.ts';
import { openWiring } from '../../../hypervisors/wiring.ts';
import { startPluginManager, type PluginManager, type PluginManagerOptions } from '../../../vmm/plugin-host/manager.ts';

export interface Harness {
  manager: PluginManager;
  mem: GuestMemory;
  ramFd: number;
  logs: string[];
  hvc0: Uint8Array[];
  /** Guest access through the dispatch table; returns undefined when no plugin region answers. */
  read(address: number, size: number, pio?: boolean): bigint | undefined;
  write(address: number, size: number, value: bigint, pio?: boolean): number;
  irqCount(gsi: number): number;
  /** Resolves once `gsi` has been raised at least `count` times in total. */
  waitIrq(gsi: number, count: number): Promise<void>;
  /** Resolves when a log line matches. */
  waitLog(pattern: RegExp): Promise<string>;
  /** Resolves once the bytes written to hvc0 so far contain `text`. */
  waitHvc0(text: string): Promise<void>;
  /** Resolves when at least `count` log lines (so far, in total) match. */
  waitLogCount(pattern: RegExp, count: number): Promise<void>;
  close(): Promise<void>;
}

/**
 * The wiring of an interpreter VM whose vCPU does nothing but take plugin interrupts: when the
 * wiring kicks it, it clears the kick and pulses what the mailbox holds, as InterpVcpu does.
 */
export function cpuLessWiring(onPulse: (gsi: number) => void = () => undefined): { wiring: VmWiring; stop(): void } {
  const mailbox = new IrqMailbox();
  const kick = { backend: 'interp' as const, control: new SharedArrayBuffer(4) };
  const word = new Int32Array(kick.control);
  let stopped = false;
  void (async () => {
    while (!stopped) {
      const w = Atomics.waitAsync(word, 0, 0);
      if (w.async) await w.value;
      Atomics.store(word, 0, 0);
      mailbox.take((gsi, level) => { if (level && !stopped) onPulse(gsi); });
    }
  })();
  return {
    wiring: openWiring({ backend: 'interp', irqMailbox: mailbox.buffer, kick }),
    stop() {
      stopped = true;
      Atomics.store(word, 0, 1);
      Atomics.notify(word, 0);
    },
  };
}

export function startHarness(opts: Partial<PluginManagerOptions> & { ramSize?: number } = {}): Harness {
  const native = vmmNative();
  const ramSize = opts.ramSize ?? 32 * MiB;
  const map = buildMemoryMap(ramSize);
  const ramFd = native.memfdCreate('test-guest-ram', ramSize);
  const bytes = new Uint8Array(native.mapFd(ramFd, 0, ramSize, true));
  const mem = new GuestMemory([{ guestPhys: 0, bytes }]);
  const logs: string[] = [];
  const hvc0: Uint8Array[] = [];
  const irqs = new Map<number, number>();
  const irqWaiters: { gsi: number; count: number; resolve(): void }[] = [];
  const logWaiters: { pattern: RegExp; resolve(line: string): void }[] = [];
  const hvcWaiters: { text: string; resolve(): void }[] = [];
  const hvcText = () => Buffer.concat(hvc0).toString('latin1');
  const countWaiters: { pattern: RegExp; count: number; resolve(): void }[] = [];
  const matching = (pattern: RegExp) => logs.reduce((n, l) => n + (pattern.test(l) ? 1 : 0), 0);
  const cpu = cpuLessWiring((gsi) => {
    irqs.set(gsi, (irqs.get(gsi) ?? 0) + 1);
    for (const w of [...irqWaiters]) {
      if (w.gsi === gsi && irqs.get(gsi)! >= w.count) {
        irqWaiters.splice(irqWaiters.indexOf(w), 1);
        w.resolve();
      }
    }
  });
  const manager = startPluginManager({
    memoryMap: map,
    machine: { ram: [{ fd: ramFd, guestPhys: 0, size: ramSize }], wiring: cpu.wiring },
    consoleOutput: (_c, b) => {
      hvc0.push(b.slice());
      for (const w of [...hvcWaiters]) {
        if (hvcText().includes(w.text)) {
          hvcWaiters.splice(hvcWaiters.indexOf(w), 1);
          w.resolve();
        }
      }
    },
    log: (line) => {
      logs.push(line);
      if (process.env.TSVMM_TEST_VERBOSE) console.log(line);
      for (const w of [...logWaiters]) {
        if (w.pattern.test(line)) {
          logWaiters.splice(logWaiters.indexOf(w), 1);
          w.resolve(line);
        }
      }
      for (const w of [...countWaiters]) {
        if (w.pattern.test(line) && matching(w.pattern) >= w.count) {
          countWaiters.splice(countWaiters.indexOf(w), 1);
          w.resolve();
        }
      }
    },
    ...opts,
  });
  const data = new Uint8Array(8);
  const dv = new DataView(data.buffer);
  return {
    manager, mem, ramFd, logs, hvc0,
    read(address, size, pio = false) {
      data.fill(0);
      const r = native.ioregionDispatch(pio ? BUS_PIO : BUS_MMIO, address, size, false, data);
      return r === DISPATCH_MISS ? undefined : dv.getBigUint64(0, true);
    },
    write(address, size, value, pio = false) {
      dv.setBigUint64(0, BigInt.asUintN(64, value), true);
      return native.ioregionDispatch(pio ? BUS_PIO : BUS_MMIO, address, size, true, data);
    },
    irqCount: (gsi) => irqs.get(gsi) ?? 0,
    waitIrq(gsi, count) {
      if ((irqs.get(gsi) ?? 0) >= count) return Promise.resolve();
      return new Promise((resolve) => irqWaiters.push({ gsi, count, resolve }));
    },
    waitLog(pattern) {
      const hit = logs.find((l) => pattern.test(l));
      if (hit) return Promise.resolve(hit);
      return new Promise((resolve) => logWaiters.push({ pattern, resolve }));
    },
    waitHvc0(text) {
      if (hvcText().includes(text)) return Promise.resolve();
      return new Promise((resolve) => hvcWaiters.push({ text, resolve }));
    },
    waitLogCount(pattern, count) {
      if (matching(pattern) >= count) return Promise.resolve();
      return new Promise((resolve) => countWaiters.push({ pattern, count, resolve }));
    },
    async close() {
      await manager.shutdown();
      cpu.stop();
      native.closeFd(ramFd);
    },
  };
}
