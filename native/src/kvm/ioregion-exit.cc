// The KVM run loop's side of plugin dispatch. Upstream KVM would do this inside KVM_RUN
// (ioregionfd RFC v3, KVM_SET_IOREGION); a VMM can do the closest thing: on the vCPU thread, in
// C++, before the exit reaches JavaScript, with the dispatch table in this same module.
#include "ioregion-exit.h"

#include <cstdint>

#include "../ioregion/table.h"

namespace tsvmm {

bool CompleteIoregionExit(kvm_run* run) {
  if (run->exit_reason == KVM_EXIT_MMIO) {
    uint32_t len = run->mmio.len;
    if (len != 1 && len != 2 && len != 4 && len != 8) return false;
    return ioregion::Dispatch(ioregion::kBusMmio, run->mmio.phys_addr, len, run->mmio.is_write, run->mmio.data) != ioregion::kMiss;
  }
  if (run->exit_reason == KVM_EXIT_IO) {
    // String I/O (count > 1) goes to JavaScript, which splits it into single accesses.
    if (run->io.count != 1) return false;
    uint8_t* data = reinterpret_cast<uint8_t*>(run) + run->io.data_offset;
    return ioregion::Dispatch(ioregion::kBusPio, run->io.port, run->io.size, run->io.direction == KVM_EXIT_IO_OUT, data) != ioregion::kMiss;
  }
  return false;
}

}  // namespace tsvmm
