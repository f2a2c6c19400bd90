// The virtio-blk plugin process: `run-plugin.js devices/plugins/virtio-blk/main.ts <image> [--readonly]`.
// Started by `tsvmm run --disk image[,readonly]`, or by hand with TSVMM_PLUGIN_SOCKET set to a
// `tsvmm run --plugin-socket` path.
import { closeSync, fsyncSync, openSync } from 'node:fs';
import { Plugin } from '../../plugin-sdk/plugin.ts';
import { serveVirtioMmio } from '../../virtio/plugin-binding.ts';
import { VirtioBlk } from './device.ts';

const args = process.argv.slice(2);
const path = args.find((a) => !a.startsWith('--'));
const readonly = args.includes('--readonly');
if (!path) {
  process.stderr.write('usage: virtio-blk <raw image> [--readonly]\n');
  process.exit(2);
}
let fd: number;
try {
  fd = openSync(path, readonly ? 'r' : 'r+');
} catch (e) {
  process.stderr.write(`virtio-blk: cannot open ${path}${readonly ? '' : ' for writing'}: ${(e as Error).message}\n`);
  process.exit(1);
}

const plugin = await Plugin.connect({ name: 'virtio-blk' });
const blk = new VirtioBlk({ fd, path, readonly, log: (m) => plugin.log(m, 0) });
await serveVirtioMmio(plugin, blk);
plugin.onShutdown = () => {
  if (!readonly) fsyncSync(fd);
  closeSync(fd);
};
await plugin.ready();
plugin.log(`${path}: ${blk.capacityBytes} bytes${readonly ? ', read-only' : ''}`);
void plugin.closed.then(() => process.exit(0));
