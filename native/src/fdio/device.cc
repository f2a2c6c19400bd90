// tsvmm_device: the native module of device processes (plugins), built from the fd I/O sources
// the VMM's module is built from too (native/binding.gyp): fd passing, SOCK_SEQPACKET, shared
// mappings of guest RAM, eventfds and fd watchers — and nothing of the VMM's.
#include "../common/exports.h"

static Napi::Object InitTsvmmDevice(Napi::Env env, Napi::Object exports) {
  using namespace tsvmm;
  ExportSockets(env, exports);
  ExportEventfd(env, exports);
  ExportMappings(env, exports);
  ExportWatcher(env, exports);
  return exports;
}

NODE_API_MODULE(tsvmm_device, InitTsvmmDevice)
