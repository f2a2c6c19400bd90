// /dev/kvm: the system-level ioctls.
#include <fcntl.h>
#include <linux/kvm.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "cpuid.h"
#include "../common/errors.h"
#include "../common/exports.h"
#include "ioctl.h"

namespace tsvmm {

// openDevice(path = "/dev/kvm"): number
static Napi::Value OpenDevice(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = info.Length() > 0 && info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "/dev/kvm";
  int fd = open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) ThrowErrno(env, ("open " + path).c_str());
  return Napi::Number::New(env, fd);
}

// getApiVersion(kvmFd): number (12 on every kernel since 2.6.22)
static Napi::Value GetApiVersion(const Napi::CallbackInfo& info) {
  int fd = ArgInt(info, 0, "getApiVersion", "kvmFd");
  return Napi::Number::New(info.Env(), Ioctl(info.Env(), fd, KVM_GET_API_VERSION, 0, "KVM_GET_API_VERSION"));
}

// checkExtension(fd, cap): number — 0 when absent; some capabilities return a count. Works on
// the /dev/kvm fd and (more precisely, for per-VM answers) on a VM fd.
static Napi::Value CheckExtension(const Napi::CallbackInfo& info) {
  int fd = ArgInt(info, 0, "checkExtension", "fd");
  int cap = ArgInt(info, 1, "checkExtension", "cap");
  return Napi::Number::New(info.Env(), Ioctl(info.Env(), fd, KVM_CHECK_EXTENSION, cap, "KVM_CHECK_EXTENSION"));
}

// getVcpuMmapSize(kvmFd): number — bytes to map of each vCPU fd (kvm_run, PIO page, ...).
static Napi::Value GetVcpuMmapSize(const Napi::CallbackInfo& info) {
  int fd = ArgInt(info, 0, "getVcpuMmapSize", "kvmFd");
  return Napi::Number::New(info.Env(), Ioctl(info.Env(), fd, KVM_GET_VCPU_MMAP_SIZE, 0, "KVM_GET_VCPU_MMAP_SIZE"));
}

// getSupportedCpuid(kvmFd): ArrayBuffer — nent × struct kvm_cpuid_entry2 (40 bytes each).
static Napi::Value GetSupportedCpuid(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgInt(info, 0, "getSupportedCpuid", "kvmFd");
  // Start where alioth/kvmtool do (KVM_MAX_CPUID_ENTRIES = 256) and grow on E2BIG.
  for (uint32_t capacity = 256; capacity <= 4096; capacity *= 2) {
    std::vector<uint8_t> buf(sizeof(Cpuid2Header) + capacity * sizeof(kvm_cpuid_entry2));
    auto* header = reinterpret_cast<Cpuid2Header*>(buf.data());
    header->nent = capacity;
    int ret;
    do {
      ret = ioctl(fd, kKvmGetSupportedCpuid, buf.data());
    } while (ret < 0 && errno == EINTR);
    if (ret < 0 && errno == E2BIG) continue;
    if (ret < 0) ThrowErrno(env, "KVM_GET_SUPPORTED_CPUID");
    size_t bytes = header->nent * sizeof(kvm_cpuid_entry2);
    Napi::ArrayBuffer out = Napi::ArrayBuffer::New(env, bytes);
    memcpy(out.Data(), buf.data() + sizeof(Cpuid2Header), bytes);
    return out;
  }
  errno = E2BIG;
  ThrowErrno(env, "KVM_GET_SUPPORTED_CPUID");
}

// createVm(kvmFd, type = 0): number
static Napi::Value CreateVm(const Napi::CallbackInfo& info) {
  int fd = ArgInt(info, 0, "createVm", "kvmFd");
  int type = info.Length() > 1 ? ArgInt(info, 1, "createVm", "type") : 0;
  return Napi::Number::New(info.Env(), Ioctl(info.Env(), fd, KVM_CREATE_VM, type, "KVM_CREATE_VM"));
}

void ExportSystem(Napi::Env env, Napi::Object exports) {
  exports.Set("openDevice", Napi::Function::New(env, OpenDevice, "openDevice"));
  exports.Set("getApiVersion", Napi::Function::New(env, GetApiVersion, "getApiVersion"));
  exports.Set("checkExtension", Napi::Function::New(env, CheckExtension, "checkExtension"));
  exports.Set("getVcpuMmapSize", Napi::Function::New(env, GetVcpuMmapSize, "getVcpuMmapSize"));
  exports.Set("getSupportedCpuid", Napi::Function::New(env, GetSupportedCpuid, "getSupportedCpuid"));
  exports.Set("createVm", Napi::Function::New(env, CreateVm, "createVm"));
}

}  // namespace tsvmm
