// Opens a backend by name. Imports are dynamic so that a host without the KVM addon (or
// without /dev/kvm) can still run the interpreter, and vice versa.
import type { BackendName, Hypervisor } from './backend.ts';

export interface OpenOptions {
  /** KVM device path (default /dev/kvm). */
  kvmDevice?: string;
  /** The KVM probe's verdict, so the vCPU worker does not probe again. */
  nativeKernelMode?: boolean;
}

export async function openBackend(name: BackendName, options: OpenOptions = {}): Promise<Hypervisor> {
  if (name === 'kvm') {
    const { openKvm } = await import('./kvm/kvm.ts');
    return openKvm({ path: options.kvmDevice, nativeKernelMode: options.nativeKernelMode });
  }
  const { openInterp } = await import('./interp/index.ts');
  return openInterp();
}
