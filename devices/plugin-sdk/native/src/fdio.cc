// The few POSIX calls Node's standard library lacks and the plugin protocol needs:
// SOCK_SEQPACKET socket pairs, sendmsg/recvmsg with SCM_RIGHTS, UNIX listen/accept/connect on
// raw fds, eventfds, memfds and shared mappings, and a libuv poll watcher so the event loop can
// wait on any of these fds. Every fd this module creates is close-on-exec; passing one to a child
// is explicit (spawn's stdio array). Errors become JS Errors with `code` set to the errno name.
// node.h first: it defines NAPI_VERSION, which napi.h would otherwise default differently.
#include <node.h>
#include <v8.h>
#include <napi.h>
#include <uv.h>

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <string>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <vector>

#include "ioregion.h"

namespace {

void ThrowErrno(Napi::Env env, const std::string& what, int err) {
  Napi::Error e = Napi::Error::New(env, what + ": " + strerror(err));
  const char* name = strerrorname_np(err);
  e.Set("code", Napi::String::New(env, name ? name : "EUNKNOWN"));
  e.Set("errno", Napi::Number::New(env, err));
  e.ThrowAsJavaScriptException();
}

bool ArgInt(const Napi::CallbackInfo& info, size_t i, int64_t* out) {
  if (info.Length() <= i || !info[i].IsNumber()) {
    Napi::TypeError::New(info.Env(), "argument " + std::to_string(i) + " must be a number")
        .ThrowAsJavaScriptException();
    return false;
  }
  *out = info[i].As<Napi::Number>().Int64Value();
  return true;
}

bool ArgBytes(const Napi::CallbackInfo& info, size_t i, uint8_t** data, size_t* len) {
  if (info.Length() <= i || !info[i].IsTypedArray() ||
      info[i].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    Napi::TypeError::New(info.Env(), "argument " + std::to_string(i) + " must be a Uint8Array")
        .ThrowAsJavaScriptException();
    return false;
  }
  auto a = info[i].As<Napi::Uint8Array>();
  *data = a.Data();
  *len = a.ByteLength();
  return true;
}

int SetNonBlock(int fd, bool on) {
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0) return -1;
  return fcntl(fd, F_SETFL, on ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK));
}

// socketpair(kind: 'seqpacket' | 'stream'): [fd, fd]
Napi::Value SocketPair(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string kind = info.Length() > 0 && info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "";
  int type = kind == "seqpacket" ? SOCK_SEQPACKET : kind == "stream" ? SOCK_STREAM : -1;
  if (type < 0) {
    Napi::TypeError::New(env, "socketpair kind must be 'seqpacket' or 'stream'").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int sv[2];
  if (socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, sv) < 0) {
    ThrowErrno(env, "socketpair", errno);
    return env.Undefined();
  }
  Napi::Array out = Napi::Array::New(env, 2);
  out.Set(0u, Napi::Number::New(env, sv[0]));
  out.Set(1u, Napi::Number::New(env, sv[1]));
  return out;
}

Napi::Value SetNonBlocking(const Napi::CallbackInfo& info) {
  int64_t fd;
  if (!ArgInt(info, 0, &fd)) return info.Env().Undefined();
  bool on = info.Length() < 2 || info[1].ToBoolean();
  if (SetNonBlock(static_cast<int>(fd), on) < 0) ThrowErrno(info.Env(), "fcntl(O_NONBLOCK)", errno);
  return info.Env().Undefined();
}

bool FillSockaddr(Napi::Env env, const std::string& path, sockaddr_un* sa) {
  memset(sa, 0, sizeof *sa);
  sa->sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof sa->sun_path) {
    Napi::Error::New(env, "UNIX socket path '" + path + "' is empty or longer than " +
                              std::to_string(sizeof sa->sun_path - 1) + " bytes: use a shorter path")
        .ThrowAsJavaScriptException();
    return false;
  }
  memcpy(sa->sun_path, path.data(), path.size());
  return true;
}

