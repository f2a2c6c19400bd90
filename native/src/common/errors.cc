#include "errors.h"

#include <cerrno>
#include <cmath>
#include <cstring>
#include <string>

namespace tsvmm {

Napi::Error ErrnoError(Napi::Env env, const char* what, int err) {
  const char* name = strerrorname_np(err);
  std::string code = name ? name : ("errno " + std::to_string(err));
  std::string message = std::string(what) + " failed: " + code + " (" + strerror(err) + ")";
  Napi::Error error = Napi::Error::New(env, message);
  error.Set("code", Napi::String::New(env, code));
  error.Set("errno", Napi::Number::New(env, err));
  error.Set("syscall", Napi::String::New(env, what));
  return error;
}

void ThrowErrno(Napi::Env env, const char* what) {
  int err = errno;
  throw ErrnoError(env, what, err);
}

void ThrowType(Napi::Env env, const char* fn, const char* message) {
  throw Napi::TypeError::New(env, std::string(fn) + ": " + message);
}

static Napi::Value Arg(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name) {
  if (i >= info.Length()) ThrowType(info.Env(), fn, (std::string("missing argument '") + name + "'").c_str());
  return info[i];
}

int ArgInt(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name) {
  Napi::Value v = Arg(info, i, fn, name);
  if (!v.IsNumber()) ThrowType(info.Env(), fn, (std::string("'") + name + "' must be a number").c_str());
  double d = v.As<Napi::Number>().DoubleValue();
  if (d != std::floor(d) || d < -2147483648.0 || d > 4294967295.0) {
    ThrowType(info.Env(), fn, (std::string("'") + name + "' must be a 32-bit integer").c_str());
  }
  return static_cast<int>(static_cast<int64_t>(d));
}

uint64_t ArgU64(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name) {
  Napi::Value v = Arg(info, i, fn, name);
  if (v.IsBigInt()) {
    bool lossless = false;
    uint64_t value = v.As<Napi::BigInt>().Uint64Value(&lossless);
    if (!lossless) ThrowType(info.Env(), fn, (std::string("'") + name + "' does not fit in 64 bits").c_str());
    return value;
  }
  if (v.IsNumber()) {
    double d = v.As<Napi::Number>().DoubleValue();
    if (d < 0 || d != std::floor(d) || d > 9007199254740991.0) {
      ThrowType(info.Env(), fn, (std::string("'") + name + "' must be a non-negative safe integer").c_str());
    }
    return static_cast<uint64_t>(d);
  }
  ThrowType(info.Env(), fn, (std::string("'") + name + "' must be a number or bigint").c_str());
}

bool ArgBool(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name) {
  Napi::Value v = Arg(info, i, fn, name);
  if (!v.IsBoolean()) ThrowType(info.Env(), fn, (std::string("'") + name + "' must be a boolean").c_str());
  return v.As<Napi::Boolean>().Value();
}

Bytes ArgBytes(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name) {
  Napi::Value v = Arg(info, i, fn, name);
  if (v.IsTypedArray()) {
    Napi::TypedArray t = v.As<Napi::TypedArray>();
    uint8_t* base = static_cast<uint8_t*>(t.ArrayBuffer().Data());
    return {base + t.ByteOffset(), t.ByteLength()};
  }
  if (v.IsArrayBuffer()) {
    Napi::ArrayBuffer b = v.As<Napi::ArrayBuffer>();
    return {static_cast<uint8_t*>(b.Data()), b.ByteLength()};
  }
  ThrowType(info.Env(), fn, (std::string("'") + name + "' must be a Uint8Array or ArrayBuffer").c_str());
}

}  // namespace tsvmm
