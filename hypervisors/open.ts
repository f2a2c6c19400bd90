// Opens a backend by name. Imports are dynamic so that a host without the KVM addon (or
// without /dev/kvm) can still run the interpreter, and vice versa.
import type { BackendName, Hypervisor } from './backend.ts';

export async function openBackend(name: BackendName): Promise<Hypervisor> {
  if (name === 'kvm') {
    const { openKvm } = await import('./kvm/kvm.ts');
    return openKvm();
  }
  const { openInterp } = await import('./interp/index.ts');
  return openInterp();
}
