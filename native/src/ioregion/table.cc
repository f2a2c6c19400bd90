// The VMM's ioregionfd dispatcher: a process-wide table of plugin regions and ioeventfds, and
// the 32-byte command/response round trip of ioregionfd RFC v3, done in C++ on whichever thread
// takes the guest access (the vCPU thread). Why process-wide: the control plane (the plugin
// host on the main thread) edits the table while vCPU threads (other isolates, same process)
// read it, and KVM's run loop calls Dispatch() as a plain function, without JavaScript.
//
// Concurrency: the table is an immutable snapshot swapped atomically by writers (main thread);
// readers take a reference and never lock it. Each dispatch channel (one plugin socket) has a
// mutex held for a whole round trip, which serializes vCPUs on that fd, as v3's ioregion
// context does, so responses match commands by order.
#include "table.h"

#include <napi.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "../common/errors.h"
#include "../common/exports.h"

namespace tsvmm::ioregion {
namespace {

constexpr uint32_t kPostedWrites = 1u << 1;

struct Channel {
  uint32_t id;
  int fd;
  std::mutex mu;
  std::atomic<bool> dead{false};
  Channel(uint32_t i, int f) : id(i), fd(f) {}
  ~Channel() { close(fd); }
};

struct OwnedFd {
  int fd;
  explicit OwnedFd(int f) : fd(f) {}
  ~OwnedFd() { close(fd); }
};

struct Region {
  uint32_t id;
  int bus;
  uint64_t start;
  uint64_t size;  // 0 = doorbell
  uint64_t user_data;
  uint32_t flags;
  std::shared_ptr<Channel> channel;
};

struct Ioeventfd {
  uint32_t id;
  int bus;
  uint64_t addr;
  uint32_t len;  // 0 = any size
  bool has_datamatch;
  uint64_t datamatch;
  std::shared_ptr<OwnedFd> fd;
};

struct Table {
  std::vector<Region> regions;
  std::vector<Ioeventfd> events;
};

std::mutex g_write_mu;  // serializes writers (snapshot edits, channel map, failures)
std::shared_ptr<const Table> g_table = std::make_shared<Table>();
std::map<uint32_t, std::shared_ptr<Channel>> g_channels;
uint32_t g_next_channel = 1;
std::atomic<int> g_timeout_ms{10000};
int g_fail_fd = -1;
std::vector<std::pair<uint32_t, std::string>> g_failures;

std::shared_ptr<const Table> Snapshot() { return std::atomic_load(&g_table); }

// Copy the current table, edit it, publish it. Caller holds g_write_mu.
template <typename F>
void Edit(F&& f) {
  auto next = std::make_shared<Table>(*std::atomic_load(&g_table));
  f(*next);
  std::atomic_store(&g_table, std::shared_ptr<const Table>(std::move(next)));
}

// First failure of a channel: record why and wake the main thread (it watches g_fail_fd).
void MarkDead(Channel& ch, std::string reason) {
  if (ch.dead.exchange(true)) return;
  std::lock_guard<std::mutex> g(g_write_mu);
  g_failures.emplace_back(ch.id, std::move(reason));
  if (g_fail_fd >= 0) {
    uint64_t one = 1;
    ssize_t r = write(g_fail_fd, &one, 8);
    (void)r;
  }
}

// Wait for `events` on fd, at most the configured timeout, retrying on EINTR (a vCPU kick).
bool WaitFd(int fd, short events) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(g_timeout_ms.load());
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() < 0) return false;
    pollfd p{fd, events, 0};
    int r = poll(&p, 1, static_cast<int>(left.count()));
    if (r > 0) return true;  // readable, writable, or HUP/ERR: the next call reports which
    if (r == 0) return false;
    if (errno != EINTR) return false;
  }
}

