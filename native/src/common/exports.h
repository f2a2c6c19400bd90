// Each source file adds its functions to a module's exports. The device module (device.cc) is
// the fd I/O alone; the VMM module (vmm/module.cc) is all of them.
#pragma once

#include <napi.h>

namespace tsvmm {

// fd I/O (fdio/): what both sides of the plugin protocol need.
void ExportSockets(Napi::Env env, Napi::Object exports);
void ExportEventfd(Napi::Env env, Napi::Object exports);
void ExportMappings(Napi::Env env, Napi::Object exports);
void ExportWatcher(Napi::Env env, Napi::Object exports);

// The VMM's own: guest RAM memfds, the ioregion dispatch table, KVM.
void ExportMemfd(Napi::Env env, Napi::Object exports);
void ExportIoregion(Napi::Env env, Napi::Object exports);
void ExportSystem(Napi::Env env, Napi::Object exports);
void ExportVm(Napi::Env env, Napi::Object exports);
void ExportVcpu(Napi::Env env, Napi::Object exports);

}  // namespace tsvmm
