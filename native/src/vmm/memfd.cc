// Guest RAM and slot state as memfds: anonymous shared files the VMM creates and hands to
// device processes, which map them (mapFd) to reach guest memory.
// node.h and v8.h first: mapFdShared needs V8 itself (see there).
#include <node.h>
#include <v8.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "../common/errors.h"
#include "../common/exports.h"

namespace tsvmm {

namespace {

// memfdCreate(name, size, sealSize = false): fd. A sealed one can never be resized, so a process
// it is handed to cannot shrink it under the VMM's mapping or grow it without bound.
Napi::Value MemfdCreate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) ThrowType(env, "memfdCreate", "'name' must be a string");
  std::string name = info[0].As<Napi::String>().Utf8Value();
  uint64_t size = ArgU64(info, 1, "memfdCreate", "size");
  bool sealSize = info.Length() > 2 && info[2].ToBoolean();
  int fd = memfd_create(name.c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) ThrowErrno(env, "memfd_create");
  const char* failed = nullptr;
  if (ftruncate(fd, static_cast<off_t>(size)) != 0) failed = "ftruncate(memfd)";
  else if (sealSize && fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) failed = "fcntl(F_ADD_SEALS)";
  if (failed) {
    int err = errno;
    close(fd);
    throw ErrnoError(env, failed, err);
  }
  return Napi::Number::New(env, fd);
}

// mapFdShared(fd, offset, size): SharedArrayBuffer over a read/write MAP_SHARED mapping. Lets a
// backend whose guest RAM must be a SharedArrayBuffer (the interpreter: worker threads share it)
// back it with a memfd that plugin processes can map too. N-API cannot make an external
// SharedArrayBuffer, so this one function uses V8 directly (the module is built from source for
// the running Node, so the V8 ABI matches).
Napi::Value MapFdShared(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgInt(info, 0, "mapFdShared", "fd");
  uint64_t offset = ArgU64(info, 1, "mapFdShared", "offset");
  uint64_t size = ArgU64(info, 2, "mapFdShared", "size");
  if (size == 0) ThrowType(env, "mapFdShared", "'size' must be greater than 0");
  void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, static_cast<off_t>(offset));
  if (p == MAP_FAILED) ThrowErrno(env, "mmap");
  v8::Isolate* isolate = v8::Isolate::GetCurrent();
  std::unique_ptr<v8::BackingStore> store = v8::SharedArrayBuffer::NewBackingStore(
      p, static_cast<size_t>(size), [](void* data, size_t length, void*) { munmap(data, length); }, nullptr);
  v8::Local<v8::SharedArrayBuffer> sab = v8::SharedArrayBuffer::New(isolate, std::move(store));
  v8::Local<v8::Value> value = sab;
  return Napi::Value(env, reinterpret_cast<napi_value>(*value));
}

}  // namespace

void ExportMemfd(Napi::Env env, Napi::Object exports) {
  exports.Set("memfdCreate", Napi::Function::New(env, MemfdCreate, "memfdCreate"));
  exports.Set("mapFdShared", Napi::Function::New(env, MapFdShared, "mapFdShared"));
}

}  // namespace tsvmm
