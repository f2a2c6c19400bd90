// The VMM's side of one plugin's control connection (docs/protocol.md): the handshake, slot and
// memory-map replies, region and ioeventfd registration through the registry, the irqfd, and
// the VMM's own requests (GET_REGION_IO_FDS, RESET, SHUTDOWN, CONSOLE_INPUT). Messages are
// handled strictly in arrival order, one at a time, because some wait for the VM to exist.
// Ioregions go into the VMM module's dispatch table; ioeventfds and irqfds go to the backend
// through the VM's wiring (hypervisors/wiring.ts). Anything malformed or out of order closes the
// connection with the reason; the session then undoes everything the plugin registered.
import { fstatSync, readlinkSync } from 'node:fs';
import { closeQuietly } from '../../wire/control-channel.ts';
import { ControlPeer, type Message } from '../../wire/control-peer.ts';
import { vmmNative } from '../../native/vmm.ts';
import {
  BUS_MMIO, BUS_PIO, Command, COMMAND_NAMES, CONSOLE_HVC0, decodeConsole, decodeIoeventfd, decodeIoFdsReply, decodeIoregion,
  decodeLog, decodeMemoryMapRequest, decodeVersion, encodeIoFdsRequest, encodeIrqfdReply, encodeMemoryMapReply, encodeSlot,
  encodeStateReply, encodeVersion, Errno, ERRNO_NAMES, IoregionFlag, IoFdType, IO_FDS_FIXED, MAX_MESSAGE_FDS, MAX_MESSAGE_SIZE,
  IoeventfdFlag, PROTOCOL_MAJOR, PROTOCOL_MINOR, RAM_READABLE, RAM_WRITABLE, type IoFdEntry, type SlotInfo,
} from '../../wire/protocol.ts';
import type { IoeventfdSpec, VmWiring } from '../../hypervisors/backend.ts';
import type { RegionOwner, RegionRegistry, RegistryEntry } from './registry.ts';

const SOCK_SEQPACKET = 5;

/** The VM a plugin attaches to; known once the backend has created it. */
export interface MachineWiring {
  /** Guest RAM as memfds (offset 0 = guestPhys). */
  ram: readonly { fd: number; guestPhys: number; size: number }[];
  /** Where ioeventfds and irqfds go (openWiring of the VM's WiringToken). */
  wiring: VmWiring;
}

/** What a session needs from the VMM around it. */
export interface SessionHost {
  registry: RegionRegistry;
  reserved: readonly { start: number; size: number }[];
  /** Resolves once the VM exists; commands that need it wait (in order) until then. */
  machine(): Promise<MachineWiring>;
  consoleOutput(console: 'hvc0', bytes: Uint8Array): void;
  log(line: string): void;
  /** The slot's state memfd (GET_STATE): it outlives plugin processes; the VMM never reads it. */
  state: { fd: number; size: number };
}

interface Applied {
  entry: RegistryEntry;
  /** ioeventfd: the eventfd we hold. */
  fd?: number;
}

export class PluginSession {
  readonly owner: RegionOwner;
  private readonly peer: ControlPeer;
  private readonly native = vmmNative();
  private state: 'version' | 'active' | 'closed' = 'version';
  private queue: Promise<void> = Promise.resolve();
  private applied: Applied[] = [];
  private channels = new Map<number, number>(); // socket inode -> dispatch channel id
  /** The slot's irqfd, once a plugin asked for it; the VMM keeps its own copy. */
  private irqfd: number | undefined;
  private readyResolve!: () => void;
  private closedResolve!: (reason: string) => void;
  /** Resolves with the reason when the connection is gone. */
  readonly closed: Promise<string>;
  /** Resolves when the plugin has sent READY and its GET_REGION_IO_FDS answer checked out. */
  readonly ready: Promise<void>;
  pluginName = '';
  /** READY arrived and checked out (the same moment `ready` resolves). */
  isReady = false;
  /** Set once closed. */
  closeReason: string | undefined;

