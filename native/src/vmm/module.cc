// tsvmm_vmm: the VMM's one native module (native/vmm.ts is its TypeScript face). A thin binding
// of the Linux KVM API in the spirit of rust-vmm's kvm-ioctls (kvm/: fds, vCPU slots and raw
// struct bytes in and out; hypervisors/kvm/kvm.ts builds the backend interface on it), the fd
// I/O of the plugin protocol (fdio/, the same sources as the device module), guest RAM memfds,
// and the ioregion dispatch table (ioregion/) that the KVM run loop calls directly.
// See docs/kvm.md and docs/protocol.md.
#include <linux/kvm.h>

#include "../common/exports.h"
#include "../kvm/kick.h"

namespace tsvmm {

// Struct sizes and constants from the <linux/kvm.h> this module was compiled against, so the
// TypeScript side can check its layouts against the real header instead of trusting a copy.
static Napi::Object KvmConstants(Napi::Env env) {
  Napi::Object c = Napi::Object::New(env);
  auto set = [&](const char* name, double v) { c.Set(name, Napi::Number::New(env, v)); };
  set("KVM_API_VERSION", KVM_API_VERSION);
  set("sizeofKvmRun", sizeof(kvm_run));
  set("sizeofKvmRegs", sizeof(kvm_regs));
  set("sizeofKvmSregs", sizeof(kvm_sregs));
  set("sizeofKvmCpuidEntry2", sizeof(kvm_cpuid_entry2));
  set("offsetofExitReason", offsetof(kvm_run, exit_reason));
  set("offsetofExitUnion", offsetof(kvm_run, io));
  set("kickSignal", KickSignal());
  return c;
}

// The hook's argument is a fresh allocation per module instance: Node aborts if the same
// (function, argument) pair is registered twice in one environment.
static void ReleaseOnTeardown(void* token) {
  ReleaseThreadVcpus();
  delete static_cast<char*>(token);
}

}  // namespace tsvmm

static Napi::Object InitTsvmmVmm(Napi::Env env, Napi::Object exports) {
  using namespace tsvmm;
  ExportSockets(env, exports);
  ExportEventfd(env, exports);
  ExportMappings(env, exports);
  ExportWatcher(env, exports);
  ExportMemfd(env, exports);
  ExportIoregion(env, exports);
  ExportSystem(env, exports);
  ExportVm(env, exports);
  ExportVcpu(env, exports);
  exports.Set("constants", KvmConstants(env));
  // A worker that exits with live vCPUs must not leave its (dead) thread in the kick table.
  napi_add_env_cleanup_hook(env, ReleaseOnTeardown, new char);
  return exports;
}

NODE_API_MODULE(tsvmm_vmm, InitTsvmmVmm)
