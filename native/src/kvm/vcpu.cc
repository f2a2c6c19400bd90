// vCPU ioctls and the run loop. A vCPU is named by its slot in the process-global table
// (kick.h) and is used only by the thread that created it. The run loop completes plugin
// accesses itself (ioregion-exit.h) and returns to JavaScript only for the rest.
#include <linux/kvm.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "cpuid.h"
#include "../common/errors.h"
#include "../common/exports.h"
#include "ioctl.h"
#include "ioregion-exit.h"
#include "kick.h"
#include "../fdio/mappings.h"

namespace tsvmm {

// What run() returns when KVM_RUN was interrupted by a kick (KVM exit reasons are >= 0).
constexpr int kRunKicked = -1;

// createVcpu(vmFd, id, mmapSize): { slot, fd, run: ArrayBuffer }
// `run` maps the vCPU fd: struct kvm_run, then the PIO data page (exit data for port I/O).
static Napi::Value CreateVcpu(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int vmFd = ArgInt(info, 0, "createVcpu", "vmFd");
  int id = ArgInt(info, 1, "createVcpu", "id");
  int mmapSize = ArgInt(info, 2, "createVcpu", "mmapSize");
  if (mmapSize < static_cast<int>(sizeof(kvm_run))) ThrowType(env, "createVcpu", "'mmapSize' is smaller than struct kvm_run");
  int fd = Ioctl(env, vmFd, KVM_CREATE_VCPU, id, "KVM_CREATE_VCPU");
  void* addr = mmap(nullptr, mmapSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (addr == MAP_FAILED) {
    int err = errno;
    close(fd);
    throw ErrnoError(env, "mmap(kvm_run)", err);
  }
  int slot;
  try {
    slot = RegisterVcpu(env, fd, static_cast<kvm_run*>(addr), mmapSize);
  } catch (...) {
    munmap(addr, mmapSize);
    close(fd);
    throw;
  }
  uint32_t generation = OwnedVcpu(env, slot, "createVcpu").generation;
  Napi::Object result = Napi::Object::New(env);
  result.Set("slot", Napi::Number::New(env, slot));
  result.Set("fd", Napi::Number::New(env, fd));
  // A kick writes into kvm_run: the vCPU leaves the kick table before its pages are unmapped.
  result.Set("run", ExposeMapping(env, addr, mmapSize, [slot, generation] { ReleaseVcpu(slot, generation); }));
  return result;
}

// destroyVcpu(slot): void — closes the vCPU; then unmap() its `run` buffer.
static Napi::Value DestroyVcpu(const Napi::CallbackInfo& info) {
  int slot = ArgInt(info, 0, "destroyVcpu", "slot");
  VcpuEntry& e = OwnedVcpu(info.Env(), slot, "destroyVcpu");
  ReleaseVcpu(slot, e.generation);
  return info.Env().Undefined();
}

template <typename T>
static T* StructArg(const Napi::CallbackInfo& info, size_t i, const char* fn) {
  Bytes b = ArgBytes(info, i, fn, "buffer");
  if (b.length != sizeof(T)) {
    ThrowType(info.Env(), fn, ("'buffer' must be exactly " + std::to_string(sizeof(T)) + " bytes").c_str());
  }
  return reinterpret_cast<T*>(b.data);
}

// getRegs(slot, out: Uint8Array(144)) / setRegs(slot, regs) — struct kvm_regs, decoded in TS.
static Napi::Value GetRegs(const Napi::CallbackInfo& info) {
  VcpuEntry& e = OwnedVcpu(info.Env(), ArgInt(info, 0, "getRegs", "slot"), "getRegs");
  Ioctl(info.Env(), e.fd, KVM_GET_REGS, StructArg<kvm_regs>(info, 1, "getRegs"), "KVM_GET_REGS");
  return info.Env().Undefined();
}
static Napi::Value SetRegs(const Napi::CallbackInfo& info) {
  VcpuEntry& e = OwnedVcpu(info.Env(), ArgInt(info, 0, "setRegs", "slot"), "setRegs");
  Ioctl(info.Env(), e.fd, KVM_SET_REGS, StructArg<kvm_regs>(info, 1, "setRegs"), "KVM_SET_REGS");
  return info.Env().Undefined();
}

// getSregs(slot, out: Uint8Array(312)) / setSregs(slot, sregs) — struct kvm_sregs.
static Napi::Value GetSregs(const Napi::CallbackInfo& info) {
  VcpuEntry& e = OwnedVcpu(info.Env(), ArgInt(info, 0, "getSregs", "slot"), "getSregs");
  Ioctl(info.Env(), e.fd, KVM_GET_SREGS, StructArg<kvm_sregs>(info, 1, "getSregs"), "KVM_GET_SREGS");
  return info.Env().Undefined();
}
static Napi::Value SetSregs(const Napi::CallbackInfo& info) {
  VcpuEntry& e = OwnedVcpu(info.Env(), ArgInt(info, 0, "setSregs", "slot"), "setSregs");
  Ioctl(info.Env(), e.fd, KVM_SET_SREGS, StructArg<kvm_sregs>(info, 1, "setSregs"), "KVM_SET_SREGS");
  return info.Env().Undefined();
}

// getMpState(slot): KVM_MP_STATE_* — HALTED (3) while the vCPU sleeps in an in-kernel HLT.
static Napi::Value GetMpState(const Napi::CallbackInfo& info) {
  VcpuEntry& e = OwnedVcpu(info.Env(), ArgInt(info, 0, "getMpState", "slot"), "getMpState");
  kvm_mp_state state{};
  Ioctl(info.Env(), e.fd, KVM_GET_MP_STATE, &state, "KVM_GET_MP_STATE");
  return Napi::Number::New(info.Env(), state.mp_state);
}

// setCpuid2(slot, entries: Uint8Array) — n × struct kvm_cpuid_entry2 (40 bytes).
static Napi::Value SetCpuid2(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  VcpuEntry& e = OwnedVcpu(env, ArgInt(info, 0, "setCpuid2", "slot"), "setCpuid2");
  Bytes entries = ArgBytes(info, 1, "setCpuid2", "entries");
  if (entries.length % sizeof(kvm_cpuid_entry2) != 0) ThrowType(env, "setCpuid2", "'entries' must be a multiple of 40 bytes");
  std::vector<uint8_t> buf(sizeof(Cpuid2Header) + entries.length);
  reinterpret_cast<Cpuid2Header*>(buf.data())->nent = static_cast<__u32>(entries.length / sizeof(kvm_cpuid_entry2));
  memcpy(buf.data() + sizeof(Cpuid2Header), entries.data, entries.length);
  Ioctl(env, e.fd, kKvmSetCpuid2, buf.data(), "KVM_SET_CPUID2");
  return env.Undefined();
}

// run(slot): number — KVM_RUN until an exit for userspace: the kvm_run exit_reason, or -1 when
// kicked. Synchronous: blocks the calling (vCPU worker) thread while the guest runs.
static Napi::Value Run(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  VcpuEntry& e = OwnedVcpu(env, info[0].As<Napi::Number>().Int32Value(), "run");
  kvm_run* run = e.run;
  for (;;) {
    if (ioctl(e.fd, KVM_RUN, 0) == 0) {
      // Native exit filters go here: an exit the module can complete itself (a plugin's
      // ioregion, forwarded over its socket on this thread) is handled and followed by
      // `continue`, re-entering KVM_RUN without a round trip through JavaScript.
      if (CompleteIoregionExit(run)) continue;
      return Napi::Number::New(env, run->exit_reason);
    }
    if (errno != EINTR) ThrowErrno(env, "KVM_RUN");
    // EINTR: kicked (immediate_exit set by kick() before its signal, or at KVM_RUN entry), or
    // some other signal (a profiler's) that is no reason to leave: then just re-enter.
    if (__atomic_load_n(&run->immediate_exit, __ATOMIC_SEQ_CST)) {
      // Clearing after the fact cannot lose a kick: one that lands between the EINTR and this
      // store asked for exactly what we are about to do, return to JavaScript.
      __atomic_store_n(&run->immediate_exit, 0, __ATOMIC_SEQ_CST);
      return Napi::Number::New(env, kRunKicked);
    }
  }
}

// kick(slot): boolean — from any thread; false when no vCPU is registered in that slot.
static Napi::Value KickFn(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), Kick(ArgInt(info, 0, "kick", "slot")));
}

