// The KVM part of the VMM's native module (native/vmm.ts): the module, once its struct layouts
// are checked against the ones kvm.ts reads. kvm.ts builds the backend interface on it.
import { vmmNative, type VmmNative } from '../../native/vmm.ts';

export type KvmAddon = VmmNative;

/** What addon.run() returns for a kick (KVM exit reasons are >= 0); checked against the module at load. */
export const RUN_KICKED = -1;

let checked: KvmAddon | undefined;

/** The module, loaded once per thread; throws NativeModuleMissingError when it is not built. */
export function loadKvmAddon(): KvmAddon {
  if (checked) return checked;
  const addon = vmmNative();
  checkLayouts(addon);
  return (checked = addon);
}

// The TypeScript side reads kvm_run and the register structs at fixed offsets (uapi, stable);
// refuse to run if the header the module was built against disagrees.
function checkLayouts(addon: KvmAddon): void {
  const c = addon.constants;
  const expected = { sizeofKvmRegs: 144, sizeofKvmSregs: 312, sizeofKvmCpuidEntry2: 40, offsetofExitReason: 8, offsetofExitUnion: 32 };
  for (const [name, value] of Object.entries(expected)) {
    const actual = c[name as keyof typeof expected];
    if (actual !== value) throw new Error(`KVM module layout mismatch: ${name} is ${actual}, expected ${value}`);
  }
  if (addon.runKicked !== RUN_KICKED) throw new Error(`KVM module mismatch: runKicked is ${addon.runKicked}, expected ${RUN_KICKED}`);
}
