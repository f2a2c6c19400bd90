// eventfds: ioeventfd doorbells, irqfd interrupt lines and the dispatch table's failure report
// are all eventfds. Counters are read as numbers: they count signals between two reads, far
// below 2^53.
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>

#include "../common/errors.h"
#include "../common/exports.h"

namespace tsvmm {

namespace {

// eventfd(initial = 0, nonBlocking = false): fd (EFD_CLOEXEC)
Napi::Value EventfdCreate(const Napi::CallbackInfo& info) {
  unsigned initial = info.Length() > 0 ? static_cast<unsigned>(ArgInt(info, 0, "eventfd", "initial")) : 0;
  bool nonBlocking = info.Length() > 1 && info[1].ToBoolean();
  int fd = eventfd(initial, EFD_CLOEXEC | (nonBlocking ? EFD_NONBLOCK : 0));
  if (fd < 0) ThrowErrno(info.Env(), "eventfd");
  return Napi::Number::New(info.Env(), fd);
}

// eventfdRead(fd): the counter, reset to 0; -1 when it was 0 on a non-blocking eventfd. A
// blocking eventfd blocks the calling thread.
Napi::Value EventfdRead(const Napi::CallbackInfo& info) {
  int fd = ArgInt(info, 0, "eventfdRead", "fd");
  uint64_t value = 0;
  ssize_t n;
  do {
    n = read(fd, &value, sizeof value);
  } while (n < 0 && errno == EINTR);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return Napi::Number::New(info.Env(), -1);
  if (n != static_cast<ssize_t>(sizeof value)) ThrowErrno(info.Env(), "read(eventfd)");
  return Napi::Number::New(info.Env(), static_cast<double>(value));
}

// eventfdWrite(fd, value: number | bigint = 1): adds value to the counter. A full counter
// (EAGAIN on a non-blocking eventfd) still means "signalled", so it is not an error.
Napi::Value EventfdWrite(const Napi::CallbackInfo& info) {
  int fd = ArgInt(info, 0, "eventfdWrite", "fd");
  uint64_t value = info.Length() > 1 ? ArgU64(info, 1, "eventfdWrite", "value") : 1;
  ssize_t n;
  do {
    n = write(fd, &value, sizeof value);
  } while (n < 0 && errno == EINTR);
  if (n != static_cast<ssize_t>(sizeof value) && !(n < 0 && errno == EAGAIN)) ThrowErrno(info.Env(), "write(eventfd)");
  return info.Env().Undefined();
}

}  // namespace

void ExportEventfd(Napi::Env env, Napi::Object exports) {
  exports.Set("eventfd", Napi::Function::New(env, EventfdCreate, "eventfd"));
  exports.Set("eventfdRead", Napi::Function::New(env, EventfdRead, "eventfdRead"));
  exports.Set("eventfdWrite", Napi::Function::New(env, EventfdWrite, "eventfdWrite"));
}

}  // namespace tsvmm
