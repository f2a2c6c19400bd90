// A KVM VM's ioeventfds and irqfds: KVM_IOEVENTFD and KVM_IRQFD on the VM fd. They are VM-fd
// ioctls that any thread may issue, so the main thread wires a plugin's doorbells and interrupt
// while the vCPU worker stays in KVM_RUN; KvmVm uses the same code for its own.
import type { IoeventfdSpec, VmWiring } from '../backend.ts';
import { loadKvmAddon, type KvmAddon } from './addon.ts';
import { KvmCap } from './uapi.ts';

const IOEVENTFD_FLAG_DATAMATCH = 1;
const IOEVENTFD_FLAG_PIO = 2;
const IOEVENTFD_FLAG_DEASSIGN = 4;
const IRQFD_FLAG_DEASSIGN = 1;

export class KvmWiring implements VmWiring {
  readonly ioeventfdInKernel = true;
  readonly irqfdInKernel = true;
  private readonly addon: KvmAddon = loadKvmAddon();
  private released = false;

  constructor(private readonly vmFd: number) {}

  assignIoeventfd(spec: IoeventfdSpec): void {
    this.checkAlive();
    this.ioeventfd(spec, 0);
  }

  deassignIoeventfd(spec: IoeventfdSpec): void {
    if (!this.released) this.ioeventfd(spec, IOEVENTFD_FLAG_DEASSIGN);
  }

  assignIrqfd(fd: number, gsi: number): void {
    this.checkAlive();
    this.addon.irqfd(this.vmFd, fd, gsi);
  }

  deassignIrqfd(fd: number, gsi: number): void {
    if (!this.released) this.addon.irqfd(this.vmFd, fd, gsi, IRQFD_FLAG_DEASSIGN);
  }

  release(): void {
    this.released = true;
  }

  private checkAlive(): void {
    if (this.released) throw new Error('the VM has been destroyed');
  }

  private ioeventfd(spec: IoeventfdSpec, extraFlags: number): void {
    // KVM answers these with a bare EINVAL; say what is wrong instead.
    if (![0, 1, 2, 4, 8].includes(spec.length)) throw new RangeError(`ioeventfd length ${spec.length}: use 1, 2, 4, 8, or 0 for any`);
    if (spec.length === 0) {
      if (spec.datamatch !== undefined) throw new RangeError('an ioeventfd of any length (0) cannot match data: give the access size');
      if (this.addon.checkExtension(this.vmFd, KvmCap.ioeventfdAnyLength) === 0) {
        throw new Error('this kernel cannot register an ioeventfd of any length (KVM_CAP_IOEVENTFD_ANY_LENGTH, Linux 4.5+): give the access size');
      }
    }
    const flags = extraFlags | (spec.pio ? IOEVENTFD_FLAG_PIO : 0) | (spec.datamatch !== undefined ? IOEVENTFD_FLAG_DATAMATCH : 0);
    this.addon.ioeventfd(this.vmFd, spec.address, spec.length, spec.fd, flags, spec.datamatch ?? 0n);
  }
}
