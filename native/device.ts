// The device processes' native module (tsvmm_device): the fd I/O of the plugin protocol and
// nothing of the VMM's, built from the same sources as the VMM's module (native/binding.gyp).
import type { FdIo } from '../wire/fd-io.ts';
import { loadModule } from './load.ts';

let loaded: FdIo | undefined;

export function deviceFdIo(): FdIo {
  return (loaded ??= loadModule('tsvmm_device') as FdIo);
}
