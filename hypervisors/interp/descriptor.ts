// The interpreter backend as the VMM sees it before opening it (backend.ts, BackendDescriptor).
import type { BackendDescriptor } from '../backend.ts';
import { InterpPlatform, LINUX_KERNEL_ARGS } from './platform.ts';

export const INTERP: BackendDescriptor = {
  name: 'interp',
  title: 'interpreter',
  // An i386 CPU: kernels are entered through the 32-bit boot protocol.
  longMode: false,
  // HLT with interrupts off leaves run() with ExitReason.Hlt (platform.ts).
  hltNeedsPolling: false,
  deterministicClock: true,
  kernelArgs: LINUX_KERNEL_ARGS,
  // The uncompressed vmlinux and a raw cpio: no decompressor to interpret (docs/performance.md).
  guest: { archs: ['i386'], cpu: '32-bit x86', kernel: 'vmlinux', initrd: 'raw' },
  claims: InterpPlatform.claims,
  probe: async () => ({ available: true, runsLinux: true, reason: 'the x86 interpreter runs wherever Node.js does', openOptions: {} }),
  async open() {
    const { openInterp } = await import('./index.ts');
    return openInterp();
  },
};
