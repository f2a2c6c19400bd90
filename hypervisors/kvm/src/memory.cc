// Shared memory: memfd-backed guest RAM and mapping of fds received from other processes.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <string>

#include "errors.h"
#include "exports.h"
#include "mappings.h"

namespace tsvmm {

// memfdCreate(name: string, size: number): number — an anonymous shared file of `size` bytes.
static Napi::Value MemfdCreate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) ThrowType(env, "memfdCreate", "'name' must be a string");
  std::string name = info[0].As<Napi::String>().Utf8Value();
  uint64_t size = ArgU64(info, 1, "memfdCreate", "size");
  int fd = memfd_create(name.c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) ThrowErrno(env, "memfd_create");
  if (ftruncate(fd, static_cast<off_t>(size)) != 0) {
    int err = errno;
    close(fd);
    throw ErrnoError(env, "ftruncate(memfd)", err);
  }
  return Napi::Number::New(env, fd);
}

// mapFd(fd: number, size: number, writable: boolean, offset = 0): ArrayBuffer — MAP_SHARED, so
// writes are seen by every process mapping the same file (guest RAM shared with plugins).
static Napi::Value MapFd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgInt(info, 0, "mapFd", "fd");
  uint64_t size = ArgU64(info, 1, "mapFd", "size");
  bool writable = ArgBool(info, 2, "mapFd", "writable");
  uint64_t offset = info.Length() > 3 ? ArgU64(info, 3, "mapFd", "offset") : 0;
  if (size == 0) ThrowType(env, "mapFd", "'size' must be greater than 0");
  int prot = PROT_READ | (writable ? PROT_WRITE : 0);
  // NORESERVE: guest RAM is allocated as the guest touches it, not committed up front.
  void* addr = mmap(nullptr, size, prot, MAP_SHARED | MAP_NORESERVE, fd, static_cast<off_t>(offset));
  if (addr == MAP_FAILED) ThrowErrno(env, "mmap");
  return ExposeMapping(env, addr, size);
}

// unmap(buffer: ArrayBuffer): void — unmaps a buffer from mapFd/createVcpu; its views become empty.
static Napi::Value UnmapFn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsArrayBuffer()) ThrowType(env, "unmap", "'buffer' must be an ArrayBuffer");
  Unmap(env, info[0].As<Napi::ArrayBuffer>());
  return env.Undefined();
}

// close(fd: number): void
static Napi::Value Close(const Napi::CallbackInfo& info) {
  int fd = ArgInt(info, 0, "close", "fd");
  if (close(fd) != 0) ThrowErrno(info.Env(), "close");
  return info.Env().Undefined();
}

void ExportMemory(Napi::Env env, Napi::Object exports) {
  exports.Set("memfdCreate", Napi::Function::New(env, MemfdCreate, "memfdCreate"));
  exports.Set("mapFd", Napi::Function::New(env, MapFd, "mapFd"));
  exports.Set("unmap", Napi::Function::New(env, UnmapFn, "unmap"));
  exports.Set("close", Napi::Function::New(env, Close, "close"));
}

}  // namespace tsvmm
