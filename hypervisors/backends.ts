// Every backend tsvmm has, in the order `--backend auto` prefers them. A backend is its folder
// here plus one entry in this list (and its names in backend.ts's token unions); nothing outside
// hypervisors/ names a backend: the VMM reads what it needs from the descriptor.
import type { BackendDescriptor } from './backend.ts';
import { INTERP } from './interp/descriptor.ts';
import { KVM } from './kvm/descriptor.ts';

export const BACKENDS: readonly BackendDescriptor[] = [KVM, INTERP];

export function backendNamed(name: string): BackendDescriptor {
  const b = BACKENDS.find((x) => x.name === name);
  if (!b) throw new Error(`no backend named ${name}: tsvmm has ${BACKENDS.map((x) => x.name).join(', ')}`);
  return b;
}
