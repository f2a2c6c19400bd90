// The example plugin from docs/plugins.md: a 16-byte register block in its slot.
//   +0x0  u32  read-only  magic 0x706c7567 ("plug")
//   +0x4  u32  read/write scratch register
//   +0x8  u32  read-only  number of doorbell rings so far
//   +0x10 doorbell (zero-size, posted): each write counts one ring and raises the interrupt
import { Plugin } from '../../plugin-sdk/plugin.ts';

const plugin = await Plugin.connect({ name: 'example' });
let scratch = 0;
let rings = 0;
const irq = await plugin.irq();

await plugin.registerRegion({
  offset: 0,
  size: 0x10,
  handler: {
    read(offset) {
      if (offset === 0x0) return 0x706c7567;
      if (offset === 0x4) return scratch;
      if (offset === 0x8) return rings;
      return 0;
    },
    write(offset, _size, value) {
      if (offset === 0x4) scratch = Number(value & 0xffff_ffffn);
    },
  },
});

await plugin.registerRegion({
  offset: 0x10,
  size: 0, // a doorbell: posted writes only, the record carries no data
  posted: true,
  handler: {
    write() {
      rings++;
      irq.raise();
    },
  },
});

plugin.onReset = () => {
  scratch = 0;
  rings = 0;
};
await plugin.ready();
plugin.log(`example device ready at 0x${plugin.slot.mmioBase.toString(16)}, irq ${irq.gsi}`);
