// UNIX sockets on raw fds, the few calls Node's standard library lacks and the plugin protocol
// needs: SOCK_SEQPACKET socket pairs, sendmsg/recvmsg with SCM_RIGHTS, listen/accept/connect.
// Every fd made here is close-on-exec; passing one to a child is explicit (spawn's stdio array).
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "../common/errors.h"
#include "../common/exports.h"

namespace tsvmm {

namespace {

constexpr int kMaxFds = 16;

int SetNonBlock(int fd, bool on) {
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0) return -1;
  return fcntl(fd, F_SETFL, on ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK));
}

sockaddr_un Sockaddr(Napi::Env env, const Napi::CallbackInfo& info, const char* fn) {
  if (info.Length() < 1 || !info[0].IsString()) ThrowType(env, fn, "'path' must be a string");
  std::string path = info[0].As<Napi::String>().Utf8Value();
  sockaddr_un sa;
  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof sa.sun_path) {
    throw Napi::Error::New(env, "UNIX socket path '" + path + "' is empty or longer than " +
                                    std::to_string(sizeof sa.sun_path - 1) + " bytes: use a shorter path");
  }
  memcpy(sa.sun_path, path.data(), path.size());
  return sa;
}

// socketpair(kind: 'seqpacket' | 'stream'): [fd, fd]
Napi::Value SocketPair(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string kind = info.Length() > 0 && info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "";
  int type = kind == "seqpacket" ? SOCK_SEQPACKET : kind == "stream" ? SOCK_STREAM : -1;
  if (type < 0) ThrowType(env, "socketpair", "kind must be 'seqpacket' or 'stream'");
  int sv[2];
  if (socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, sv) < 0) ThrowErrno(env, "socketpair");
  Napi::Array out = Napi::Array::New(env, 2);
  out.Set(0u, Napi::Number::New(env, sv[0]));
  out.Set(1u, Napi::Number::New(env, sv[1]));
  return out;
}

// setNonBlocking(fd, on = true)
Napi::Value SetNonBlocking(const Napi::CallbackInfo& info) {
  int fd = ArgInt(info, 0, "setNonBlocking", "fd");
  bool on = info.Length() < 2 || info[1].ToBoolean();
  if (SetNonBlock(fd, on) < 0) ThrowErrno(info.Env(), "fcntl(O_NONBLOCK)");
  return info.Env().Undefined();
}

// listenUnix(path): fd (non-blocking)
Napi::Value ListenUnix(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  sockaddr_un sa = Sockaddr(env, info, "listenUnix");
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) ThrowErrno(env, "socket");
  if (bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0 || listen(fd, 16) < 0) {
    int err = errno;
    close(fd);
    throw ErrnoError(env, ("bind/listen on " + std::string(sa.sun_path)).c_str(), err);
  }
  return Napi::Number::New(env, fd);
}

// acceptUnix(fd): fd (non-blocking), or -1 when no connection is pending
Napi::Value AcceptUnix(const Napi::CallbackInfo& info) {
  int fd = ArgInt(info, 0, "acceptUnix", "fd");
  int c = accept4(fd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
  if (c < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ECONNABORTED) return Napi::Number::New(info.Env(), -1);
    ThrowErrno(info.Env(), "accept");
  }
  return Napi::Number::New(info.Env(), c);
}

// connectUnix(path): fd (non-blocking once connected)
Napi::Value ConnectUnix(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  sockaddr_un sa = Sockaddr(env, info, "connectUnix");
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) ThrowErrno(env, "socket");
  if (connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0) {
    int err = errno;
    close(fd);
    throw ErrnoError(env, ("connect to " + std::string(sa.sun_path)).c_str(), err);
  }
  SetNonBlock(fd, true);
  return Napi::Number::New(env, fd);
}

