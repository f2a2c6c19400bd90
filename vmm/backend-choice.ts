// Which backend runs the guest, and why. `auto` prefers KVM where guest kernel code runs at
// hardware speed, and otherwise the interpreter; the reason is printed for the user.
import type { BackendName } from '../hypervisors/backend.ts';
import type { ProbeResult } from '../hypervisors/kvm/probe.ts';
import { UsageError } from './errors.ts';
import { startTsWorker } from './worker.ts';

export type BackendRequest = BackendName | 'auto';

export interface BackendChoice {
  name: BackendName;
  reason: string;
  probe: ProbeResult | undefined;
}

/** The KVM device; TSVMM_KVM_DEVICE overrides it (a KVM in a container, or a test without KVM). */
export const KVM_DEVICE = process.env.TSVMM_KVM_DEVICE || '/dev/kvm';

export async function probeKvmOffThread(): Promise<ProbeResult> {
  const worker = startTsWorker(new URL('./probe-worker.ts', import.meta.url), { workerData: KVM_DEVICE });
  try {
    return await new Promise<ProbeResult>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
      worker.once('exit', (code) => reject(new Error(`the KVM probe exited with code ${code}`)));
    });
  } finally {
    await worker.terminate();
  }
}

export async function chooseBackend(request: BackendRequest): Promise<BackendChoice> {
  if (request === 'interp') {
    return { name: 'interp', reason: 'requested with --backend interp', probe: undefined };
  }
  const probe = await probeKvmOffThread();
  if (request === 'kvm') {
    if (!probe.available) throw new UsageError(`--backend kvm: ${probe.reason}`);
    // Bare-metal guests still run on such a KVM, so the user's explicit choice stands, with a warning.
    const warning = probe.nativeKernelMode ? '' : `; warning: ${probe.reason} (for Linux use --backend interp or auto)`;
    return { name: 'kvm', reason: `requested with --backend kvm${warning}`, probe };
  }
  if (probe.available && probe.nativeKernelMode) {
    return { name: 'kvm', reason: `KVM runs guest kernel code at hardware speed (${probe.reason})`, probe };
  }
  return { name: 'interp', reason: `KVM cannot run a Linux guest here: ${probe.reason}`, probe };
}