// One command, and its response when `want_resp`. Returns false when the channel is (now) dead.
bool RoundTrip(Channel& ch, const uint8_t* cmd, bool want_resp, uint64_t* resp_data) {
  std::lock_guard<std::mutex> g(ch.mu);
  if (ch.dead.load()) return false;
  uint8_t buf[64];
  if (want_resp) {
    // Nothing may be waiting before we ask: a stray record would be taken for our answer.
    ssize_t p = recv(ch.fd, buf, sizeof buf, MSG_PEEK | MSG_DONTWAIT);
    if (p == 0) { MarkDead(ch, "closed its dispatch socket"); return false; }
    if (p > 0) { MarkDead(ch, "sent a dispatch response that no command asked for"); return false; }
  }
  for (;;) {
    ssize_t n = send(ch.fd, cmd, 32, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n == 32) break;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (WaitFd(ch.fd, POLLOUT)) continue;
      MarkDead(ch, "stopped reading dispatch commands (socket full for " + std::to_string(g_timeout_ms.load()) + " ms)");
      return false;
    }
    if (n < 0 && errno == EINTR) continue;
    MarkDead(ch, std::string("dispatch socket failed on send: ") + (n < 0 ? strerror(errno) : "short write"));
    return false;
  }
  if (!want_resp) return true;
  for (;;) {
    ssize_t n = recv(ch.fd, buf, sizeof buf, MSG_DONTWAIT | MSG_TRUNC);
    if (n == 32) {
      memcpy(resp_data, buf, 8);
      return true;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
      if (WaitFd(ch.fd, POLLIN)) continue;
      MarkDead(ch, "did not answer a dispatch command within " + std::to_string(g_timeout_ms.load()) + " ms");
      return false;
    }
    if (n == 0) MarkDead(ch, "closed its dispatch socket");
    else if (n < 0) MarkDead(ch, std::string("dispatch socket failed on receive: ") + strerror(errno));
    else MarkDead(ch, "sent a malformed dispatch response of " + std::to_string(n) + " bytes (must be 32)");
    return false;
  }
}

int SizeExponent(uint32_t size) { return size == 1 ? 0 : size == 2 ? 1 : size == 4 ? 2 : 3; }

uint64_t LoadLe(const uint8_t* p, uint32_t size) {
  uint64_t v = 0;
  memcpy(&v, p, size);  // x86: little-endian host
  return v;
}

}  // namespace

Result Dispatch(int bus, uint64_t addr, uint32_t size, bool is_write, uint8_t* data) {
  if (size != 1 && size != 2 && size != 4 && size != 8) return kMiss;
  auto table = Snapshot();
  if (is_write) {
    for (const Ioeventfd& e : table->events) {
      if (e.bus != bus || e.addr != addr || (e.len != 0 && e.len != size)) continue;
      if (e.has_datamatch && LoadLe(data, size) != e.datamatch) continue;
      uint64_t one = 1;
      ssize_t r = write(e.fd->fd, &one, 8);
      (void)r;  // a saturated counter still means "signalled"
      return kHandled;
    }
  }
  for (const Region& r : table->regions) {
    if (r.bus != bus) continue;
    bool hit = r.size == 0 ? addr == r.start : (addr >= r.start && addr - r.start <= r.size - size && size <= r.size);
    if (!hit) continue;
    Channel& ch = *r.channel;
    if (r.size == 0 && !is_write) {  // a doorbell has nothing to read; v3 returns 0 without asking
      memset(data, 0, size);
      return kHandled;
    }
    uint8_t cmd[32] = {0};
    bool want_resp = !is_write || !(r.flags & kPostedWrites);
    cmd[0] = is_write ? 1 : 0;
    if (r.size != 0) {
      cmd[1] = static_cast<uint8_t>(SizeExponent(size) | (want_resp ? 0x10 : 0));
      uint64_t off = addr - r.start;
      memcpy(cmd + 16, &off, 8);
      if (is_write) memcpy(cmd + 24, data, size);
    }
    memcpy(cmd + 8, &r.user_data, 8);
    uint64_t resp = 0;
    if (!RoundTrip(ch, cmd, want_resp, &resp)) {
      if (!is_write) memset(data, 0xff, size);
      return kFailed;
    }
    if (!is_write) memcpy(data, &resp, size);
    return kHandled;
  }
  return kMiss;
}

