// Turning failed system calls into JavaScript errors that name the call and the errno:
//   "KVM_CREATE_VM failed: EACCES (Permission denied)", with .code, .errno and .syscall set,
// so callers can both show the message and branch on the code.
#pragma once

#include <napi.h>

namespace tsvmm {

// Builds the error for `what` (an ioctl or syscall name) failing with `err`.
Napi::Error ErrnoError(Napi::Env env, const char* what, int err);

// Throws ErrnoError(env, what, errno). Call right after the failing call, before anything
// else can overwrite errno.
[[noreturn]] void ThrowErrno(Napi::Env env, const char* what);

// Argument checking with messages that say which argument of which function was wrong.
[[noreturn]] void ThrowType(Napi::Env env, const char* fn, const char* message);
int ArgInt(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name);
uint64_t ArgU64(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name);
bool ArgBool(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name);
// The bytes of a Uint8Array (or any TypedArray/ArrayBuffer) argument; length checked by the caller.
struct Bytes {
  uint8_t* data;
  size_t length;
};
Bytes ArgBytes(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name);

}  // namespace tsvmm
