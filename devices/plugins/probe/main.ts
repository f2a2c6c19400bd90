// The probe plugin: one of each dispatch mechanism, with counters the guest can read back.
// Used by the KVM plugin tests and by bench/mmio. Slot layout (MMIO offsets):
//   0x000-0x0ff  ioregion, non-posted:
//     +0x00 R   constant 0x0123456789abcdef (truncated to the access size)
//     +0x08 RW  scratch
//     +0x10 R   posted writes received      +0x18 R  doorbell rings
//     +0x20 R   ioeventfd signals           +0x28 R  last posted value
//     +0x30 W   1 = raise the interrupt on every doorbell ring
//   0x100-0x1ff  ioregion, POSTED_WRITES: each write counts and records its value
//   0x200        zero-size doorbell (posted): counts, may raise the interrupt
//   0x300        ioeventfd (4 bytes, any value): counts signals
//   PIO base+0..7: ioregion, non-posted: reads the constant, writes the scratch
import { Plugin } from '../../plugin-sdk/plugin.ts';
import { PROBE } from './layout.ts';


const plugin = await Plugin.connect({ name: 'probe' });
const irq = await plugin.irq();
let scratch = 0n;
let posted = 0n;
let lastPosted = 0n;
let rings = 0n;
let signals = 0n;
let irqOnDoorbell = false;

const registers = {
  read(offset: number): bigint {
    switch (offset) {
      case 0x00: return PROBE.constant;
      case 0x08: return scratch;
      case 0x10: return posted;
      case 0x18: return rings;
      case 0x20: return signals;
      case 0x28: return lastPosted;
      default: return 0n;
    }
  },
  write(offset: number, _size: number, value: bigint): void {
    if (offset === 0x08) scratch = value;
    if (offset === 0x30) irqOnDoorbell = value === 1n;
  },
};

await plugin.registerRegion({ offset: PROBE.regs, size: 0x100, handler: registers });
await plugin.registerRegion({
  offset: PROBE.posted, size: 0x100, posted: true,
  handler: { write(_o, _s, value) { posted++; lastPosted = value; } },
});
await plugin.registerRegion({
  offset: PROBE.doorbell, size: 0, posted: true,
  handler: { write() { rings++; if (irqOnDoorbell) irq.raise(); } },
});
await plugin.registerIoeventfd({ offset: PROBE.ioeventfd, length: 4, onSignal: (n) => { signals += BigInt(n); } });
if (plugin.slot.pioSize) {
  await plugin.registerRegion({ offset: 0, size: 8, pio: true, handler: { read: () => PROBE.constant, write: (_o, _s, v) => { scratch = v; } } });
}
plugin.onReset = () => {
  scratch = posted = lastPosted = rings = signals = 0n;
  irqOnDoorbell = false;
};
await plugin.ready();
void plugin.closed.then(() => process.exit(0));