  constructor(
    fd: number,
    private readonly slot: SlotInfo & { name: string },
    private readonly host: SessionHost,
    maxEntries: number,
    private readonly onClosed: (session: PluginSession, reason: string) => void,
  ) {
    this.owner = {
      name: slot.name,
      mmio: { start: slot.mmioBase, size: slot.mmioSize },
      pio: slot.pioSize ? { start: slot.pioBase, size: slot.pioSize } : undefined,
      maxEntries,
    };
    this.ready = new Promise((resolve) => (this.readyResolve = resolve));
    this.closed = new Promise((resolve) => (this.closedResolve = resolve));
    this.peer = new ControlPeer(fd, this.native, slot.name, {
      command: (m) => {
        this.queue = this.queue.then(() => this.handle(m)).catch((e: unknown) => this.close(`internal error handling a message: ${(e as Error).message}`));
      },
      closed: (reason) => this.teardown(reason),
    });
  }

  /** Dispatch channels this session owns (the native failure report names a channel). */
  ownsChannel(channel: number): boolean {
    return [...this.channels.values()].includes(channel);
  }

  close(reason: string): void {
    this.peer.close(reason);
  }

  /** The handshake is done: the VMM's own requests (RESET, SHUTDOWN, console input) reach the plugin. */
  get isActive(): boolean {
    return this.state === 'active';
  }

  consoleInput(bytes: Uint8Array): void {
    if (this.state === 'active') this.peer.sendConsole(Command.CONSOLE_INPUT, CONSOLE_HVC0, bytes);
  }

  /** Ask the plugin to reset its device; resolves when it has. */
  async reset(): Promise<void> {
    await this.request(Command.RESET, new Uint8Array(0));
  }

  /** Ask the plugin to finish (flush) and exit; resolves when it acknowledged. */
  async shutdown(): Promise<void> {
    await this.request(Command.SHUTDOWN, new Uint8Array(0));
  }

  /** A request of the VMM's own; the plugin sends no fds with its replies, so any are closed. */
  private async request(command: number, payload: Uint8Array): Promise<Message> {
    if (this.state !== 'active') throw new Error(`${this.slot.name} has not finished its handshake`);
    const m = await this.peer.request(command, payload);
    m.fds.forEach(closeQuietly);
    return m;
  }

  private async handle(m: Message): Promise<void> {
    if (this.state === 'closed') {
      m.fds.forEach(closeQuietly);
      return;
    }
    const { header } = m;
    if (this.state === 'version' && header.command !== Command.VERSION) {
      m.fds.forEach(closeQuietly);
      return this.close(`protocol violation: ${COMMAND_NAMES[header.command] ?? `command ${header.command}`} before VERSION`);
    }
    switch (header.command) {
      case Command.VERSION: return this.onVersion(m);
      case Command.GET_SLOT: return void (this.expectSize(m, 0) && this.reply(m, encodeSlot(this.slot)));
      case Command.GET_MEMORY_MAP: return this.onMemoryMap(m);
      case Command.GET_IRQFD: return this.expectSize(m, 0) ? this.onIrqfd(m) : undefined;
      case Command.REGISTER_REGION: return this.onRegion(m);
      case Command.REGISTER_IOEVENTFD: return this.onIoeventfd(m);
      case Command.READY: return void (this.expectSize(m, 0) && this.onReady(m));
      case Command.LOG: return this.onLog(m);
      case Command.CONSOLE_WRITE: return this.onConsoleWrite(m);
      case Command.GET_STATE: return void (this.expectSize(m, 0) && this.onState(m));
      case Command.GET_REGION_IO_FDS: case Command.RESET: case Command.SHUTDOWN: case Command.CONSOLE_INPUT:
        m.fds.forEach(closeQuietly);
        return this.close(`protocol violation: ${COMMAND_NAMES[header.command]} is sent by the VMM, not by plugins`);
      default:
        m.fds.forEach(closeQuietly);
        this.replyError(m, Errno.ENOSYS);
    }
  }

  /** Commands that carry no fds and a fixed payload: anything else is malformed. */
  private expectSize(m: Message, size: number, fds = 0): boolean {
    if (m.payload.length === size && m.fds.length === fds) return true;
    m.fds.forEach(closeQuietly);
    this.close(`malformed ${COMMAND_NAMES[m.header.command]}: ${m.payload.length} payload bytes and ${m.fds.length} fds, expected ${size} and ${fds}`);
    return false;
  }

