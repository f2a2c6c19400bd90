// Which backend runs the guest, and why. `auto` takes the first backend (in the order
// hypervisors/backends.ts lists them: KVM, then the interpreter) that runs a Linux guest
// usefully here; the reason is printed for the user.
import type { BackendDescriptor, BackendName, BackendProbe } from '../hypervisors/backend.ts';
import { BACKENDS, backendNamed } from '../hypervisors/backends.ts';
import { UsageError } from './errors.ts';

export type BackendRequest = BackendName | 'auto';
export const BACKEND_REQUESTS: readonly BackendRequest[] = ['auto', ...BACKENDS.map((b) => b.name)];

export interface BackendChoice {
  backend: BackendDescriptor;
  reason: string;
  probe: BackendProbe;
}

export async function chooseBackend(request: BackendRequest): Promise<BackendChoice> {
  if (request !== 'auto') {
    const backend = backendNamed(request);
    const probe = await backend.probe();
    if (!probe.available) throw new UsageError(`--backend ${request}: ${probe.reason}`);
    // Bare-metal guests still run on such a backend, so the user's explicit choice stands, with a warning.
    const warning = probe.runsLinux ? '' : `; warning: ${probe.reason} (for Linux use --backend auto)`;
    return { backend, reason: `requested with --backend ${request}${warning}`, probe };
  }
  const passedOver: string[] = [];
  for (const backend of BACKENDS) {
    const probe = await backend.probe();
    if (probe.available && probe.runsLinux) {
      return { backend, reason: passedOver.length ? passedOver.join('; ') : probe.reason, probe };
    }
    passedOver.push(`${backend.title} cannot run a Linux guest here: ${probe.reason}`);
  }
  throw new UsageError(`no backend can run a Linux guest here: ${passedOver.join('; ')}`);
}