// listenUnix(path, backlog): fd (non-blocking)
Napi::Value ListenUnix(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  sockaddr_un sa;
  if (!info[0].IsString() || !FillSockaddr(env, info[0].As<Napi::String>().Utf8Value(), &sa)) return env.Undefined();
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) { ThrowErrno(env, "socket", errno); return env.Undefined(); }
  if (bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0 || listen(fd, 16) < 0) {
    int err = errno;
    close(fd);
    ThrowErrno(env, "bind/listen on " + std::string(sa.sun_path), err);
    return env.Undefined();
  }
  return Napi::Number::New(env, fd);
}

// acceptUnix(fd): fd (non-blocking) or -1 when no connection is pending
Napi::Value AcceptUnix(const Napi::CallbackInfo& info) {
  int64_t fd;
  if (!ArgInt(info, 0, &fd)) return info.Env().Undefined();
  int c = accept4(static_cast<int>(fd), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
  if (c < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ECONNABORTED) return Napi::Number::New(info.Env(), -1);
    ThrowErrno(info.Env(), "accept", errno);
    return info.Env().Undefined();
  }
  return Napi::Number::New(info.Env(), c);
}

// connectUnix(path): fd (non-blocking once connected)
Napi::Value ConnectUnix(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  sockaddr_un sa;
  if (!info[0].IsString() || !FillSockaddr(env, info[0].As<Napi::String>().Utf8Value(), &sa)) return env.Undefined();
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) { ThrowErrno(env, "socket", errno); return env.Undefined(); }
  if (connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0) {
    int err = errno;
    close(fd);
    ThrowErrno(env, "connect to " + std::string(sa.sun_path), err);
    return env.Undefined();
  }
  SetNonBlock(fd, true);
  return Napi::Number::New(env, fd);
}

constexpr int kMaxFds = 16;

// sendMsg(fd, bytes, fds): bytes sent, or -1 when the socket buffer is full (EAGAIN)
Napi::Value SendMsg(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int64_t fd;
  uint8_t* data;
  size_t len;
  if (!ArgInt(info, 0, &fd) || !ArgBytes(info, 1, &data, &len)) return env.Undefined();
  std::vector<int> fds;
  if (info.Length() > 2 && info[2].IsArray()) {
    auto arr = info[2].As<Napi::Array>();
    if (arr.Length() > kMaxFds) {
      Napi::RangeError::New(env, "at most 16 fds per message").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    for (uint32_t i = 0; i < arr.Length(); i++) fds.push_back(arr.Get(i).As<Napi::Number>().Int32Value());
  }
  iovec iov{data, len};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char cbuf[CMSG_SPACE(sizeof(int) * kMaxFds)];
  if (!fds.empty()) {
    msg.msg_control = cbuf;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  }
  ssize_t n = sendmsg(static_cast<int>(fd), &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return Napi::Number::New(env, -1);
    ThrowErrno(env, "sendmsg", errno);
    return env.Undefined();
  }
  return Napi::Number::New(env, static_cast<double>(n));
}

// recvMsg(fd, buffer): { n, fds, truncated } where n = -1 means nothing to read (EAGAIN) and
// n = 0 means the peer closed. Received fds are close-on-exec; if the kernel had to drop fds
// (MSG_CTRUNC) the ones that did arrive are closed and `truncated` is true.
Napi::Value RecvMsg(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int64_t fd;
  uint8_t* data;
  size_t len;
  if (!ArgInt(info, 0, &fd) || !ArgBytes(info, 1, &data, &len)) return env.Undefined();
  iovec iov{data, len};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char cbuf[CMSG_SPACE(sizeof(int) * kMaxFds)];
  msg.msg_control = cbuf;
  msg.msg_controllen = sizeof cbuf;
  ssize_t n = recvmsg(static_cast<int>(fd), &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
  Napi::Object out = Napi::Object::New(env);
  if (n < 0) {
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      ThrowErrno(env, "recvmsg", errno);
      return env.Undefined();
    }
    n = -1;
  }
  Napi::Array fds = Napi::Array::New(env);
  bool truncated = (msg.msg_flags & MSG_CTRUNC) != 0;
  if (n >= 0) {
    uint32_t k = 0;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      int* p = reinterpret_cast<int*>(CMSG_DATA(c));
      for (size_t i = 0; i < count; i++) {
        if (truncated) close(p[i]);
        else fds.Set(k++, Napi::Number::New(env, p[i]));
      }
    }
  }
  out.Set("n", Napi::Number::New(env, static_cast<double>(n)));
  out.Set("fds", fds);
  out.Set("truncated", Napi::Boolean::New(env, truncated));
  out.Set("messageTruncated", Napi::Boolean::New(env, (msg.msg_flags & MSG_TRUNC) != 0));
  return out;
}

