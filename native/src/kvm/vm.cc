// VM-level ioctls: platform set-up, memory slots, interrupt lines, ioeventfd and irqfd.
#include <linux/kvm.h>

#include <cstring>

#include "../common/errors.h"
#include "../common/exports.h"
#include "ioctl.h"
#include "../fdio/mappings.h"

namespace tsvmm {

// setTssAddr(vmFd, address): void — 3 pages below 4 GiB that KVM needs on Intel (never RAM).
static Napi::Value SetTssAddr(const Napi::CallbackInfo& info) {
  int fd = ArgInt(info, 0, "setTssAddr", "vmFd");
  uint64_t addr = ArgU64(info, 1, "setTssAddr", "address");
  Ioctl(info.Env(), fd, KVM_SET_TSS_ADDR, static_cast<unsigned long>(addr), "KVM_SET_TSS_ADDR");
  return info.Env().Undefined();
}

// setIdentityMapAddr(vmFd, address): void — must come before the first vCPU is created.
static Napi::Value SetIdentityMapAddr(const Napi::CallbackInfo& info) {
  int fd = ArgInt(info, 0, "setIdentityMapAddr", "vmFd");
  __u64 addr = ArgU64(info, 1, "setIdentityMapAddr", "address");
  Ioctl(info.Env(), fd, KVM_SET_IDENTITY_MAP_ADDR, &addr, "KVM_SET_IDENTITY_MAP_ADDR");
  return info.Env().Undefined();
}

// createIrqchip(vmFd): void — in-kernel PIC pair, IOAPIC and per-vCPU LAPIC (before vCPUs).
static Napi::Value CreateIrqchip(const Napi::CallbackInfo& info) {
  int fd = ArgInt(info, 0, "createIrqchip", "vmFd");
  Ioctl(info.Env(), fd, KVM_CREATE_IRQCHIP, 0, "KVM_CREATE_IRQCHIP");
  return info.Env().Undefined();
}

// createPit2(vmFd, flags = KVM_PIT_SPEAKER_DUMMY): void — in-kernel 8254 (after createIrqchip).
static Napi::Value CreatePit2(const Napi::CallbackInfo& info) {
  int fd = ArgInt(info, 0, "createPit2", "vmFd");
  kvm_pit_config config;
  memset(&config, 0, sizeof config);
  config.flags = info.Length() > 1 ? ArgInt(info, 1, "createPit2", "flags") : KVM_PIT_SPEAKER_DUMMY;
  Ioctl(info.Env(), fd, KVM_CREATE_PIT2, &config, "KVM_CREATE_PIT2");
  return info.Env().Undefined();
}

// setUserMemoryRegion(vmFd, slot, flags, guestPhys, memory: Uint8Array | null): void
// `memory` must be (part of) a mapping made by this module (mapFd), so KVM can never be handed
// pages that JavaScript's garbage collector might free; null deletes the slot.
static Napi::Value SetUserMemoryRegion(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* fn = "setUserMemoryRegion";
  int fd = ArgInt(info, 0, fn, "vmFd");
  kvm_userspace_memory_region region;
  memset(&region, 0, sizeof region);
  region.slot = static_cast<__u32>(ArgInt(info, 1, fn, "slot"));
  region.flags = static_cast<__u32>(ArgInt(info, 2, fn, "flags"));
  region.guest_phys_addr = ArgU64(info, 3, fn, "guestPhys");
  if (info.Length() > 4 && !info[4].IsNull() && !info[4].IsUndefined()) {
    Bytes memory = ArgBytes(info, 4, fn, "memory");
    if (!IsInsideMapping(memory.data, memory.length)) {
      ThrowType(env, fn, "'memory' must be a view of a mapping made by mapFd(), not ordinary JavaScript memory");
    }
    region.memory_size = memory.length;
    region.userspace_addr = reinterpret_cast<uintptr_t>(memory.data);
  }
  Ioctl(env, fd, KVM_SET_USER_MEMORY_REGION, &region, "KVM_SET_USER_MEMORY_REGION");
  return env.Undefined();
}

// irqLine(vmFd, irq, level: boolean): void — drives a GSI of the in-kernel PIC/IOAPIC.
static Napi::Value IrqLine(const Napi::CallbackInfo& info) {
  int fd = ArgInt(info, 0, "irqLine", "vmFd");
  kvm_irq_level level;
  memset(&level, 0, sizeof level);
  level.irq = static_cast<__u32>(ArgInt(info, 1, "irqLine", "irq"));
  level.level = ArgBool(info, 2, "irqLine", "level") ? 1 : 0;
  Ioctl(info.Env(), fd, KVM_IRQ_LINE, &level, "KVM_IRQ_LINE");
  return info.Env().Undefined();
}

// ioeventfd(vmFd, address, length, fd, flags, datamatch: bigint = 0n): void
// flags: KVM_IOEVENTFD_FLAG_{DATAMATCH 1, PIO 2, DEASSIGN 4}.
static Napi::Value Ioeventfd(const Napi::CallbackInfo& info) {
  const char* fn = "ioeventfd";
  int fd = ArgInt(info, 0, fn, "vmFd");
  kvm_ioeventfd io;
  memset(&io, 0, sizeof io);
  io.addr = ArgU64(info, 1, fn, "address");
  io.len = static_cast<__u32>(ArgInt(info, 2, fn, "length"));
  io.fd = ArgInt(info, 3, fn, "fd");
  io.flags = static_cast<__u32>(ArgInt(info, 4, fn, "flags"));
  io.datamatch = info.Length() > 5 ? ArgU64(info, 5, fn, "datamatch") : 0;
  Ioctl(info.Env(), fd, KVM_IOEVENTFD, &io, "KVM_IOEVENTFD");
  return info.Env().Undefined();
}

// irqfd(vmFd, fd, gsi, flags = 0, resamplefd = 0): void — flags: KVM_IRQFD_FLAG_{DEASSIGN 1, RESAMPLE 2}.
static Napi::Value Irqfd(const Napi::CallbackInfo& info) {
  const char* fn = "irqfd";
  int vmFd = ArgInt(info, 0, fn, "vmFd");
  kvm_irqfd irq;
  memset(&irq, 0, sizeof irq);
  irq.fd = static_cast<__u32>(ArgInt(info, 1, fn, "fd"));
  irq.gsi = static_cast<__u32>(ArgInt(info, 2, fn, "gsi"));
  irq.flags = info.Length() > 3 ? static_cast<__u32>(ArgInt(info, 3, fn, "flags")) : 0;
  irq.resamplefd = info.Length() > 4 ? static_cast<__u32>(ArgInt(info, 4, fn, "resamplefd")) : 0;
  Ioctl(info.Env(), vmFd, KVM_IRQFD, &irq, "KVM_IRQFD");
  return info.Env().Undefined();
}

void ExportVm(Napi::Env env, Napi::Object exports) {
  exports.Set("setTssAddr", Napi::Function::New(env, SetTssAddr, "setTssAddr"));
  exports.Set("setIdentityMapAddr", Napi::Function::New(env, SetIdentityMapAddr, "setIdentityMapAddr"));
  exports.Set("createIrqchip", Napi::Function::New(env, CreateIrqchip, "createIrqchip"));
  exports.Set("createPit2", Napi::Function::New(env, CreatePit2, "createPit2"));
  exports.Set("setUserMemoryRegion", Napi::Function::New(env, SetUserMemoryRegion, "setUserMemoryRegion"));
  exports.Set("irqLine", Napi::Function::New(env, IrqLine, "irqLine"));
  exports.Set("ioeventfd", Napi::Function::New(env, Ioeventfd, "ioeventfd"));
  exports.Set("irqfd", Napi::Function::New(env, Irqfd, "irqfd"));
}

}  // namespace tsvmm
