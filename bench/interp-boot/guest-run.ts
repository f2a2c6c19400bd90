// Boots a guest on the interpreter inside this process (the same machine vmm/machine.ts builds
// for `tsvmm run`) until a marker appears on the serial console, and reports the guest
// instructions executed and the time taken. The benchmark uses it for what the tsvmm process
// cannot tell from outside: instructions to the marker, and MIPS without process start-up.
import { ExitReason } from '../../hypervisors/backend.ts';
import { openInterp, type InterpVcpu } from '../../hypervisors/interp/index.ts';
import { ByteRing } from '../../vmm/byte-ring.ts';
import { buildMachine } from '../../vmm/machine.ts';
import { Control, type MachineSpec } from '../../vmm/worker-protocol.ts';

export interface GuestBoot {
  kernel: Uint8Array;
  initrd: Uint8Array | undefined;
  cmdline: string;
  deterministic: boolean;
  marker: string;
  memBytes?: number;
}

export interface BootResult {
  /** Guest instructions retired when the marker appeared. */
  instructions: number;
  /** Wall time from machine creation to the marker, in seconds. */
  seconds: number;
  /** Host CPU time of this process over the same span (user + system), in seconds. */
  cpuSeconds: number;
  console: string;
}

export function bootToMarker(g: GuestBoot): BootResult {
  const serialOut = new ByteRing(1 << 22);
  const spec: MachineSpec = {
    backend: 'interp', backendOptions: {}, memBytes: g.memBytes ?? 256 << 20,
    kernel: g.kernel, initrd: g.initrd, cmdline: g.cmdline, longMode: false, deterministic: g.deterministic,
    serialOut: serialOut.buffer, serialIn: new ByteRing(4096).buffer, control: new SharedArrayBuffer(Control.words * 4),
  };
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const m = buildMachine(openInterp(), spec);
  const vcpu = m.vcpu as InterpVcpu;
  const exit = vcpu.exit;
  const decoder = new TextDecoder('latin1');
  let text = '';
  try {
    for (;;) {
      const reason = vcpu.run();
      if (reason === ExitReason.Io) {
        const { address, size, data } = exit;
        if (exit.write) m.bus.pioWrite(address, size, (new DataView(data.buffer, data.byteOffset, 4).getUint32(0, true) & sizeMask(size)) >>> 0);
        else new DataView(data.buffer, data.byteOffset, 4).setUint32(0, m.bus.pioRead(address, size) >>> 0, true);
        const out = serialOut.drain();
        if (out !== undefined) {
          text += decoder.decode(out);
          if (text.includes(g.marker)) break;
        }
      } else if (reason === ExitReason.Mmio) {
        if (!exit.write) exit.data.fill(0xff);
      } else if (reason !== ExitReason.Kicked) {
        throw new Error(`the guest stopped before printing ${g.marker}: exit ${reason} ${exit.detail}\n${text.slice(-2000)}`);
      }
    }
    const seconds = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    return { instructions: vcpu.cpu.icount, seconds, cpuSeconds: (cpu.user + cpu.system) / 1e6, console: text };
  } finally {
    m.destroy();
  }
}

function sizeMask(size: number): number {
  return size === 1 ? 0xff : size === 2 ? 0xffff : 0xffff_ffff;
}