// eventfd(initial, nonblocking): fd
Napi::Value EventFd(const Napi::CallbackInfo& info) {
  int64_t init = 0;
  if (info.Length() > 0 && !ArgInt(info, 0, &init)) return info.Env().Undefined();
  bool nb = info.Length() > 1 && info[1].ToBoolean();
  int fd = eventfd(static_cast<unsigned>(init), EFD_CLOEXEC | (nb ? EFD_NONBLOCK : 0));
  if (fd < 0) ThrowErrno(info.Env(), "eventfd", errno);
  return Napi::Number::New(info.Env(), fd);
}

Napi::Value EventFdWrite(const Napi::CallbackInfo& info) {
  int64_t fd, v = 1;
  if (!ArgInt(info, 0, &fd)) return info.Env().Undefined();
  if (info.Length() > 1 && !ArgInt(info, 1, &v)) return info.Env().Undefined();
  uint64_t val = static_cast<uint64_t>(v);
  if (write(static_cast<int>(fd), &val, 8) != 8 && errno != EAGAIN) ThrowErrno(info.Env(), "eventfd write", errno);
  return info.Env().Undefined();
}

// eventfdRead(fd): the counter (reset to 0), or -1 if it was 0 on a non-blocking eventfd
Napi::Value EventFdRead(const Napi::CallbackInfo& info) {
  int64_t fd;
  if (!ArgInt(info, 0, &fd)) return info.Env().Undefined();
  uint64_t val;
  ssize_t n = read(static_cast<int>(fd), &val, 8);
  if (n != 8) {
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return Napi::Number::New(info.Env(), -1);
    ThrowErrno(info.Env(), "eventfd read", n < 0 ? errno : EIO);
    return info.Env().Undefined();
  }
  return Napi::Number::New(info.Env(), static_cast<double>(val));
}

// memfdCreate(name, size, sealSize = false): fd. A sealed one can never be resized, so a
// process it is handed to cannot shrink it under the VMM's mapping or grow it without bound.
Napi::Value MemfdCreate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int64_t size;
  if (!info[0].IsString() || !ArgInt(info, 1, &size)) return env.Undefined();
  bool sealSize = info.Length() > 2 && info[2].ToBoolean();
  int fd = memfd_create(info[0].As<Napi::String>().Utf8Value().c_str(), MFD_CLOEXEC | (sealSize ? MFD_ALLOW_SEALING : 0));
  if (fd < 0) { ThrowErrno(env, "memfd_create", errno); return env.Undefined(); }
  const char* failed = nullptr;
  if (ftruncate(fd, size) < 0) failed = "ftruncate(memfd)";
  else if (sealSize && fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) failed = "fcntl(F_ADD_SEALS)";
  if (failed) {
    int err = errno;
    close(fd);
    ThrowErrno(env, failed, err);
    return env.Undefined();
  }
  return Napi::Number::New(env, fd);
}

