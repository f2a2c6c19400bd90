// The virtio-console plugin process: the guest's hvc0. Output goes to the VMM's console hub
// (CONSOLE_WRITE), keystrokes come back as CONSOLE_INPUT.
import { Plugin } from '../../plugin-sdk/plugin.ts';
import { serveVirtioMmio } from '../../virtio/plugin-binding.ts';
import { VirtioConsole } from './device.ts';

const plugin = await Plugin.connect({ name: 'virtio-console' });
const console = new VirtioConsole((bytes) => plugin.consoleWrite(bytes));
const transport = await serveVirtioMmio(plugin, console);
plugin.onConsoleInput = (bytes) => {
  transport.guard('console input', () => console.input(bytes));
};
await plugin.ready();
void plugin.closed.then(() => process.exit(0));
