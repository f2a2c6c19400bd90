// eventfd helpers: ioeventfd doorbells and irqfd interrupt lines are eventfds.
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>

#include "errors.h"
#include "exports.h"

namespace tsvmm {

// eventfdCreate(initial = 0, nonblocking = false): number (EFD_CLOEXEC)
static Napi::Value EventfdCreate(const Napi::CallbackInfo& info) {
  unsigned initial = info.Length() > 0 ? static_cast<unsigned>(ArgInt(info, 0, "eventfdCreate", "initial")) : 0;
  bool nonblocking = info.Length() > 1 && ArgBool(info, 1, "eventfdCreate", "nonblocking");
  int fd = eventfd(initial, EFD_CLOEXEC | (nonblocking ? EFD_NONBLOCK : 0));
  if (fd < 0) ThrowErrno(info.Env(), "eventfd");
  return Napi::Number::New(info.Env(), fd);
}

// eventfdRead(fd): bigint — the counter, reset to 0. On a non-blocking eventfd whose counter
// is 0, returns 0n instead of failing with EAGAIN. A blocking eventfd blocks the calling thread.
static Napi::Value EventfdRead(const Napi::CallbackInfo& info) {
  int fd = ArgInt(info, 0, "eventfdRead", "fd");
  uint64_t value = 0;
  ssize_t n;
  do {
    n = read(fd, &value, sizeof value);
  } while (n < 0 && errno == EINTR);
  if (n < 0 && errno == EAGAIN) return Napi::BigInt::New(info.Env(), static_cast<uint64_t>(0));
  if (n != static_cast<ssize_t>(sizeof value)) ThrowErrno(info.Env(), "read(eventfd)");
  return Napi::BigInt::New(info.Env(), value);
}

// eventfdWrite(fd, value: bigint | number = 1n): void — adds value to the counter.
static Napi::Value EventfdWrite(const Napi::CallbackInfo& info) {
  int fd = ArgInt(info, 0, "eventfdWrite", "fd");
  uint64_t value = info.Length() > 1 ? ArgU64(info, 1, "eventfdWrite", "value") : 1;
  ssize_t n;
  do {
    n = write(fd, &value, sizeof value);
  } while (n < 0 && errno == EINTR);
  if (n != static_cast<ssize_t>(sizeof value)) ThrowErrno(info.Env(), "write(eventfd)");
  return info.Env().Undefined();
}

void ExportEventfd(Napi::Env env, Napi::Object exports) {
  exports.Set("eventfdCreate", Napi::Function::New(env, EventfdCreate, "eventfdCreate"));
  exports.Set("eventfdRead", Napi::Function::New(env, EventfdRead, "eventfdRead"));
  exports.Set("eventfdWrite", Napi::Function::New(env, EventfdWrite, "eventfdWrite"));
}

}  // namespace tsvmm
