// Is KVM usable here, and can a Linux guest boot on it? The probe is a client of the backend:
// it opens KVM, asks it to measure how fast guest kernel-mode code runs (kernel-mode.ts), and
// turns what it finds into a verdict for people, with the fix when something is missing.
import { isNativeError, NativeModuleMissingError } from '../../native/vmm.ts';
import { KvmUnavailableError, openKvm } from './kvm.ts';
import { runsKernelNatively, VmCreationError } from './kernel-mode.ts';

export interface ProbeResult {
  /** KVM can create and run VMs here. */
  available: boolean;
  /** Guest kernel-mode code runs at hardware speed (a Linux guest can boot on KVM). */
  nativeKernelMode: boolean;
  /** One or two sentences for people: what was found and, when something is missing, how to fix it. */
  reason: string;
  /** Loop iterations per second at CPL0 and CPL3, when measured. */
  cpl0Rate?: number;
  cpl3Rate?: number;
}

const cache = new Map<string, ProbeResult>();

/** The verdict for the KVM device at `path` (default /dev/kvm), measured once per thread. */
export function probeKvm(options: { path?: string } = {}): ProbeResult {
  const path = options.path ?? '/dev/kvm';
  let result = cache.get(path);
  if (!result) {
    result = runProbe(path);
    cache.set(path, result);
  }
  return result;
}

function unavailable(reason: string): ProbeResult {
  return { available: false, nativeKernelMode: false, reason };
}

function runProbe(path: string): ProbeResult {
  let hypervisor;
  try {
    hypervisor = openKvm({ path, nativeKernelMode: false });
  } catch (e) {
    if (e instanceof NativeModuleMissingError || e instanceof KvmUnavailableError) return unavailable(e.message);
    if (isNativeError(e) && e.syscall.startsWith('open')) {
      if (e.code === 'ENOENT') {
        return unavailable(`${path} does not exist: this host offers no KVM (enable virtualization in the firmware and load ` +
          'kvm_intel or kvm_amd, or run on a VM with nested virtualization)');
      }
      if (e.code === 'EACCES' || e.code === 'EPERM') {
        return unavailable(`no permission to open ${path}: run as root or add your user to the 'kvm' group: ` +
          'sudo usermod -aG kvm $USER (then log in again)');
      }
    }
    return unavailable(`KVM is not usable: ${(e as Error).message}`);
  }

  try {
    const rates = hypervisor.kernelModeRates();
    const described = `${formatRate(rates.cpl0Rate)} loop iterations/s in kernel mode (CPL0) vs ${formatRate(rates.cpl3Rate)} in user mode (CPL3)`;
    const nativeKernelMode = runsKernelNatively(rates);
    const reason = nativeKernelMode
      ? `KVM runs guest kernel code natively (${described})`
      : `KVM works here, but guest kernel code is emulated by the host (${described}), so a Linux guest cannot boot usefully on this KVM`;
    return { available: true, nativeKernelMode, reason, ...rates };
  } catch (e) {
    if (e instanceof VmCreationError) return unavailable(`${path} opens, but creating a VM failed: ${e.message}`);
    return { available: true, nativeKernelMode: false, reason: `KVM runs VMs, but the probe's test loop failed: ${(e as Error).message}` };
  }
}

function formatRate(perSecond: number): string {
  const m = perSecond / 1e6;
  return `${m >= 100 ? m.toFixed(0) : m >= 1 ? m.toFixed(1) : m.toFixed(2)} M`;
}
