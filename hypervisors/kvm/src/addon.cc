// tsvmm_kvm: a thin, typed-at-the-TypeScript-layer binding of the Linux KVM API, in the spirit
// of rust-vmm's kvm-ioctls. Functions take and return fds, vCPU slots and raw struct bytes;
// hypervisors/kvm/kvm.ts turns them into the backend interface. See docs/kvm.md.
#include <linux/kvm.h>

#include "exports.h"
#include "kick.h"

namespace tsvmm {

// Struct sizes and constants from the <linux/kvm.h> this addon was compiled against, so the
// TypeScript side can check its layouts against the real header instead of trusting a copy.
static Napi::Object Constants(Napi::Env env) {
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

static Napi::Object InitTsvmmKvm(Napi::Env env, Napi::Object exports) {
  using namespace tsvmm;
  ExportSystem(env, exports);
  ExportVm(env, exports);
  ExportVcpu(env, exports);
  ExportMemory(env, exports);
  ExportEventfd(env, exports);
  exports.Set("constants", Constants(env));
  // A worker that exits with live vCPUs must not leave its (dead) thread in the kick table.
  napi_add_env_cleanup_hook(env, ReleaseOnTeardown, new char);
  return exports;
}

NODE_API_MODULE(tsvmm_kvm, InitTsvmmKvm)