  private reply(m: Message, payload: Uint8Array, fds: readonly number[] = []): void {
    this.peer.reply(m, payload, fds);
  }

  private replyError(m: Message, errno: number, why?: string): void {
    if (why) this.host.log(`${this.slot.name}: ${COMMAND_NAMES[m.header.command] ?? m.header.command} refused with ${ERRNO_NAMES[errno]}: ${why}`);
    this.peer.replyError(m, errno);
  }

  private async onVersion(m: Message): Promise<void> {
    if (this.state !== 'version') {
      m.fds.forEach(closeQuietly);
      return this.close('protocol violation: a second VERSION');
    }
    if (m.fds.length) {
      m.fds.forEach(closeQuietly);
      return this.close('malformed VERSION: it carries fds');
    }
    const v = decodeVersion(m.payload);
    if (typeof v === 'string') return this.close(`malformed VERSION: ${v}`);
    if (v.major !== PROTOCOL_MAJOR) {
      this.replyError(m, Errno.EPROTO);
      return this.close(`plugin speaks protocol ${v.major}.${v.minor}; this VMM speaks ${PROTOCOL_MAJOR}.x`);
    }
    this.pluginName = typeof v.caps.name === 'string' ? v.caps.name.slice(0, 64) : '';
    this.state = 'active';
    const machine = await this.host.machine();
    this.reply(m, encodeVersion({
      major: PROTOCOL_MAJOR,
      minor: Math.min(v.minor, PROTOCOL_MINOR),
      caps: {
        max_msg_fds: MAX_MESSAGE_FDS,
        max_msg_size: MAX_MESSAGE_SIZE,
        max_regions: this.owner.maxEntries,
        ioeventfd_in_kernel: machine.wiring.ioeventfdInKernel,
        irqfd_in_kernel: machine.wiring.irqfdInKernel,
      },
    }));
  }

  private async onMemoryMap(m: Message): Promise<void> {
    if (!this.expectSize(m, 8)) return;
    const machine = await this.host.machine();
    const req = decodeMemoryMapRequest(m.payload);
    if (typeof req === 'string') return this.replyError(m, Errno.EINVAL, req);
    const ram = machine.ram.map((r, i) => ({ guestPhys: r.guestPhys, size: r.size, fdOffset: 0, fdIndex: i, flags: RAM_READABLE | RAM_WRITABLE }));
    const { payload, full } = encodeMemoryMapReply(ram, this.host.reserved, req.argsz);
    this.reply(m, payload, full ? machine.ram.map((r) => r.fd) : []);
  }

  private async onIrqfd(m: Message): Promise<void> {
    const machine = await this.host.machine();
    if (this.state === 'closed') return;
    if (this.irqfd === undefined) {
      const fd = this.native.eventfd(0, true);
      try {
        machine.wiring.assignIrqfd(fd, this.slot.irq);
      } catch (e) {
        closeQuietly(fd);
        return this.replyError(m, Errno.EIO, (e as Error).message);
      }
      this.irqfd = fd;
    }
    this.reply(m, encodeIrqfdReply(this.slot.irq), [this.irqfd]);
  }

  private onState(m: Message): void {
    this.reply(m, encodeStateReply(this.host.state.size), [this.host.state.fd]);
  }