// sendMsg(fd, bytes, fds = []): bytes sent, or -1 when the socket buffer is full (EAGAIN)
Napi::Value SendMsg(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgInt(info, 0, "sendMsg", "fd");
  Bytes data = ArgBytes(info, 1, "sendMsg", "bytes");
  std::vector<int> fds;
  if (info.Length() > 2 && info[2].IsArray()) {
    auto arr = info[2].As<Napi::Array>();
    if (arr.Length() > kMaxFds) throw Napi::RangeError::New(env, "sendMsg: at most 16 fds per message");
    for (uint32_t i = 0; i < arr.Length(); i++) fds.push_back(arr.Get(i).As<Napi::Number>().Int32Value());
  }
  iovec iov{data.data, data.length};
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
  ssize_t n = sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return Napi::Number::New(env, -1);
    ThrowErrno(env, "sendmsg");
  }
  return Napi::Number::New(env, static_cast<double>(n));
}

// recvMsg(fd, buffer): { n, fds, truncated, messageTruncated } where n = -1 means nothing to
// read (EAGAIN) and n = 0 means the peer closed. Received fds are close-on-exec; if the kernel
// had to drop fds (MSG_CTRUNC) the ones that did arrive are closed and `truncated` is true.
Napi::Value RecvMsg(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgInt(info, 0, "recvMsg", "fd");
  Bytes data = ArgBytes(info, 1, "recvMsg", "buffer");
  iovec iov{data.data, data.length};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char cbuf[CMSG_SPACE(sizeof(int) * kMaxFds)];
  msg.msg_control = cbuf;
  msg.msg_controllen = sizeof cbuf;
  ssize_t n = recvmsg(fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
  if (n < 0) {
    if (errno != EAGAIN && errno != EWOULDBLOCK) ThrowErrno(env, "recvmsg");
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
  Napi::Object out = Napi::Object::New(env);
  out.Set("n", Napi::Number::New(env, static_cast<double>(n)));
  out.Set("fds", fds);
  out.Set("truncated", Napi::Boolean::New(env, truncated));
  out.Set("messageTruncated", Napi::Boolean::New(env, n >= 0 && (msg.msg_flags & MSG_TRUNC) != 0));
  return out;
}

// socketType(fd): SOCK_STREAM (1), SOCK_SEQPACKET (5), ... or -1 when fd is not a socket
Napi::Value SocketType(const Napi::CallbackInfo& info) {
  int fd = ArgInt(info, 0, "socketType", "fd");
  int type = -1;
  socklen_t len = sizeof type;
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0) type = -1;
  return Napi::Number::New(info.Env(), type);
}

// closeFd(fd): any fd (sockets, eventfds, memfds, the KVM VM fd)
Napi::Value CloseFd(const Napi::CallbackInfo& info) {
  int fd = ArgInt(info, 0, "closeFd", "fd");
  if (close(fd) != 0 && errno != EINTR) ThrowErrno(info.Env(), "close");
  return info.Env().Undefined();
}

}  // namespace

void ExportSockets(Napi::Env env, Napi::Object exports) {
  exports.Set("socketpair", Napi::Function::New(env, SocketPair, "socketpair"));
  exports.Set("setNonBlocking", Napi::Function::New(env, SetNonBlocking, "setNonBlocking"));
  exports.Set("listenUnix", Napi::Function::New(env, ListenUnix, "listenUnix"));
  exports.Set("acceptUnix", Napi::Function::New(env, AcceptUnix, "acceptUnix"));
  exports.Set("connectUnix", Napi::Function::New(env, ConnectUnix, "connectUnix"));
  exports.Set("sendMsg", Napi::Function::New(env, SendMsg, "sendMsg"));
  exports.Set("recvMsg", Napi::Function::New(env, RecvMsg, "recvMsg"));
  exports.Set("socketType", Napi::Function::New(env, SocketType, "socketType"));
  exports.Set("closeFd", Napi::Function::New(env, CloseFd, "closeFd"));
}

}  // namespace tsvmm
