// Loads one of the two native modules built from native/src by `npm install` (binding.gyp).
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

export class NativeModuleMissingError extends Error {}

export function modulePath(name: 'tsvmm_vmm' | 'tsvmm_device'): string {
  return fileURLToPath(new URL(`./build/Release/${name}.node`, import.meta.url));
}

/** The module's exports (once per thread: each worker loads it into its own isolate; native state is shared). */
export function loadModule(name: 'tsvmm_vmm' | 'tsvmm_device'): unknown {
  if (process.platform !== 'linux') throw new NativeModuleMissingError(`tsvmm's native modules need Linux (this is ${process.platform})`);
  const path = modulePath(name);
  if (!existsSync(path)) {
    throw new NativeModuleMissingError(
      `tsvmm's native module is not built (${path} is missing): run \`npm install\`, or ` +
      '`npx node-gyp rebuild --directory native` (needs a C++ compiler, make and python3)');
  }
  return createRequire(import.meta.url)(path);
}
