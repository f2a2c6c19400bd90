// The process-wide ioregion dispatch table (see ioregion.cc).
#pragma once
#include <napi.h>

#include <cstdint>

extern "C" {
// Bus numbers, as in the plugin protocol.
#define TSVMM_BUS_MMIO 0
#define TSVMM_BUS_PIO 1

// Results of tsvmm_ioregion_dispatch.
#define TSVMM_IOREGION_MISS 0     // no plugin region or ioeventfd covers the access
#define TSVMM_IOREGION_HANDLED 1  // done; for reads, data[0..size) holds the value
#define TSVMM_IOREGION_FAILED 2   // the region's plugin is gone: reads got all-ones, writes dropped

// Dispatch one guest access of `size` (1, 2, 4, 8) bytes. Safe to call from any thread, in
// particular from a vCPU thread inside the KVM addon's run loop (no JavaScript involved).
// Other addons find it with dlsym(RTLD_DEFAULT, "tsvmm_ioregion_dispatch") once this addon
// is loaded with RTLD_GLOBAL (devices/plugin-sdk/native.ts does that).
__attribute__((visibility("default"))) int tsvmm_ioregion_dispatch(int bus, uint64_t addr, uint32_t size,
                                                                   int is_write, uint8_t* data);
}

namespace tsvmm::ioregion {
void InitExports(Napi::Env env, Napi::Object exports);
}
