// The plugin-related `tsvmm run` options, parsed and checked before anything starts:
//   --disk PATH[,readonly]     a virtio-blk plugin serving a raw image (repeatable)
//   --device '<command>'       any plugin, run through /bin/sh (repeatable)
//   --plugin-socket PATH       a slot whose plugin attaches by hand, and may reattach (repeatable)
// plus the hvc0 console plugin, which tsvmm always starts (it costs one process and gives the
// guest /dev/hvc0; `--console hvc0` only chooses what the terminal shows).
import { accessSync, constants, existsSync, lstatSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import type { PluginManager } from '../vmm/plugin-host/manager.ts';

export interface DiskOption {
  path: string;
  readonly: boolean;
}

export interface PluginOptions {
  disks: DiskOption[];
  devices: string[];
  sockets: string[];
}

export class PluginOptionError extends Error {}

/** `--disk` values: `path` or `path,readonly`. Throws PluginOptionError naming the problem and the fix. */
export function parseDisk(value: string): DiskOption {
  const [path, ...flags] = value.split(',');
  if (!path) throw new PluginOptionError('--disk needs a path: --disk disk.img or --disk disk.img,readonly');
  let readonly = false;
  for (const f of flags) {
    if (f === 'readonly' || f === 'ro') readonly = true;
    else throw new PluginOptionError(`--disk ${value}: unknown flag '${f}' (the only flag is 'readonly')`);
  }
  if (!existsSync(path)) throw new PluginOptionError(`--disk ${path}: no such file (create a raw image, e.g. truncate -s 64M ${path})`);
  const st = statSync(path);
  if (!st.isFile() && !st.isBlockDevice()) throw new PluginOptionError(`--disk ${path}: not a regular file or block device`);
  if (st.isFile() && st.size < 512) throw new PluginOptionError(`--disk ${path}: the image is smaller than one 512-byte sector`);
  try {
    accessSync(path, readonly ? constants.R_OK : constants.R_OK | constants.W_OK);
  } catch {
    throw new PluginOptionError(`--disk ${path}: not ${readonly ? 'readable' : 'readable and writable'} by this user${readonly ? '' : ' (add ,readonly to use it read-only)'}`);
  }
  return { path, readonly };
}

export function checkPluginSocket(path: string): string {
  if (existsSync(path) && !lstatSync(path).isSocket()) throw new PluginOptionError(`--plugin-socket ${path}: the path exists and is not a socket; choose another path`);
  if (!existsSync(dirname(path))) throw new PluginOptionError(`--plugin-socket ${path}: directory ${dirname(path)} does not exist`);
  if (Buffer.byteLength(path) > 107) throw new PluginOptionError(`--plugin-socket ${path}: UNIX socket paths are limited to 107 bytes; use a shorter path`);
  return path;
}

/**
 * Add every plugin to the manager, in a fixed order (console, disks, devices, sockets), so slot
 * numbers — and the guest's device names (vda, vdb, ...) — follow the command line.
 * Returns the kernel command-line words describing the slots.
 */
export function addPlugins(manager: PluginManager, options: PluginOptions, { console = true } = {}): string[] {
  if (console) manager.addConsole();
  for (const d of options.disks) manager.addDisk(d.path, d.readonly);
  for (const c of options.devices) manager.addCommand(c);
  for (const s of options.sockets) manager.addSocket(s);
  return manager.kernelCmdline();
}
