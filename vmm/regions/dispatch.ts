// The vCPU worker's side of plugin dispatch, for exits that reach JavaScript: on the
// interpreter every Io/Mmio exit, on KVM only those the addon could not complete natively
// (string I/O). Call `dispatchToPlugins` before the in-process IoBus; when it returns true the
// access is done (reads: exit.data holds the value — all-ones if the plugin has failed).
// The dispatch table is process-wide (devices/plugin-sdk/native/src/ioregion.cc): the plugin
// manager on the main thread fills it, this thread only reads it. Nothing crosses threads.
import type { VcpuExit } from '../../hypervisors/backend.ts';
import { DISPATCH_MISS, vmmNative } from '../../native/vmm.ts';
import { BUS_MMIO, BUS_PIO } from '../../wire/protocol.ts';

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
