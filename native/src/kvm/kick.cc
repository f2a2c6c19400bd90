#include "kick.h"

#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <mutex>
#include <string>

#include "../common/errors.h"

namespace tsvmm {

static VcpuEntry table[kMaxVcpuSlots];
// Guards registration, removal and kicking. run() reads its own entry without it (see kick.h).
static std::mutex tableMutex;
static uint32_t nextGeneration = 1;

int KickSignal() { return SIGRTMIN + 4; }

static void IgnoreKick(int) {}

static void InstallHandler(Napi::Env env) {
  static std::once_flag once;
  static int error = 0;
  static bool foreign = false;
  std::call_once(once, [] {
    struct sigaction old {};
    if (sigaction(KickSignal(), nullptr, &old) != 0) { error = errno; return; }
    if (old.sa_handler != SIG_DFL && old.sa_handler != SIG_IGN) { foreign = true; return; }
    struct sigaction sa {};
    sa.sa_handler = IgnoreKick;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  // no SA_RESTART: an interrupted system call must return EINTR
    if (sigaction(KickSignal(), &sa, nullptr) != 0) error = errno;
  });
  if (error != 0) {
    errno = error;
    ThrowErrno(env, "sigaction(kick signal)");
  }
  if (foreign) {
    throw Napi::Error::New(env, "cannot install the vCPU kick signal handler: signal SIGRTMIN+4 already has a "
                                "handler in this process (some other native module uses it)");
  }
}

static void TimerKick(sigval value) {
  uint64_t packed = reinterpret_cast<uintptr_t>(value.sival_ptr);
  int slot = static_cast<int>(packed & 0xffff);
  uint32_t generation = static_cast<uint32_t>(packed >> 16);
  std::lock_guard<std::mutex> lock(tableMutex);
  VcpuEntry& e = table[slot];
  if (!e.used || e.generation != generation) return;
  __atomic_store_n(&e.run->immediate_exit, 1, __ATOMIC_SEQ_CST);
  pthread_kill(e.owner, KickSignal());
}

int RegisterVcpu(Napi::Env env, int fd, kvm_run* run, size_t runSize) {
  InstallHandler(env);
  // Node may start threads with signals blocked; the owner must receive kicks.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, KickSignal());
  int err = pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
  if (err != 0) {
    errno = err;
    ThrowErrno(env, "pthread_sigmask(unblock kick signal)");
  }
  std::lock_guard<std::mutex> lock(tableMutex);
  for (int slot = 0; slot < kMaxVcpuSlots; slot++) {
    VcpuEntry& e = table[slot];
    if (e.used) continue;
    e = VcpuEntry{};
    e.used = true;
    e.fd = fd;
    e.run = run;
    e.runSize = runSize;
    e.owner = pthread_self();
    e.generation = nextGeneration++ & 0xffffffff;
    return slot;
  }
  throw Napi::Error::New(env, "too many vCPUs in this process (limit " + std::to_string(kMaxVcpuSlots) + ")");
}

bool ReleaseVcpu(int slot, uint32_t generation) {
  if (slot < 0 || slot >= kMaxVcpuSlots) return false;
  std::lock_guard<std::mutex> lock(tableMutex);
  VcpuEntry& e = table[slot];
  if (!e.used || e.generation != generation) return false;
  if (e.hasTimer) timer_delete(e.timer);
  close(e.fd);
  e = VcpuEntry{};
  return true;
}

VcpuEntry& OwnedVcpu(Napi::Env env, int slot, const char* fn) {
  if (slot < 0 || slot >= kMaxVcpuSlots || !table[slot].used) {
    throw Napi::Error::New(env, std::string(fn) + ": no vCPU in slot " + std::to_string(slot) + " (destroyed?)");
  }
  VcpuEntry& e = table[slot];
  if (!pthread_equal(e.owner, pthread_self())) {
    throw Napi::Error::New(env, std::string(fn) + ": vCPU slot " + std::to_string(slot) +
                                    " belongs to another thread; a vCPU is used only by the thread that created it");
  }
  return e;
}

bool Kick(int slot) {
  if (slot < 0 || slot >= kMaxVcpuSlots) return false;
  std::lock_guard<std::mutex> lock(tableMutex);
  VcpuEntry& e = table[slot];
  if (!e.used) return false;
  // Order matters: the flag first, so a vCPU that is not in guest mode when the signal lands
  // still sees it at its next KVM_RUN entry. pthread_kill is a full barrier.
  __atomic_store_n(&e.run->immediate_exit, 1, __ATOMIC_SEQ_CST);
  pthread_kill(e.owner, KickSignal());
  return true;
}

void ArmKickTimer(Napi::Env env, int slot, double ms) {
  VcpuEntry& e = OwnedVcpu(env, slot, "armKickTimer");
  std::lock_guard<std::mutex> lock(tableMutex);
  if (!e.hasTimer) {
    sigevent ev{};
    ev.sigev_notify = SIGEV_THREAD;
    ev.sigev_notify_function = TimerKick;
    ev.sigev_value.sival_ptr =
        reinterpret_cast<void*>(static_cast<uintptr_t>(slot) | (static_cast<uintptr_t>(e.generation) << 16));
    if (timer_create(CLOCK_MONOTONIC, &ev, &e.timer) != 0) ThrowErrno(env, "timer_create");
    e.hasTimer = true;
  }
  itimerspec spec{};
  if (ms > 0) {
    int64_t ns = static_cast<int64_t>(ms * 1e6);
    if (ns < 1) ns = 1;
    spec.it_value.tv_sec = ns / 1000000000;
    spec.it_value.tv_nsec = ns % 1000000000;
  }
  if (timer_settime(e.timer, 0, &spec, nullptr) != 0) ThrowErrno(env, "timer_settime");
}

void ReleaseThreadVcpus() {
  std::lock_guard<std::mutex> lock(tableMutex);
  for (VcpuEntry& e : table) {
    if (!e.used || !pthread_equal(e.owner, pthread_self())) continue;
    if (e.hasTimer) timer_delete(e.timer);
    close(e.fd);
    // The kvm_run mapping belongs to its ArrayBuffer, which Node releases with the environment.
    e = VcpuEntry{};
  }
}

}  // namespace tsvmm
