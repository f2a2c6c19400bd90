// Turns a WiringToken (posted by the vCPU worker) into a VmWiring on this thread: the one place
// that maps wiring tokens to backends, as kick.ts does for kick tokens.
import type { VmWiring, WiringToken } from './backend.ts';
import { InterpWiring } from './interp/wiring.ts';
import { KvmWiring } from './kvm/wiring.ts';

export function openWiring(token: WiringToken): VmWiring {
  switch (token.backend) {
    case 'kvm':
      return new KvmWiring(token.vmFd);
    case 'interp':
      return new InterpWiring(token);
  }
}
