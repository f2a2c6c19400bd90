#include "mappings.h"

#include <sys/mman.h>

#include <map>
#include <mutex>
#include <string>

#include "kick.h"

namespace tsvmm {

namespace {

struct Mapping {
  void* addr;
  size_t length;
  bool live;
  bool hasVcpu;
  VcpuOwner vcpu;
};

// Live mappings by start address. Shared by all threads (plugins and workers map memory too).
std::map<uintptr_t, Mapping*> registry;
std::mutex registryMutex;

void Release(Mapping* m) {
  if (!m->live) return;
  m->live = false;
  {
    std::lock_guard<std::mutex> lock(registryMutex);
    registry.erase(reinterpret_cast<uintptr_t>(m->addr));
  }
  if (m->hasVcpu) ReleaseVcpu(m->vcpu.slot, m->vcpu.generation);
  munmap(m->addr, m->length);
}

void Finalize(Napi::Env, void*, Mapping* m) {
  Release(m);
  delete m;
}

}  // namespace

Napi::ArrayBuffer ExposeMapping(Napi::Env env, void* addr, size_t length, const VcpuOwner* vcpu) {
  // Node 20 refuses ArrayBuffers above 4 GiB, and on that failure it calls the finalizer itself
  // (other failures do not): check first so that the failure path below is never ambiguous.
  if (length > kMaxMappingBytes) {
    if (vcpu) ReleaseVcpu(vcpu->slot, vcpu->generation);
    munmap(addr, length);
    throw Napi::RangeError::New(env, "cannot expose a mapping of " + std::to_string(length) +
                                         " bytes to JavaScript: the limit is 4 GiB per mapping; split the region");
  }
  Mapping* m = new Mapping{addr, length, true, vcpu != nullptr, vcpu ? *vcpu : VcpuOwner{-1, 0}};
  {
    std::lock_guard<std::mutex> lock(registryMutex);
    registry[reinterpret_cast<uintptr_t>(addr)] = m;
  }
  // If this throws, whether the finalizer already ran is up to Node; leaking the mapping is
  // the safe choice for a failure that the size check above leaves practically impossible.
  return Napi::ArrayBuffer::New(env, addr, length, Finalize, m);
}

void Unmap(Napi::Env env, Napi::ArrayBuffer buffer) {
  Mapping* m = nullptr;
  {
    std::lock_guard<std::mutex> lock(registryMutex);
    auto it = registry.find(reinterpret_cast<uintptr_t>(buffer.Data()));
    if (it != registry.end() && it->second->length == buffer.ByteLength()) m = it->second;
  }
  if (m == nullptr) {
    throw Napi::Error::New(env, "unmap: this ArrayBuffer is not a live mapping made by the KVM addon (already unmapped?)");
  }
  // Detach first: afterwards no JS view can reach the pages we are about to unmap.
  buffer.Detach();
  Release(m);  // the Mapping itself is freed by the finalizer
}

bool IsInsideMapping(const void* data, size_t length) {
  uintptr_t start = reinterpret_cast<uintptr_t>(data);
  std::lock_guard<std::mutex> lock(registryMutex);
  auto it = registry.upper_bound(start);
  if (it == registry.begin()) return false;
  --it;
  const Mapping* m = it->second;
  uintptr_t base = reinterpret_cast<uintptr_t>(m->addr);
  return start >= base && length <= m->length && start - base <= m->length - length;
}

}  // namespace tsvmm
