// Puts a virtio device model behind a plugin's slot as a virtio-mmio v2 device: the register
// window as two ioregions around QueueNotify, one ioeventfd per queue on QueueNotify (datamatch
// = queue index, as Linux writes it) so doorbells skip the VMM, and the slot's irqfd. The
// transport keeps its state in the slot's state memory, so a process restarted after a crash
// takes the device over (VirtioMmioTransport.resume) once its regions are back.
import type { Plugin } from '../plugin-sdk/plugin.ts';
import { Reg, VirtioMmioTransport, type VirtioDevice } from './mmio-transport.ts';

export async function serveVirtioMmio(plugin: Plugin, device: VirtioDevice): Promise<VirtioMmioTransport> {
  const irq = await plugin.irq();
  const state = await plugin.persistentState();
  const transport = new VirtioMmioTransport(device, plugin.memory, () => irq.raise(), (m) => plugin.log(m, 1), state);
  const handler = {
    read: (offset: number, size: number) => transport.read(offset, size),
    write: (offset: number, size: number, value: bigint) => transport.write(offset, size, Number(value & 0xffff_ffffn)),
  };
  const notifyEnd = Reg.QUEUE_NOTIFY + 4;
  await plugin.registerRegion({ offset: 0, size: Reg.QUEUE_NOTIFY, handler });
  await plugin.registerRegion({
    offset: notifyEnd,
    size: plugin.slot.mmioSize - notifyEnd,
    handler: {
      read: (offset, size) => handler.read(offset + notifyEnd, size),
      write: (offset, size, value) => handler.write(offset + notifyEnd, size, value),
    },
  });
  for (let i = 0; i < device.queueSizes.length; i++) {
    await plugin.registerIoeventfd({ offset: Reg.QUEUE_NOTIFY, length: 4, datamatch: BigInt(i), onSignal: () => transport.notify(i) });
  }
  plugin.onReset = () => transport.reset();
  if (transport.resume()) plugin.log('took over the running device from the previous process', 1);
  return transport;
}
