// Whether this host has a usable /dev/kvm; tests that need it skip with this reason printed.
import { accessSync, constants } from 'node:fs';

function reason(): string | undefined {
  try {
    accessSync('/dev/kvm', constants.R_OK | constants.W_OK);
    return undefined;
  } catch (e) {
    return `no usable /dev/kvm (${(e as NodeJS.ErrnoException).code}): KVM tests skipped`;
  }
}

export const kvmSkipReason = reason();
if (kvmSkipReason) console.warn(`SKIP: ${kvmSkipReason}`);