  private async onRegion(m: Message): Promise<void> {
    const r = decodeIoregion(m.payload);
    if (typeof r === 'string' || m.fds.length > 2) {
      m.fds.forEach(closeQuietly);
      return this.close(`malformed REGISTER_REGION: ${m.payload.length} bytes and ${m.fds.length} fds (64 bytes and at most 2 fds)`);
    }
    const fds = m.fds;
    const done = (errno: number, why?: string) => {
      fds.forEach(closeQuietly);
      if (errno) this.replyError(m, errno, why);
      else this.reply(m, new Uint8Array(0));
    };
    if (!r.padded) return done(Errno.EINVAL, 'pad bytes are not zero');
    if (r.flags & IoregionFlag.DEASSIGN) {
      const res = this.host.registry.ioregion(this.owner, r);
      if (!res.ok) return done(res.errno, res.message);
      this.native.ioregionRemove(res.value.id);
      this.applied = this.applied.filter((a) => a.entry !== res.value);
      return done(0);
    }
    // The VMM writes commands to write_fd and reads responses from read_fd; tsvmm needs both to
    // be the same SOCK_SEQPACKET socket (doorbells use only write_fd).
    const isDoorbell = r.memorySize === 0n;
    const wfd = fds[r.writeFd];
    if (r.writeFd < 0 || wfd === undefined) return done(Errno.EBADF, `write_fd index ${r.writeFd} names none of the ${fds.length} fds sent`);
    if (!isDoorbell && r.readFd !== r.writeFd) return done(Errno.EINVAL, 'read_fd and write_fd must be the same SOCK_SEQPACKET socket');
    if (this.native.socketType(wfd) !== SOCK_SEQPACKET) return done(Errno.EINVAL, 'the region fd is not a SOCK_SEQPACKET socket');
    const res = this.host.registry.ioregion(this.owner, r);
    if (!res.ok) return done(res.errno, res.message);
    const entry = res.value;
    const ino = fstatSync(wfd).ino;
    let channel = this.channels.get(ino);
    if (channel === undefined) {
      channel = this.native.ioregionOpenChannel(wfd); // takes ownership of this fd
      this.channels.set(ino, channel);
      fds.splice(fds.indexOf(wfd), 1);
    }
    this.native.ioregionAdd(entry.id, entry.bus === 'pio' ? BUS_PIO : BUS_MMIO, entry.start, entry.size, entry.userData,
      entry.posted ? IoregionFlag.POSTED_WRITES : 0, channel);
    this.applied.push({ entry });
    done(0);
  }

  private async onIoeventfd(m: Message): Promise<void> {
    const r = decodeIoeventfd(m.payload);
    if (typeof r === 'string' || m.fds.length > 1) {
      m.fds.forEach(closeQuietly);
      return this.close(`malformed REGISTER_IOEVENTFD: ${m.payload.length} bytes and ${m.fds.length} fds (64 bytes and at most 1 fd)`);
    }
    const fds = m.fds;
    const done = (errno: number, why?: string) => {
      fds.forEach(closeQuietly);
      if (errno) this.replyError(m, errno, why);
      else this.reply(m, new Uint8Array(0));
    };
    if (!r.padded) return done(Errno.EINVAL, 'pad bytes are not zero');
    const machine = await this.host.machine();
    if (this.state === 'closed') return done(0);
    const res = this.host.registry.ioeventfd(this.owner, r);
    if (!res.ok) return done(res.errno, res.message);
    const entry = res.value;
    if (r.flags & IoeventfdFlag.DEASSIGN) {
      const a = this.applied.find((x) => x.entry === entry);
      this.applied = this.applied.filter((x) => x !== a);
      if (a?.fd !== undefined) this.releaseIoeventfd(entry, a.fd, machine);
      return done(0);
    }
    const fd = fds[r.fd];
    if (r.fd < 0 || fd === undefined || !isEventfd(fd)) {
      this.host.registry.remove(entry);
      return done(fd === undefined ? Errno.EBADF : Errno.EINVAL, fd === undefined ? `fd index ${r.fd} names none of the ${fds.length} fds sent` : 'the ioeventfd fd is not an eventfd');
    }
    try {
      machine.wiring.assignIoeventfd(ioeventfdSpec(entry, fd));
    } catch (e) {
      this.host.registry.remove(entry);
      return done((e as { code?: string }).code === 'EEXIST' ? Errno.EEXIST : Errno.EINVAL, (e as Error).message);
    }
    fds.splice(fds.indexOf(fd), 1);
    this.applied.push({ entry, fd });
    done(0);
  }

  private releaseIoeventfd(entry: RegistryEntry, fd: number, machine: MachineWiring): void {
    try {
      machine.wiring.deassignIoeventfd(ioeventfdSpec(entry, fd));
    } catch (e) {
      this.host.log(`${this.slot.name}: deassigning an ioeventfd failed: ${(e as Error).message}`);
    }
    closeQuietly(fd);
  }