namespace {

// ioregionOpenChannel(fd): channel id. Takes ownership of fd (the VMM end of a SOCK_SEQPACKET pair).
Napi::Value OpenChannel(const Napi::CallbackInfo& info) {
  int fd = ArgInt(info, 0, "ioregionOpenChannel", "fd");
  std::lock_guard<std::mutex> g(g_write_mu);
  uint32_t id = g_next_channel++;
  g_channels[id] = std::make_shared<Channel>(id, fd);
  return Napi::Number::New(info.Env(), id);
}

// ioregionCloseChannel(id): later accesses to its regions fail fast; the fd closes with its last region.
Napi::Value CloseChannel(const Napi::CallbackInfo& info) {
  uint32_t id = static_cast<uint32_t>(ArgInt(info, 0, "ioregionCloseChannel", "channel"));
  std::lock_guard<std::mutex> g(g_write_mu);
  auto it = g_channels.find(id);
  if (it != g_channels.end()) {
    it->second->dead.store(true);
    g_channels.erase(it);
  }
  return info.Env().Undefined();
}

// ioregionAdd(id, bus, start, size, userData, flags, channel). Validation is the registry's job
// (vmm/plugin-host/registry.ts); this only refuses an unknown channel.
Napi::Value Add(const Napi::CallbackInfo& info) {
  const char* fn = "ioregionAdd";
  Region r;
  r.id = static_cast<uint32_t>(ArgInt(info, 0, fn, "id"));
  r.bus = ArgInt(info, 1, fn, "bus");
  r.start = ArgU64(info, 2, fn, "start");
  r.size = ArgU64(info, 3, fn, "size");
  r.user_data = ArgU64(info, 4, fn, "userData");
  r.flags = static_cast<uint32_t>(ArgInt(info, 5, fn, "flags"));
  uint32_t ch = static_cast<uint32_t>(ArgInt(info, 6, fn, "channel"));
  std::lock_guard<std::mutex> g(g_write_mu);
  auto it = g_channels.find(ch);
  if (it == g_channels.end()) throw Napi::Error::New(info.Env(), "ioregionAdd: no dispatch channel " + std::to_string(ch));
  r.channel = it->second;
  Edit([&](Table& t) { t.regions.push_back(std::move(r)); });
  return info.Env().Undefined();
}

Napi::Value Remove(const Napi::CallbackInfo& info) {
  uint32_t id = static_cast<uint32_t>(ArgInt(info, 0, "ioregionRemove", "id"));
  std::lock_guard<std::mutex> g(g_write_mu);
  Edit([&](Table& t) {
    for (auto it = t.regions.begin(); it != t.regions.end(); ++it) {
      if (it->id == id) { t.regions.erase(it); break; }
    }
  });
  return info.Env().Undefined();
}

// ioeventfdAdd(id, bus, addr, len, fd, datamatch | undefined). The fd is duplicated.
Napi::Value EventAdd(const Napi::CallbackInfo& info) {
  const char* fn = "ioeventfdAdd";
  Ioeventfd e;
  e.id = static_cast<uint32_t>(ArgInt(info, 0, fn, "id"));
  e.bus = ArgInt(info, 1, fn, "bus");
  e.addr = ArgU64(info, 2, fn, "address");
  e.len = static_cast<uint32_t>(ArgInt(info, 3, fn, "length"));
  int fd = dup(ArgInt(info, 4, fn, "fd"));
  if (fd < 0) ThrowErrno(info.Env(), "dup(ioeventfd)");
  e.fd = std::make_shared<OwnedFd>(fd);
  e.has_datamatch = info.Length() > 5 && !info[5].IsUndefined();
  e.datamatch = e.has_datamatch ? ArgU64(info, 5, fn, "datamatch") : 0;
  std::lock_guard<std::mutex> g(g_write_mu);
  Edit([&](Table& t) { t.events.push_back(std::move(e)); });
  return info.Env().Undefined();
}

Napi::Value EventRemove(const Napi::CallbackInfo& info) {
  uint32_t id = static_cast<uint32_t>(ArgInt(info, 0, "ioeventfdRemove", "id"));
  std::lock_guard<std::mutex> g(g_write_mu);
  Edit([&](Table& t) {
    for (auto it = t.events.begin(); it != t.events.end(); ++it) {
      if (it->id == id) { t.events.erase(it); break; }
    }
  });
  return info.Env().Undefined();
}

// ioregionDispatch(bus, addr, size, isWrite, data: Uint8Array(>= size)): 0 miss, 1 handled, 2 failed.
// For exits that reach JavaScript (the interpreter's, and string I/O on KVM).
Napi::Value DispatchFn(const Napi::CallbackInfo& info) {
  const char* fn = "ioregionDispatch";
  int bus = ArgInt(info, 0, fn, "bus");
  uint64_t addr = ArgU64(info, 1, fn, "address");
  uint32_t size = static_cast<uint32_t>(ArgInt(info, 2, fn, "size"));
  bool write = info.Length() > 3 && info[3].ToBoolean();
  Bytes data = ArgBytes(info, 4, fn, "data");
  if (data.length < size) throw Napi::RangeError::New(info.Env(), "ioregionDispatch: data shorter than size");
  return Napi::Number::New(info.Env(), Dispatch(bus, addr, size, write, data.data));
}

Napi::Value SetTimeout(const Napi::CallbackInfo& info) {
  g_timeout_ms.store(ArgInt(info, 0, "ioregionSetTimeout", "ms"));
  return info.Env().Undefined();
}

// ioregionFailureFd(): an eventfd signalled whenever a channel dies on a vCPU thread.
Napi::Value FailureFd(const Napi::CallbackInfo& info) {
  std::lock_guard<std::mutex> g(g_write_mu);
  if (g_fail_fd < 0) g_fail_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (g_fail_fd < 0) ThrowErrno(info.Env(), "eventfd");
  return Napi::Number::New(info.Env(), g_fail_fd);
}

// ioregionTakeFailures(): [{ channel, reason }] since the last call.
Napi::Value TakeFailures(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::vector<std::pair<uint32_t, std::string>> f;
  {
    std::lock_guard<std::mutex> g(g_write_mu);
    f.swap(g_failures);
  }
  Napi::Array out = Napi::Array::New(env, f.size());
  for (uint32_t i = 0; i < f.size(); i++) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("channel", Napi::Number::New(env, f[i].first));
    o.Set("reason", Napi::String::New(env, f[i].second));
    out.Set(i, o);
  }
  return out;
}

}  // namespace

}  // namespace tsvmm::ioregion