// armKickTimer(slot, ms): void — kick this vCPU after ms milliseconds (0 disarms). Owner thread only.
static Napi::Value ArmKickTimerFn(const Napi::CallbackInfo& info) {
  int slot = ArgInt(info, 0, "armKickTimer", "slot");
  if (info.Length() < 2 || !info[1].IsNumber()) ThrowType(info.Env(), "armKickTimer", "'ms' must be a number");
  ArmKickTimer(info.Env(), slot, info[1].As<Napi::Number>().DoubleValue());
  return info.Env().Undefined();
}

void ExportVcpu(Napi::Env env, Napi::Object exports) {
  exports.Set("createVcpu", Napi::Function::New(env, CreateVcpu, "createVcpu"));
  exports.Set("destroyVcpu", Napi::Function::New(env, DestroyVcpu, "destroyVcpu"));
  exports.Set("getRegs", Napi::Function::New(env, GetRegs, "getRegs"));
  exports.Set("setRegs", Napi::Function::New(env, SetRegs, "setRegs"));
  exports.Set("getSregs", Napi::Function::New(env, GetSregs, "getSregs"));
  exports.Set("setSregs", Napi::Function::New(env, SetSregs, "setSregs"));
  exports.Set("setCpuid2", Napi::Function::New(env, SetCpuid2, "setCpuid2"));
  exports.Set("getMpState", Napi::Function::New(env, GetMpState, "getMpState"));
  exports.Set("run", Napi::Function::New(env, Run, "run"));
  exports.Set("kick", Napi::Function::New(env, KickFn, "kick"));
  exports.Set("armKickTimer", Napi::Function::New(env, ArmKickTimerFn, "armKickTimer"));
  exports.Set("runKicked", Napi::Number::New(env, kRunKicked));
}

}  // namespace tsvmm
