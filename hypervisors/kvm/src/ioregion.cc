// The KVM run loop's side of plugin dispatch. The dispatch table and the socket round trip live
// in the plugin SDK's native helper (devices/plugin-sdk/native/src/ioregion.cc), which the
// plugin manager loads with RTLD_GLOBAL; this file finds its entry point with dlsym so this
// addon neither links against it nor needs it (no plugins: no lookup cost beyond a rate-limited
// dlsym). Upstream KVM would do this inside KVM_RUN (ioregionfd RFC v3); we do the closest thing
// a VMM can: on the vCPU thread, in C++, before the exit reaches JavaScript.
#include "ioregion.h"

#include <dlfcn.h>
#include <time.h>

#include <atomic>
#include <cstdint>

namespace tsvmm {
namespace {

using DispatchFn = int (*)(int bus, uint64_t addr, uint32_t size, int is_write, uint8_t* data);
constexpr int kBusMmio = 0;
constexpr int kBusPio = 1;
constexpr int kMiss = 0;
// While the helper is not loaded, look again at most this often: it may be loaded later.
constexpr int64_t kRetryNs = 100'000'000;

std::atomic<DispatchFn> g_dispatch{nullptr};
std::atomic<int64_t> g_next_lookup_ns{0};

int64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

DispatchFn Dispatcher() {
  DispatchFn fn = g_dispatch.load(std::memory_order_acquire);
  if (fn) return fn;
  int64_t now = NowNs();
  if (now < g_next_lookup_ns.load(std::memory_order_relaxed)) return nullptr;
  g_next_lookup_ns.store(now + kRetryNs, std::memory_order_relaxed);
  fn = reinterpret_cast<DispatchFn>(dlsym(RTLD_DEFAULT, "tsvmm_ioregion_dispatch"));
  if (fn) g_dispatch.store(fn, std::memory_order_release);
  return fn;
}

}  // namespace

bool CompleteIoregionExit(kvm_run* run) {
  if (run->exit_reason == KVM_EXIT_MMIO) {
    uint32_t len = run->mmio.len;
    if (len != 1 && len != 2 && len != 4 && len != 8) return false;
    DispatchFn fn = Dispatcher();
    return fn && fn(kBusMmio, run->mmio.phys_addr, len, run->mmio.is_write, run->mmio.data) != kMiss;
  }
  if (run->exit_reason == KVM_EXIT_IO) {
    // String I/O (count > 1) goes to JavaScript, which can split it across devices.
    if (run->io.count != 1) return false;
    DispatchFn fn = Dispatcher();
    uint8_t* data = reinterpret_cast<uint8_t*>(run) + run->io.data_offset;
    return fn && fn(kBusPio, run->io.port, run->io.size, run->io.direction == KVM_EXIT_IO_OUT, data) != kMiss;
  }
  return false;
}

}  // namespace tsvmm