  private onReady(m: Message): void {
    this.reply(m, new Uint8Array(0));
    void this.checkIoFds();
  }

  private async checkIoFds(): Promise<void> {
    // Cross-check the plugin's own description of its slot (vfio-user's GET_REGION_IO_FDS,
    // argsz rule: ask with the fixed size, learn the full size, ask again).
    try {
      const { value: entries, reply } = await this.peer.requestSized<IoFdEntry[]>(Command.GET_REGION_IO_FDS, IO_FDS_FIXED, encodeIoFdsRequest, (m) => {
        const r = decodeIoFdsReply(m.payload);
        return typeof r === 'string' ? r : r.entries.length < r.count ? { argsz: r.argsz, complete: false } : { argsz: r.argsz, complete: true, value: r.entries };
      });
      reply.fds.forEach(closeQuietly); // the VMM knows its fds already; it only checks the description
      const mine = this.host.registry.list(this.owner);
      for (const e of entries) {
        const kind = e.type === IoFdType.IOREGIONFD ? 'ioregion' : 'ioeventfd';
        const pio = e.flags & (kind === 'ioregion' ? IoregionFlag.PIO : IoeventfdFlag.PIO);
        const base = pio ? this.slot.pioBase : this.slot.mmioBase;
        const found = mine.some((x) => x.kind === kind && x.start === base + Number(e.offset) && x.size === Number(e.size));
        if (!found) this.host.log(`${this.slot.name}: plugin describes a ${kind} at +0x${e.offset.toString(16)} that it never registered`);
      }
    } catch (e) {
      if (this.state === 'closed') return;
      return this.close(`GET_REGION_IO_FDS failed: ${(e as Error).message}`);
    }
    this.isReady = true;
    this.readyResolve();
  }

  private onLog(m: Message): void {
    m.fds.forEach(closeQuietly);
    const log = decodeLog(m.payload);
    if (typeof log === 'string') return this.close(`malformed LOG: ${log}`);
    this.host.log(`${this.slot.name}: ${log.text}`);
  }

  private onConsoleWrite(m: Message): void {
    m.fds.forEach(closeQuietly);
    const c = decodeConsole(m.payload);
    if (typeof c === 'string') return this.close(`malformed CONSOLE_WRITE: ${c}`);
    if (c.console !== CONSOLE_HVC0) return this.replyError(m, Errno.EINVAL, `unknown console ${c.console}`);
    this.host.consoleOutput('hvc0', c.bytes);
  }

  /** Undo everything this plugin registered; its slot's accesses then read all-ones. */
  private teardown(reason: string): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.closeReason = reason;
    for (const e of this.host.registry.removeOwner(this.owner)) {
      const a = this.applied.find((x) => x.entry === e);
      if (e.kind === 'ioregion') this.native.ioregionRemove(e.id);
      else if (a?.fd !== undefined) {
        const fd = a.fd;
        void this.host.machine().then((machine) => this.releaseIoeventfd(e, fd, machine));
      }
    }
    this.applied = [];
    for (const ch of this.channels.values()) this.native.ioregionCloseChannel(ch);
    this.channels.clear();
    if (this.irqfd !== undefined) {
      const fd = this.irqfd;
      void this.host.machine().then((machine) => {
        try {
          machine.wiring.deassignIrqfd(fd, this.slot.irq);
        } catch {
          // the backend refused: the fd is closed below all the same, and KVM drops an irqfd whose fd is gone
        }
        closeQuietly(fd);
      });
      this.irqfd = undefined;
    }
    this.onClosed(this, reason);
    this.closedResolve(reason);
  }
}

function isEventfd(fd: number): boolean {
  try {
    return readlinkSync(`/proc/self/fd/${fd}`) === 'anon_inode:[eventfd]';
  } catch {
    return false;
  }
}

function ioeventfdSpec(entry: RegistryEntry, fd: number): IoeventfdSpec {
  return { address: entry.start, length: entry.size, pio: entry.bus === 'pio', datamatch: entry.kind === 'ioeventfd' ? entry.datamatch : undefined, fd };
}
