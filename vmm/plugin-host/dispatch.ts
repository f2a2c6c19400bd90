// Plugin dispatch for exits that reach JavaScript: on the interpreter every access to the
// plugin slots, on KVM only string I/O (its run loop completes single accesses in C++). The IoBus
// hands such exits to `pluginDispatcher` (vmm/platform.ts puts it on the slot windows); when it
// returns true the access is done (a read's exit.data holds the value: all-ones if the plugin has
// failed). The dispatch table is process-wide (native/src/ioregion/): the plugin host on the main
// thread fills it, the vCPU thread only reads it. Nothing crosses threads.
import type { VcpuExit } from '../../hypervisors/backend.ts';
import { DISPATCH_MISS, vmmNative } from '../../native/vmm.ts';
import { BUS_MMIO, BUS_PIO } from '../../wire/protocol.ts';
import type { ExitDispatcher } from '../io-bus.ts';

const native = vmmNative();

export function dispatchToPlugins(exit: VcpuExit, pio: boolean): boolean {
  const bus = pio ? BUS_PIO : BUS_MMIO;
  if (exit.count <= 1) return native.ioregionDispatch(bus, exit.address, exit.size, exit.write, exit.data) !== DISPATCH_MISS;
  // String I/O: one access per element, all to the same port.
  const { size } = exit;
  if (native.ioregionDispatch(bus, exit.address, size, exit.write, exit.data.subarray(0, size)) === DISPATCH_MISS) return false;
  for (let i = 1; i < exit.count; i++) {
    const element = exit.data.subarray(i * size, (i + 1) * size);
    if (native.ioregionDispatch(bus, exit.address, size, exit.write, element) === DISPATCH_MISS && !exit.write) element.fill(0xff);
  }
  return true;
}

export const pluginDispatcher: ExitDispatcher = { name: 'device plugin slots', dispatch: dispatchToPlugins };
