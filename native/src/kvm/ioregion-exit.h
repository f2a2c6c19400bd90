// Plugin accesses completed on the vCPU thread, inside the run loop (ioregionfd-style).
#pragma once

#include <linux/kvm.h>

namespace tsvmm {

// If the exit in `run` (KVM_EXIT_MMIO, or KVM_EXIT_IO with count 1) hits a plugin region or a
// software ioeventfd in the dispatch table, complete it here — send the 32-byte command, wait
// for the response, fill the read data — and return true: the caller re-enters KVM_RUN without
// returning to JavaScript. Returns false for every other exit.
bool CompleteIoregionExit(kvm_run* run);

}  // namespace tsvmm
