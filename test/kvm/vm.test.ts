// The KVM backend's VM and vCPU plumbing: triple faults, errors that name the ioctl and errno,
// register round trips, CPUID, guest RAM shared through its memfd, and the probe.
import { afterEach, describe, expect, test } from 'vitest';
import { ExitReason, type Regs } from '../../hypervisors/backend.ts';
import { loadKvmAddon } from '../../hypervisors/kvm/addon.ts';
import { isNativeError } from '../../native/vmm.ts';
import { openKvm } from '../../hypervisors/kvm/kvm.ts';
import { probeKvm } from '../../hypervisors/kvm/probe.ts';
import { enter64 } from '../../firmware/entry/index.ts';
import { GiB, KVM_IDENTITY_MAP, KVM_TSS, buildMemoryMap } from '../../base/memory-map.ts';
import { Asm, R } from '../guests/asm.ts';
import { GUEST, TestGuest, kvmSkipReason } from '../guests/guest.ts';
import { DONE_PORT, runUntilDone } from '../guests/run.ts';

const skip = kvmSkipReason();
if (skip) console.warn(skip);

let guest: TestGuest | undefined;
afterEach(() => { guest?.destroy(); guest = undefined; });

function catchError(f: () => unknown): Error {
  try {
    f();
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected an error');
}

describe.skipIf(skip)('KVM VM and vCPU', () => {
  test('a triple fault at CPL3 in long mode ends the run with Shutdown', () => {
    guest = new TestGuest({ mode: 'long64' });
    guest.load(new Asm(64, GUEST.code).ud2()); // #UD with no IDT → #GP → #DF → shutdown
    guest.start(GUEST.code);
    guest.enterUserMode(GUEST.code);
    expect(guest.run()).toBe(ExitReason.Shutdown);
    expect(guest.vcpu.exit.detail).toMatch(/triple fault/);
  });

  test('a triple fault at CPL0 in 32-bit protected mode ends the run with Shutdown', () => {
    guest = new TestGuest({ mode: 'protected32' });
    guest.load(new Asm(32, GUEST.code).ud2());
    guest.start(GUEST.code);
    expect(guest.run()).toBe(ExitReason.Shutdown);
  });

  test('failing ioctls throw errors naming the ioctl and the errno', () => {
    guest = new TestGuest({ mode: 'long64' });
    const addon = loadKvmAddon();
    const ram = guest.vm.ram[0]!.bytes;

    // A second memory slot over the first one's guest range.
    const overlap = catchError(() => addon.setUserMemoryRegion(guest!.vm.fd, 7, 0, 0x1000, ram.subarray(0, 0x1000)));
    expect(overlap.message).toBe('KVM_SET_USER_MEMORY_REGION failed: EEXIST (File exists)');
    expect(isNativeError(overlap) && [overlap.code, overlap.errno, overlap.syscall]).toEqual(['EEXIST', 17, 'KVM_SET_USER_MEMORY_REGION']);
    // A slot number beyond what KVM offers.
    expect(() => addon.setUserMemoryRegion(guest!.vm.fd, 0x7fff, 0, 0x1_0000_0000, ram.subarray(0, 0x1000)))
      .toThrow('KVM_SET_USER_MEMORY_REGION failed: EINVAL (Invalid argument)');
    // A guest address that is not page-aligned.
    expect(() => addon.setUserMemoryRegion(guest!.vm.fd, 8, 0, 0x1_0000_0800, ram.subarray(0, 0x1000)))
      .toThrow('KVM_SET_USER_MEMORY_REGION failed: EINVAL (Invalid argument)');
    // The same vCPU id twice.
    expect(() => guest!.vm.createVcpu(0)).toThrow('KVM_CREATE_VCPU failed: EEXIST (File exists)');
    // A KVM ioctl on something that is not KVM.
    const efd = addon.eventfd();
    try {
      expect(() => addon.checkExtension(efd, 0)).toThrow('KVM_CHECK_EXTENSION failed: ENOTTY (Inappropriate ioctl for device)');
    } finally {
      addon.closeFd(efd);
    }
    expect(() => openKvm({ path: '/nonexistent/kvm' })).toThrow('open /nonexistent/kvm failed: ENOENT (No such file or directory)');
  });

  test('KVM is never handed memory the garbage collector owns', () => {
    guest = new TestGuest({ mode: 'long64' });
    expect(() => loadKvmAddon().setUserMemoryRegion(guest!.vm.fd, 9, 0, 0x1_0000_0000, new Uint8Array(4096)))
      .toThrow(/must be a view of a mapping made by mapFd/);
  });

  test('registers and segment registers round-trip through KVM', () => {
    guest = new TestGuest({ mode: 'long64' });
    const state = enter64(guest.memory, { entry: GUEST.code });
    guest.vcpu.setSregs(state.sregs);
    const regs = Object.fromEntries(Object.keys(state.regs).map((name, i) => [name, 0x1111_0000_0000_0000n + BigInt(i) * 0x1_0001n])) as unknown as Regs;
    regs.rflags = 0x202n;
    guest.vcpu.setRegs(regs);
    expect(guest.vcpu.getRegs()).toEqual(regs);
    const sregs = guest.vcpu.getSregs();
    expect(sregs.cs).toEqual(state.sregs.cs);
    expect(sregs.tr).toEqual(state.sregs.tr);
    expect(sregs.gdt).toEqual(state.sregs.gdt);
    expect([sregs.cr0, sregs.cr3, sregs.cr4, sregs.efer]).toEqual([state.sregs.cr0, state.sregs.cr3, state.sregs.cr4, state.sregs.efer]);
  });

  test('supported CPUID comes from KVM and setCpuid accepts it', () => {
    guest = new TestGuest({ mode: 'long64' });
    const cpuid = guest.hypervisor.supportedCpuid();
    const leaf0 = cpuid.find((e) => e.function === 0)!;
    expect(leaf0.eax).toBeGreaterThan(0); // highest basic leaf
    expect(cpuid.find((e) => e.function === 0x4000_0000)?.ebx).toBe(0x4b4d_564b); // "KVMK": KVM's own signature
    guest.vcpu.setCpuid(cpuid);
    // Far more entries than KVM takes (KVM_MAX_CPUID_ENTRIES is 256).
    expect(() => guest!.vcpu.setCpuid(Array.from({ length: 300 }, (_, i) => ({ ...leaf0, function: 0x8000_0100 + i }))))
      .toThrow('KVM_SET_CPUID2 failed: E2BIG (Argument list too long)');
  });

  // On a host whose KVM emulates kernel mode, CPUID is answered outside this KVM's table
  // (guest-kernel.md: "CPUID changes made by the VMM did not reach the guest").
  const cpuidSkip = !skip && !probeKvm().nativeKernelMode
    ? 'setCpuid reaching the guest is checked only where KVM runs kernel code natively: on this host CPUID is answered by the outer hypervisor'
    : undefined;
  if (cpuidSkip) console.warn(cpuidSkip);
  test.skipIf(cpuidSkip)('a leaf set with setCpuid is what the guest sees', () => {
    guest = new TestGuest({ mode: 'long64' });
    const signature = 0x4d56_5354; // "TSVM"
    guest.vcpu.setCpuid(guest.hypervisor.supportedCpuid().map((e) => (e.function === 0x4000_0000 ? { ...e, ebx: signature } : e)));
    guest.load(new Asm(64, GUEST.code).movImm(R.eax, 0x4000_0000).cpuid().movReg(R.eax, R.ebx).out(DONE_PORT, 4));
    guest.start(GUEST.code);
    guest.enterUserMode(GUEST.code);
    expect(runUntilDone(guest, {}).doneValue).toBe(signature);
  });

  test('guest RAM is a memfd: a second mapping of it sees the guest\'s writes and vice versa', () => {
    guest = new TestGuest({ mode: 'long64' });
    const addon = loadKvmAddon();
    const region = guest.vm.ram[0]!;
    const other = new Uint8Array(addon.mapFd(region.fd, 0, region.size, true));
    other.set([0x78, 0x56, 0x34, 0x12], GUEST.data); // the guest adds 1 and writes it to data+4
    guest.load(new Asm(64, GUEST.code).movImm(R.ebx, GUEST.data).load(R.eax, R.ebx, 4).inc(R.eax).store(R.ebx, R.eax, 4, 4).out(DONE_PORT, 1));
    guest.start(GUEST.code);
    guest.enterUserMode(GUEST.code);
    runUntilDone(guest, {});
    expect([...other.subarray(GUEST.data + 4, GUEST.data + 8)]).toEqual([0x79, 0x56, 0x34, 0x12]);
    addon.unmap(other.buffer as ArrayBuffer);
    expect(other.length).toBe(0); // detached, not dangling
  });

  test('the memory map of a large guest: RAM above 4 GiB, split into memory slots of at most 4 GiB', () => {
    const map = buildMemoryMap(9 * GiB); // 3 GiB below the hole, 6 GiB from 4 GiB up
    const vm = openKvm().createVm({
      ram: map.ram.map((r) => ({ guestPhys: r.start, size: r.size })), tssAddress: KVM_TSS.start, identityMapAddress: KVM_IDENTITY_MAP.start,
    });
    try {
      expect(vm.ram.map((r) => [r.guestPhys / GiB, r.size / GiB])).toEqual([[0, 3], [4, 4], [8, 2]]);
      expect(new Set(vm.ram.map((r) => r.fd)).size).toBe(3);
      // NORESERVE mappings: touching the last byte allocates one page, not 9 GiB.
      const last = vm.ram[2]!.bytes;
      last[last.length - 1] = 0xa5;
      expect(last[last.length - 1]).toBe(0xa5);
    } finally {
      vm.destroy();
    }
  });

  test('destroy() releases guest RAM: views of it become empty', () => {
    guest = new TestGuest({ mode: 'long64' });
    const bytes = guest.vm.ram[0]!.bytes;
    expect(bytes.length).toBeGreaterThan(0);
    guest.destroy();
    guest = undefined;
    expect(bytes.length).toBe(0);
  });

  test('capabilities come from KVM_CHECK_EXTENSION, and nativeKernelMode from the probe', () => {
    const hv = openKvm();
    expect(hv.name).toBe('kvm');
    expect(hv.capabilities).toMatchObject({ irqchip: true, ioeventfd: true, irqfd: true });
    expect(hv.capabilities.nativeKernelMode).toBe(probeKvm().nativeKernelMode);
    expect(openKvm({ nativeKernelMode: true }).capabilities.nativeKernelMode).toBe(true); // a verdict passed in wins
  });

  test('the probe measures both privilege levels and classifies them consistently', () => {
    const p = probeKvm();
    expect(p.available).toBe(true);
    expect(p.cpl0Rate).toBeGreaterThan(0);
    expect(p.cpl3Rate).toBeGreaterThan(0);
    expect(p.nativeKernelMode).toBe(p.cpl0Rate! >= 100e6 && p.cpl0Rate! * 4 >= p.cpl3Rate!);
    expect(p.reason).toMatch(p.nativeKernelMode ? /natively/ : /emulated/);
    expect(probeKvm()).toBe(p); // measured once per thread
  });
});
