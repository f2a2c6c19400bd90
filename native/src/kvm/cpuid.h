// struct kvm_cpuid2 for C++. <linux/kvm.h> declares its entries with __DECLARE_FLEX_ARRAY,
// which in C++ (at least up to the Linux 6.x uapi headers) wraps the array with an empty
// struct that takes a byte: sizeof(kvm_cpuid2) becomes 12 instead of 8, and with it the ioctl
// numbers that encode the size (KVM_GET_SUPPORTED_CPUID would be 0xC00CAE05 and fail with
// EINVAL). So the header and the ioctl numbers are spelled out here with the C layout.
#pragma once

#include <linux/kvm.h>
#include <sys/ioctl.h>

namespace tsvmm {

struct Cpuid2Header {
  __u32 nent;
  __u32 padding;
};
static_assert(sizeof(Cpuid2Header) == 8, "kvm_cpuid2 header is 8 bytes");
static_assert(sizeof(kvm_cpuid_entry2) == 40, "kvm_cpuid_entry2 is 40 bytes");

constexpr unsigned long kKvmGetSupportedCpuid = _IOWR(KVMIO, 0x05, Cpuid2Header);
constexpr unsigned long kKvmSetCpuid2 = _IOW(KVMIO, 0x90, Cpuid2Header);
static_assert(kKvmGetSupportedCpuid == 0xC008AE05, "KVM_GET_SUPPORTED_CPUID");
static_assert(kKvmSetCpuid2 == 0x4008AE90, "KVM_SET_CPUID2");

}  // namespace tsvmm
