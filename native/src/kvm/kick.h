// The process-global vCPU table and the kick mechanism.
//
// Every vCPU is registered under a small integer `slot` together with the thread that owns it
// (the thread that created it and calls KVM_RUN) and its kvm_run mapping. The table is
// process-global, not per isolate: the module's shared object is loaded once per process, so
// the main thread (one isolate) can kick a vCPU running in a worker thread (another isolate)
// knowing only its slot number (the KickToken).
//
// Kick = set kvm_run.immediate_exit = 1, then pthread_kill(owner, kick signal).
//   - vCPU in guest mode: the signal forces KVM_RUN to return EINTR.
//   - vCPU about to enter KVM_RUN: KVM reads immediate_exit at entry and returns EINTR at once.
//   - vCPU in userspace handling an exit: the flag stays set, the next KVM_RUN returns EINTR.
// The signal handler does nothing; it exists so the signal interrupts instead of killing.
// It is installed without SA_RESTART, although KVM_RUN's -EINTR is never restarted anyway.
#pragma once

#include <linux/kvm.h>
#include <pthread.h>
#include <time.h>

#include <cstddef>
#include <cstdint>

#include <napi.h>

namespace tsvmm {

constexpr int kMaxVcpuSlots = 1024;

struct VcpuEntry {
  bool used = false;
  int fd = -1;
  kvm_run* run = nullptr;
  size_t runSize = 0;
  pthread_t owner{};
  // Bumped on every registration so that stale kick timers and finalizers can tell that the
  // slot now belongs to someone else.
  uint32_t generation = 0;
  bool hasTimer = false;
  timer_t timer{};
};

// The signal used to kick vCPUs: SIGRTMIN + 4 (see docs/kvm.md for why this one).
int KickSignal();

// Registers a vCPU owned by the calling thread; installs the signal handler on first use and
// unblocks the kick signal on this thread. Returns the slot.
int RegisterVcpu(Napi::Env env, int fd, kvm_run* run, size_t runSize);

// Removes the slot if it still has `generation`: deletes its kick timer and closes the vCPU fd.
// The kvm_run mapping is unmapped by its owner afterwards, never before (a kick writes to it).
// Returns whether the slot was removed.
bool ReleaseVcpu(int slot, uint32_t generation);

// The entry for `slot`, which must be registered and owned by the calling thread (the only
// thread that runs it, changes it or removes it, so reading it needs no lock).
VcpuEntry& OwnedVcpu(Napi::Env env, int slot, const char* fn);

// Kicks the vCPU in `slot` (any thread). False if no vCPU is registered there.
bool Kick(int slot);

// One-shot timer that kicks `slot` after `ms` milliseconds (replacing an armed one); ms = 0 disarms.
// Used to bound runs that must not hang (the probe, tests).
void ArmKickTimer(Napi::Env env, int slot, double ms);

// Unregisters every vCPU owned by the calling thread and closes its fd: called when a worker's
// environment is torn down, so the table never keeps a dead thread that a kick would signal.
void ReleaseThreadVcpus();

}  // namespace tsvmm
