// Numbers from <linux/kvm.h> that the TypeScript side uses (uapi: stable across kernels).

/** KVM_CAP_* numbers used here. */
export const KvmCap = {
  irqchip: 0,
  setTssAddr: 4,
  irqfd: 32,
  pit2: 33,
  ioeventfd: 36,
  setIdentityMapAddr: 37,
  ioeventfdAnyLength: 122,
  immediateExit: 136,
} as const;

/** KVM_EXIT_*. */
export const KvmExit = {
  UNKNOWN: 0, EXCEPTION: 1, IO: 2, HYPERCALL: 3, DEBUG: 4, HLT: 5, MMIO: 6, IRQ_WINDOW_OPEN: 7,
  SHUTDOWN: 8, FAIL_ENTRY: 9, INTR: 10, NMI: 16, INTERNAL_ERROR: 17, SYSTEM_EVENT: 24,
} as const;