// mapFd(fd, offset, size, writable): ArrayBuffer over a MAP_SHARED mapping, unmapped when collected
Napi::Value MapFd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int64_t fd, off, size;
  if (!ArgInt(info, 0, &fd) || !ArgInt(info, 1, &off) || !ArgInt(info, 2, &size)) return env.Undefined();
  bool writable = info.Length() > 3 && info[3].ToBoolean();
  if (size <= 0 || off < 0) {
    Napi::RangeError::New(env, "mapFd: size must be positive and offset non-negative").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  void* p = mmap(nullptr, static_cast<size_t>(size), PROT_READ | (writable ? PROT_WRITE : 0), MAP_SHARED,
                 static_cast<int>(fd), static_cast<off_t>(off));
  if (p == MAP_FAILED) { ThrowErrno(env, "mmap", errno); return env.Undefined(); }
  size_t sz = static_cast<size_t>(size);
  return Napi::ArrayBuffer::New(env, p, sz, [sz](Napi::Env, void* addr) { munmap(addr, sz); });
}

// socketType(fd): SOCK_STREAM (1), SOCK_SEQPACKET (5), ... or -1 when fd is not a socket
Napi::Value SocketType(const Napi::CallbackInfo& info) {
  int64_t fd;
  if (!ArgInt(info, 0, &fd)) return info.Env().Undefined();
  int type = -1;
  socklen_t len = sizeof type;
  if (getsockopt(static_cast<int>(fd), SOL_SOCKET, SO_TYPE, &type, &len) < 0) type = -1;
  return Napi::Number::New(info.Env(), type);
}

