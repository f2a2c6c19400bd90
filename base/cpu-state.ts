// The x86 CPU state as plain data: general registers, segment and system registers, CPUID
// leaves. The layouts follow KVM's structs (kvm_regs, kvm_sregs, kvm_cpuid_entry2), which every
// backend translates to and from; the Linux loader computes a kernel's entry state in them.

/** x86 general registers (struct kvm_regs); 64-bit values, so bigint. */
export interface Regs {
  rax: bigint; rbx: bigint; rcx: bigint; rdx: bigint;
  rsi: bigint; rdi: bigint; rsp: bigint; rbp: bigint;
  r8: bigint; r9: bigint; r10: bigint; r11: bigint;
  r12: bigint; r13: bigint; r14: bigint; r15: bigint;
  rip: bigint; rflags: bigint;
}

/** A segment register in its descriptor-cache form (struct kvm_segment). */
export interface Segment {
  base: bigint;
  limit: number;
  selector: number;
  type: number;
  present: boolean;
  dpl: number;
  db: boolean;
  s: boolean;
  l: boolean;
  g: boolean;
  avl: boolean;
  unusable: boolean;
}

export interface DescriptorTable {
  base: bigint;
  limit: number;
}

export interface Sregs {
  cs: Segment; ds: Segment; es: Segment; fs: Segment; gs: Segment; ss: Segment;
  tr: Segment; ldt: Segment;
  gdt: DescriptorTable; idt: DescriptorTable;
  cr0: bigint; cr2: bigint; cr3: bigint; cr4: bigint; cr8: bigint;
  efer: bigint;
  apicBase: bigint;
}

export interface CpuidEntry {
  function: number;
  index: number;
  /** KVM_CPUID_FLAG_SIGNIFCANT_INDEX (1) when `index` selects a sub-leaf. */
  flags: number;
  eax: number; ebx: number; ecx: number; edx: number;
}