namespace tsvmm {

void ExportIoregion(Napi::Env env, Napi::Object exports) {
  using namespace ioregion;
  exports.Set("ioregionOpenChannel", Napi::Function::New(env, OpenChannel, "ioregionOpenChannel"));
  exports.Set("ioregionCloseChannel", Napi::Function::New(env, CloseChannel, "ioregionCloseChannel"));
  exports.Set("ioregionAdd", Napi::Function::New(env, Add, "ioregionAdd"));
  exports.Set("ioregionRemove", Napi::Function::New(env, Remove, "ioregionRemove"));
  exports.Set("ioeventfdAdd", Napi::Function::New(env, EventAdd, "ioeventfdAdd"));
  exports.Set("ioeventfdRemove", Napi::Function::New(env, EventRemove, "ioeventfdRemove"));
  exports.Set("ioregionDispatch", Napi::Function::New(env, DispatchFn, "ioregionDispatch"));
  exports.Set("ioregionSetTimeout", Napi::Function::New(env, SetTimeout, "ioregionSetTimeout"));
  exports.Set("ioregionFailureFd", Napi::Function::New(env, FailureFd, "ioregionFailureFd"));
  exports.Set("ioregionTakeFailures", Napi::Function::New(env, TakeFailures, "ioregionTakeFailures"));
}

}  // namespace tsvmm
