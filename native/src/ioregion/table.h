// The VMM's ioregion dispatch table: tsvmm's KVM_SET_IOREGION (ioregionfd RFC v3), kept in the
// VMM process. The plugin host (main thread) fills it; vCPU threads dispatch guest accesses
// through it: the KVM run loop in C++ (kvm/ioregion-exit.cc), the interpreter through JS.
#pragma once

#include <cstdint>

namespace tsvmm::ioregion {

// Bus numbers, as in the plugin protocol.
constexpr int kBusMmio = 0;
constexpr int kBusPio = 1;

// What Dispatch did.
enum Result : int {
  kMiss = 0,     // no plugin region or ioeventfd covers the access
  kHandled = 1,  // done; for reads, data[0..size) holds the value
  kFailed = 2,   // the region's plugin is gone: reads got all-ones, writes were dropped
};

// Dispatch one guest access of `size` (1, 2, 4, 8) bytes at `addr` on `bus`: signal a matching
// ioeventfd, or send the 32-byte command to the region's plugin and, for reads and non-posted
// writes, wait for its response. Safe on any thread; never calls into JavaScript.
Result Dispatch(int bus, uint64_t addr, uint32_t size, bool write, uint8_t* data);

}  // namespace tsvmm::ioregion