// mapFdShared(fd, offset, size): SharedArrayBuffer over a read/write MAP_SHARED mapping. Lets a
// backend whose guest RAM must be a SharedArrayBuffer (the interpreter: worker threads share it)
// back it with a memfd that plugin processes can map too. N-API cannot make an external
// SharedArrayBuffer, so this one function uses V8 directly (the addon is built from source for
// the running Node, so the V8 ABI matches).
Napi::Value MapFdShared(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int64_t fd, off, size;
  if (!ArgInt(info, 0, &fd) || !ArgInt(info, 1, &off) || !ArgInt(info, 2, &size)) return env.Undefined();
  if (size <= 0 || off < 0) {
    Napi::RangeError::New(env, "mapFdShared: size must be positive and offset non-negative").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  void* p = mmap(nullptr, static_cast<size_t>(size), PROT_READ | PROT_WRITE, MAP_SHARED, static_cast<int>(fd), static_cast<off_t>(off));
  if (p == MAP_FAILED) { ThrowErrno(env, "mmap", errno); return env.Undefined(); }
  v8::Isolate* isolate = v8::Isolate::GetCurrent();
  std::unique_ptr<v8::BackingStore> store = v8::SharedArrayBuffer::NewBackingStore(
      p, static_cast<size_t>(size), [](void* data, size_t length, void*) { munmap(data, length); }, nullptr);
  v8::Local<v8::SharedArrayBuffer> sab = v8::SharedArrayBuffer::New(isolate, std::move(store));
  v8::Local<v8::Value> value = sab;
  return Napi::Value(env, reinterpret_cast<napi_value>(*value));
}

Napi::Value CloseFd(const Napi::CallbackInfo& info) {
  int64_t fd;
  if (!ArgInt(info, 0, &fd)) return info.Env().Undefined();
  if (close(static_cast<int>(fd)) < 0 && errno != EINTR) ThrowErrno(info.Env(), "close", errno);
  return info.Env().Undefined();
}

// A libuv poll handle on one fd. new Watcher(fd, (events: number, error?: string) => void);
// start(events) with 1 = readable, 2 = writable; stop(); close() (idempotent). The fd is not
// owned: close() the watcher before closing the fd.
class Watcher : public Napi::ObjectWrap<Watcher> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "Watcher",
                       {InstanceMethod("start", &Watcher::Start), InstanceMethod("stop", &Watcher::Stop),
                        InstanceMethod("close", &Watcher::Close)});
  }

  explicit Watcher(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Watcher>(info) {
    Napi::Env env = info.Env();
    int64_t fd;
    if (!ArgInt(info, 0, &fd) || !info[1].IsFunction()) {
      Napi::TypeError::New(env, "Watcher(fd, callback)").ThrowAsJavaScriptException();
      return;
    }
    callback_ = Napi::Persistent(info[1].As<Napi::Function>());
    uv_loop_t* loop;
    napi_get_uv_event_loop(env, &loop);
    handle_ = new uv_poll_t;
    int r = uv_poll_init(loop, handle_, static_cast<int>(fd));
    if (r != 0) {
      delete handle_;
      handle_ = nullptr;
      Napi::Error::New(env, std::string("uv_poll_init: ") + uv_strerror(r)).ThrowAsJavaScriptException();
      return;
    }
    handle_->data = this;
  }

  ~Watcher() override { CloseHandle(); }

 private:
  static void OnPoll(uv_poll_t* h, int status, int events) {
    auto* self = static_cast<Watcher*>(h->data);
    if (!self) return;
    Napi::Env env = self->callback_.Env();
    Napi::HandleScope scope(env);
    int ev = (events & UV_READABLE ? 1 : 0) | (events & UV_WRITABLE ? 2 : 0) | (events & UV_DISCONNECT ? 1 : 0);
    std::vector<napi_value> args{Napi::Number::New(env, status < 0 ? 1 : ev)};
    if (status < 0) args.push_back(Napi::String::New(env, uv_strerror(status)));
    self->callback_.MakeCallback(env.Global(), args);
  }

  void CloseHandle() {
    if (!handle_) return;
    uv_poll_stop(handle_);
    handle_->data = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(handle_), [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
    handle_ = nullptr;
  }

  Napi::Value Start(const Napi::CallbackInfo& info) {
    int64_t ev = 1;
    if (info.Length() > 0 && !ArgInt(info, 0, &ev)) return info.Env().Undefined();
    if (!handle_) return info.Env().Undefined();
    if (!ref_) { Ref(); ref_ = true; }  // keep the JS object alive while the handle can fire
    uv_poll_start(handle_, (ev & 1 ? UV_READABLE | UV_DISCONNECT : 0) | (ev & 2 ? UV_WRITABLE : 0), OnPoll);
    return info.Env().Undefined();
  }

  Napi::Value Stop(const Napi::CallbackInfo& info) {
    if (handle_) uv_poll_stop(handle_);
    if (ref_) { Unref(); ref_ = false; }
    return info.Env().Undefined();
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    CloseHandle();
    if (ref_) { Unref(); ref_ = false; }
    return info.Env().Undefined();
  }

  Napi::FunctionReference callback_;
  uv_poll_t* handle_ = nullptr;
  bool ref_ = false;
};

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("socketpair", Napi::Function::New(env, SocketPair));
  exports.Set("setNonBlocking", Napi::Function::New(env, SetNonBlocking));
  exports.Set("listenUnix", Napi::Function::New(env, ListenUnix));
  exports.Set("acceptUnix", Napi::Function::New(env, AcceptUnix));
  exports.Set("connectUnix", Napi::Function::New(env, ConnectUnix));
  exports.Set("sendMsg", Napi::Function::New(env, SendMsg));
  exports.Set("recvMsg", Napi::Function::New(env, RecvMsg));
  exports.Set("eventfd", Napi::Function::New(env, EventFd));
  exports.Set("eventfdWrite", Napi::Function::New(env, EventFdWrite));
  exports.Set("eventfdRead", Napi::Function::New(env, EventFdRead));
  exports.Set("memfdCreate", Napi::Function::New(env, MemfdCreate));
  exports.Set("mapFd", Napi::Function::New(env, MapFd));
  exports.Set("socketType", Napi::Function::New(env, SocketType));
  exports.Set("mapFdShared", Napi::Function::New(env, MapFdShared));
  exports.Set("closeFd", Napi::Function::New(env, CloseFd));
  exports.Set("Watcher", Watcher::Init(env));
  tsvmm::ioregion::InitExports(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(tsvmm_fdio, Init)
