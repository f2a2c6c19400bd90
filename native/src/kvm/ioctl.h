// ioctl wrapper: retries calls interrupted by a signal (our kick signal has no SA_RESTART) and
// throws a JS error naming the ioctl on failure. KVM_RUN does not use it: there EINTR means "kicked".
#pragma once

#include <sys/ioctl.h>

#include <cerrno>

#include "../common/errors.h"

namespace tsvmm {

template <typename Arg>
inline int Ioctl(Napi::Env env, int fd, unsigned long request, Arg arg, const char* name) {
  int ret;
  do {
    ret = ioctl(fd, request, arg);
  } while (ret < 0 && errno == EINTR);
  if (ret < 0) ThrowErrno(env, name);
  return ret;
}

}  // namespace tsvmm
