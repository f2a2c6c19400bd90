#include "mappings.h"

#include <sys/mman.h>

#include <map>
#include <mutex>
#include <string>

#include "../common/errors.h"
#include "../common/exports.h"

namespace tsvmm {

namespace {

struct Mapping {
  void* addr;
  size_t length;
  bool live;
  std::function<void()> beforeUnmap;
};

// Live mappings by start address. Shared by all threads (every worker maps memory too).
std::map<uintptr_t, Mapping*> registry;
std::mutex registryMutex;

void Release(Mapping* m) {
  if (!m->live) return;
  m->live = false;
  {
    std::lock_guard<std::mutex> lock(registryMutex);
    registry.erase(reinterpret_cast<uintptr_t>(m->addr));
  }
  if (m->beforeUnmap) m->beforeUnmap();
  munmap(m->addr, m->length);
}

void Finalize(Napi::Env, void*, Mapping* m) {
  Release(m);
  delete m;
}

// mapFd(fd, offset, size, writable): ArrayBuffer over a MAP_SHARED mapping, so writes are seen
// by every process mapping the same file (guest RAM shared between the VMM and its plugins).
// NORESERVE: guest RAM is allocated as the guest touches it, not committed up front.
Napi::Value MapFd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgInt(info, 0, "mapFd", "fd");
  uint64_t offset = ArgU64(info, 1, "mapFd", "offset");
  uint64_t size = ArgU64(info, 2, "mapFd", "size");
  bool writable = info.Length() > 3 && info[3].ToBoolean();
  if (size == 0) ThrowType(env, "mapFd", "'size' must be greater than 0");
  int prot = PROT_READ | (writable ? PROT_WRITE : 0);
  void* addr = mmap(nullptr, size, prot, MAP_SHARED | MAP_NORESERVE, fd, static_cast<off_t>(offset));
  if (addr == MAP_FAILED) ThrowErrno(env, "mmap");
  return ExposeMapping(env, addr, size);
}

// unmap(buffer): unmaps a buffer from mapFd (or a vCPU's kvm_run); its views become empty.
Napi::Value UnmapFn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsArrayBuffer()) ThrowType(env, "unmap", "'buffer' must be an ArrayBuffer");
  Unmap(env, info[0].As<Napi::ArrayBuffer>());
  return env.Undefined();
}

}  // namespace

Napi::ArrayBuffer ExposeMapping(Napi::Env env, void* addr, size_t length, std::function<void()> beforeUnmap) {
  // Node 20 refuses ArrayBuffers above 4 GiB, and on that failure it calls the finalizer itself
  // (other failures do not): check first so that the failure path below is never ambiguous.
  if (length > kMaxMappingBytes) {
    if (beforeUnmap) beforeUnmap();
    munmap(addr, length);
    throw Napi::RangeError::New(env, "cannot expose a mapping of " + std::to_string(length) +
                                         " bytes to JavaScript: the limit is 4 GiB per mapping; split the region");
  }
  Mapping* m = new Mapping{addr, length, true, std::move(beforeUnmap)};
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
    throw Napi::Error::New(env, "unmap: this ArrayBuffer is not a live mapping made by mapFd (already unmapped?)");
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

void ExportMappings(Napi::Env env, Napi::Object exports) {
  exports.Set("mapFd", Napi::Function::New(env, MapFd, "mapFd"));
  exports.Set("unmap", Napi::Function::New(env, UnmapFn, "unmap"));
}

}  // namespace tsvmm
