// An interpreter VM's ioeventfds and irqfds, wired from the main thread. The interpreter has no
// kernel to do either, so: an ioeventfd goes into the VMM module's dispatch table, which signals
// it when the VMM offers the guest's write there (vmm/plugin-host/dispatch.ts); an irqfd is watched on
// the main thread's event loop, and each time it is written the line is pulsed through the VM's
// interrupt mailbox and the vCPU kicked to take it (irq-mailbox.ts).
import type { IoeventfdSpec, VmWiring, WiringToken } from '../backend.ts';
import { kick } from '../kick.ts';
import { vmmNative } from '../../native/vmm.ts';
import type { Watcher } from '../../wire/fd-io.ts';
import { IrqMailbox } from './irq-mailbox.ts';

const BUS_MMIO = 0;
const BUS_PIO = 1;

/** Ids of the software ioeventfds in the dispatch table; process-wide, like the table. */
let nextIoeventfdId = 1;

export class InterpWiring implements VmWiring {
  readonly ioeventfdInKernel = false;
  readonly irqfdInKernel = false;
  private readonly native = vmmNative();
  private readonly mailbox: IrqMailbox;
  private readonly ioeventfds = new Map<string, number>();
  private readonly irqfds = new Map<number, Watcher>();
  private released = false;

  constructor(private readonly token: Extract<WiringToken, { backend: 'interp' }>) {
    this.mailbox = new IrqMailbox(token.irqMailbox);
  }

  assignIoeventfd(spec: IoeventfdSpec): void {
    this.checkAlive();
    const key = keyOf(spec);
    if (this.ioeventfds.has(key)) throw new Error(`ioeventfd ${key} is already assigned`);
    const id = nextIoeventfdId++;
    this.native.ioeventfdAdd(id, spec.pio ? BUS_PIO : BUS_MMIO, spec.address, spec.length, spec.fd, spec.datamatch);
    this.ioeventfds.set(key, id);
  }

  deassignIoeventfd(spec: IoeventfdSpec): void {
    const key = keyOf(spec);
    const id = this.ioeventfds.get(key);
    if (id === undefined) return;
    this.native.ioeventfdRemove(id);
    this.ioeventfds.delete(key);
  }

  assignIrqfd(fd: number, gsi: number): void {
    this.checkAlive();
    if (this.irqfds.has(fd)) throw new Error(`irqfd ${fd} is already assigned`);
    const w = new this.native.Watcher(fd, () => {
      if (this.native.eventfdRead(fd) > 0) {
        this.mailbox.post(gsi);
        kick(this.token.kick);
      }
    });
    w.start(1);
    this.irqfds.set(fd, w);
  }

  deassignIrqfd(fd: number): void {
    this.irqfds.get(fd)?.close();
    this.irqfds.delete(fd);
  }

  /** Nothing here belongs to the VM itself: deassigning still closes watchers and table entries. */
  release(): void {
    this.released = true;
  }

  private checkAlive(): void {
    if (this.released) throw new Error('the VM has been destroyed');
  }
}

function keyOf(s: IoeventfdSpec): string {
  return `${s.pio ? 'pio' : 'mmio'}:${s.address}:${s.length}:${s.datamatch ?? '*'}:${s.fd}`;
}
