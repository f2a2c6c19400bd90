// VmWiring for the KVM backend, usable from the main thread: KVM_IOEVENTFD and KVM_IRQFD are
// VM-fd ioctls that any thread may issue, so the plugin manager does not have to interrupt the
// vCPU worker (blocked in KVM_RUN) to wire a plugin's doorbells and interrupt. The worker only
// has to tell the main thread the VM's fd (KvmVm.fd) and its RAM memfds (Vm.ram).
import { loadKvmAddon } from '../../hypervisors/kvm/addon.ts';
import type { VmWiring } from './plugin-session.ts';

const IOEVENTFD_FLAG_DATAMATCH = 1;
const IOEVENTFD_FLAG_PIO = 2;
const IOEVENTFD_FLAG_DEASSIGN = 4;
const IRQFD_FLAG_DEASSIGN = 1;

export function kvmVmWiring(vmFd: number): VmWiring {
  const addon = loadKvmAddon();
  const ioeventfd = (s: { address: number; length: number; pio: boolean; datamatch?: bigint; fd: number }, extra: number) => {
    const flags = (s.pio ? IOEVENTFD_FLAG_PIO : 0) | (s.datamatch !== undefined ? IOEVENTFD_FLAG_DATAMATCH : 0) | extra;
    addon.ioeventfd(vmFd, s.address, s.length, s.fd, flags, s.datamatch ?? 0n);
  };
  return {
    assignIoeventfd: async (s) => ioeventfd(s, 0),
    deassignIoeventfd: async (s) => ioeventfd(s, IOEVENTFD_FLAG_DEASSIGN),
    assignIrqfd: async (fd, gsi) => addon.irqfd(vmFd, fd, gsi),
    deassignIrqfd: async (fd, gsi) => addon.irqfd(vmFd, fd, gsi, IRQFD_FLAG_DEASSIGN),
  };
}
