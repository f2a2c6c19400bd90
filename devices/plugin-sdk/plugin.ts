// The plugin SDK: everything a device process needs to attach to tsvmm (docs/plugins.md).
//
//   const plugin = await Plugin.connect({ name: 'my-device' });   // spawned or --plugin-socket
//   await plugin.registerRegion({ offset: 0, size: 0x100, handler: { read, write } });
//   const irq = await plugin.irq();
//   await plugin.ready();
//
// Guest accesses arrive as 32-byte ioregionfd records on one SOCK_SEQPACKET socket per plugin
// (user_data tells regions apart); the SDK answers reads, and writes unless posted, in order.
// The control channel is the shared peer of wire/control-peer.ts, as on the VMM's side.
import { fstatSync } from 'node:fs';
import { closeQuietly } from '../../wire/control-channel.ts';
import { ControlPeer, RequestError, type Message } from '../../wire/control-peer.ts';
import type { Watcher } from '../../wire/fd-io.ts';
import {
  Command, COMMAND_NAMES, CONSOLE_HVC0, decodeConsole, decodeDispatchCommand, decodeIoFdsRequest, decodeIrqfdReply,
  decodeMemoryMapReply, decodeSlot, decodeStateReply, decodeVersion, DISPATCH_RECORD_SIZE, encodeDispatchResponse,
  encodeIoeventfd, encodeIoFdsReply, encodeIoregion, encodeLog, encodeMemoryMapRequest, encodeVersion, Errno, IoeventfdFlag,
  IoFdType, IoregionFlag, MEMORY_MAP_FIXED, PROTOCOL_MAJOR, PROTOCOL_MINOR, RAM_WRITABLE, type DispatchCommand, type IoFdEntry,
  type MemoryMapReply, type SlotInfo,
} from '../../wire/protocol.ts';
import { GuestRam } from './guest-ram.ts';
import { deviceFdIo } from '../../native/device.ts';

export interface RegionHandler {
  /** A guest read of `size` bytes at `offset` (relative to the region). Must return promptly. */
  read?(offset: number, size: number): bigint | number;
  /** A guest write. For a doorbell (size-0 region) offset, size and value are all 0. */
  write?(offset: number, size: number, value: bigint): void;
}

export interface RegionOptions {
  /** Offset inside the slot's MMIO window (or port range with `pio`). */
  offset: number;
  /** Bytes; 0 makes a doorbell (needs `posted`). */
  size: number;
  pio?: boolean;
  /** Writes do not wait for the plugin (KVM_IOREGION_POSTED_WRITES). */
  posted?: boolean;
  handler: RegionHandler;
}

export interface IoeventfdOptions {
  offset: number;
  /** Access size to match: 1, 2, 4, 8; 0 = any. */
  length: number;
  pio?: boolean;
  datamatch?: bigint;
  /** Called (on the event loop) after one or more matching guest writes; eventfds coalesce. */
  onSignal(count: number): void;
}

export interface Region {
  readonly options: RegionOptions;
  readonly userData: bigint;
}

export interface Ioeventfd {
  readonly options: IoeventfdOptions;
  readonly fd: number;
}

export interface Irq {
  readonly gsi: number;
  /** Pulse the slot's interrupt line (write the irqfd). */
  raise(): void;
}

/** A refused request: `errno` is the protocol's errno (EEXIST, EPERM, ...). */
export { RequestError as PluginRequestError };
/** The VMM closed the connection (or was never reached) before a request was answered. */
export { ConnectionClosedError as PluginDisconnectedError } from '../../wire/control-peer.ts';

export interface ConnectOptions {
  /** Shown in the VMM's log; 'virtio-console' also marks the plugin as the hvc0 console. */
  name: string;
  /** Connect here (a VMM started with --plugin-socket). Default: TSVMM_PLUGIN_FD (spawned), then TSVMM_PLUGIN_SOCKET. */
  socketPath?: string;
  /** An already-connected control socket. */
  fd?: number;
}

export class Plugin {
  private readonly native = deviceFdIo();
  private peer!: ControlPeer;
  private regions = new Map<bigint, Region>();
  private ioeventfds: { ev: Ioeventfd; watcher: Watcher }[] = [];
  private dispatch?: { vmmEnd: number; myEnd: number; watcher: Watcher };
  private irqHandle?: Irq & { fd: number };
  private nextUserData = 1n;
  private closedResolve!: (reason: string) => void;
  /** Resolves with the reason when the VMM connection is gone. */
  readonly closed: Promise<string> = new Promise((resolve) => (this.closedResolve = resolve));
  slot!: SlotInfo;
  memory!: GuestRam;
  /** The VMM's capabilities from the VERSION reply. */
  vmmCaps: Record<string, unknown> = {};
  private vmmMinor = 0;
  onReset: () => void | Promise<void> = () => undefined;
  /** Called before the SDK acknowledges SHUTDOWN: flush here. The process exits afterwards unless this returns false. */
  onShutdown: () => void | boolean | Promise<void | boolean> = () => undefined;
  onConsoleInput: (bytes: Uint8Array) => void = () => undefined;
  /** Guest accesses that hit no region handler, or whose handler threw. */
  onDispatchError: (message: string) => void = (m) => this.log(m, 1);

  private constructor(private readonly name: string) {}

  /**
   * Attach to the VMM, handshake, fetch the slot, map guest RAM. Rejects with
   * PluginDisconnectedError when the VMM closes the connection first (it is shutting down, or it
   * refused this plugin and logged why).
   */
  static async connect(opts: ConnectOptions): Promise<Plugin> {
    const p = new Plugin(opts.name);
    const native = deviceFdIo();
    let fd = opts.fd;
    if (fd === undefined && opts.socketPath) fd = native.connectUnix(opts.socketPath);
    if (fd === undefined && process.env.TSVMM_PLUGIN_FD) {
      fd = Number(process.env.TSVMM_PLUGIN_FD);
      delete process.env.TSVMM_PLUGIN_FD; // not for our children
    }
    if (fd === undefined && process.env.TSVMM_PLUGIN_SOCKET) fd = native.connectUnix(process.env.TSVMM_PLUGIN_SOCKET);
    if (fd === undefined) {
      throw new Error(`${opts.name}: no VMM to attach to. Run it from tsvmm (--device), or pass a socket path / set TSVMM_PLUGIN_SOCKET to a tsvmm --plugin-socket path`);
    }
    p.peer = new ControlPeer(fd, native, 'the VMM', {
      command: (m) => p.onCommand(m),
      closed: (reason) => p.onClosed(reason),
    });
    await p.handshake();
    return p;
  }

  private async handshake(): Promise<void> {
    const v = await this.request(Command.VERSION, encodeVersion({ major: PROTOCOL_MAJOR, minor: PROTOCOL_MINOR, caps: { name: this.name } }));
    const version = decodeVersion(v.payload);
    if (typeof version === 'string') throw new Error(`VMM sent a bad VERSION reply: ${version}`);
    this.vmmCaps = version.caps;
    this.vmmMinor = version.minor;
    const slot = decodeSlot((await this.request(Command.GET_SLOT, new Uint8Array(0))).payload);
    if (typeof slot === 'string') throw new Error(slot);
    this.slot = slot;
    const { value: map, reply } = await this.peer.requestSized<MemoryMapReply>(Command.GET_MEMORY_MAP, MEMORY_MAP_FIXED, encodeMemoryMapRequest, (m) => {
      const r = decodeMemoryMapReply(m.payload);
      return typeof r === 'string' ? r : r.partial ? { argsz: r.argsz, complete: false } : { argsz: r.argsz, complete: true, value: r };
    });
    try {
      const regions = map.ram.map((r) => {
        const fd = reply.fds[r.fdIndex];
        if (fd === undefined) throw new Error(`memory map names fd ${r.fdIndex}, only ${reply.fds.length} sent`);
        return { guestPhys: r.guestPhys, bytes: new Uint8Array(this.native.mapFd(fd, r.fdOffset, r.size, (r.flags & RAM_WRITABLE) !== 0)) };
      });
      this.memory = new GuestRam(regions, map.reserved);
    } finally {
      reply.fds.forEach(closeQuietly); // the mappings keep the memory
    }
  }

  /** Register an ioregion in the slot. Rejects with PluginRequestError (EEXIST, EPERM, ...) when refused. */
  async registerRegion(options: RegionOptions): Promise<Region> {
    const userData = this.nextUserData++;
    const region: Region = { options, userData };
    const d = this.dispatchSocket();
    const flags = (options.pio ? IoregionFlag.PIO : 0) | (options.posted ? IoregionFlag.POSTED_WRITES : 0);
    this.regions.set(userData, region);
    try {
      await this.request(Command.REGISTER_REGION, encodeIoregion({
        guestPaddr: this.address(options), memorySize: BigInt(options.size), userData, readFd: 0, writeFd: 0, flags,
      }), [d.vmmEnd]);
    } catch (e) {
      this.regions.delete(userData);
      throw e;
    }
    return region;
  }

  async deregisterRegion(region: Region): Promise<void> {
    const o = region.options;
    await this.request(Command.REGISTER_REGION, encodeIoregion({
      guestPaddr: this.address(o), memorySize: BigInt(o.size),
      userData: 0n, readFd: -1, writeFd: -1, flags: (o.pio ? IoregionFlag.PIO : 0) | IoregionFlag.DEASSIGN,
    }));
    this.regions.delete(region.userData);
  }

  /** A doorbell the hypervisor signals without waking the VMM (KVM_IOEVENTFD on KVM). */
  async registerIoeventfd(options: IoeventfdOptions): Promise<Ioeventfd> {
    const fd = this.native.eventfd(0, true);
    try {
      await this.request(Command.REGISTER_IOEVENTFD, encodeIoeventfd({
        datamatch: options.datamatch ?? 0n, addr: this.address(options), len: options.length, fd: 0, flags: ioeventfdFlags(options),
      }), [fd]);
    } catch (e) {
      closeQuietly(fd);
      throw e;
    }
    const ev: Ioeventfd = { options, fd };
    const watcher = new this.native.Watcher(fd, () => {
      const n = this.native.eventfdRead(fd);
      if (n > 0) options.onSignal(n);
    });
    watcher.start(1);
    this.ioeventfds.push({ ev, watcher });
    return ev;
  }

  async deregisterIoeventfd(ev: Ioeventfd): Promise<void> {
    const o = ev.options;
    await this.request(Command.REGISTER_IOEVENTFD, encodeIoeventfd({
      datamatch: o.datamatch ?? 0n, addr: this.address(o), len: o.length, fd: -1, flags: ioeventfdFlags(o) | IoeventfdFlag.DEASSIGN,
    }));
    const i = this.ioeventfds.findIndex((x) => x.ev === ev);
    if (i >= 0) {
      this.ioeventfds[i]!.watcher.close();
      closeQuietly(ev.fd);
      this.ioeventfds.splice(i, 1);
    }
  }

  /** The slot's interrupt line, as an irqfd. */
  async irq(): Promise<Irq> {
    if (this.irqHandle) return this.irqHandle;
    const m = await this.request(Command.GET_IRQFD, new Uint8Array(0));
    const fd = m.fds[0];
    const r = decodeIrqfdReply(m.payload);
    if (fd === undefined || typeof r === 'string') {
      m.fds.forEach(closeQuietly);
      throw new Error(`VMM sent a bad GET_IRQFD reply: ${typeof r === 'string' ? r : 'no fd'}`);
    }
    const native = this.native;
    this.irqHandle = { gsi: r.gsi, fd, raise: () => native.eventfdWrite(fd, 1) };
    return this.irqHandle;
  }

  /**
   * The slot's state memory (GET_STATE, protocol 1.1): bytes that outlive this process and are
   * handed to whichever process serves the slot next, so a restarted device can take over where
   * a dead one stopped. All zero on a new VM and after a machine reset that found the slot
   * without a plugin; otherwise what the previous process left. Undefined from a 1.0 VMM.
   */
  async persistentState(): Promise<Uint8Array | undefined> {
    if (this.vmmMinor < 1) return undefined;
    const m = await this.request(Command.GET_STATE, new Uint8Array(0));
    const fd = m.fds[0];
    try {
      const r = decodeStateReply(m.payload);
      if (fd === undefined || typeof r === 'string') throw new Error(`VMM sent a bad GET_STATE reply: ${typeof r === 'string' ? r : 'no fd'}`);
      if (r.size > fstatSync(fd).size) throw new Error(`VMM sent a GET_STATE size of ${r.size} for a smaller memfd`);
      return new Uint8Array(this.native.mapFd(fd, 0, r.size, true));
    } finally {
      m.fds.forEach(closeQuietly); // the mapping keeps the memory
    }
  }

  /** Everything is registered: the VMM may start (or continue) the guest. */
  async ready(): Promise<void> {
    await this.request(Command.READY, new Uint8Array(0));
  }

  /** A line in the VMM's log, prefixed with this plugin's slot name. level: 0 error .. 3 debug. */
  log(text: string, level = 2): void {
    this.peer.notify(Command.LOG, encodeLog(level, text));
  }

  /** Guest console output (hvc0) for the VMM's console hub. */
  consoleWrite(bytes: Uint8Array): void {
    this.peer.sendConsole(Command.CONSOLE_WRITE, CONSOLE_HVC0, bytes);
  }

  /** Low level: send a command and wait for its reply (rejects with PluginRequestError on an error reply). */
  request(command: number, payload: Uint8Array, fds: readonly number[] = []): Promise<Message> {
    return this.peer.request(command, payload, fds);
  }

  /** Low level: send raw bytes on the control socket (tests, fuzzers). */
  sendRaw(bytes: Uint8Array, fds: readonly number[] = []): boolean {
    return this.peer.sendRaw(bytes, fds);
  }

  close(reason = 'plugin closed its connection'): void {
    this.peer.close(reason);
  }

  private address(o: { pio?: boolean | undefined; offset: number }): bigint {
    return BigInt((o.pio ? this.slot.pioBase : this.slot.mmioBase) + o.offset);
  }

  private dispatchSocket(): { vmmEnd: number; myEnd: number } {
    if (this.dispatch) return this.dispatch;
    const [myEnd, vmmEnd] = this.native.socketpair('seqpacket');
    this.native.setNonBlocking(myEnd, true);
    const watcher = new this.native.Watcher(myEnd, () => this.serveDispatch());
    watcher.start(1);
    this.dispatch = { vmmEnd, myEnd, watcher };
    return this.dispatch;
  }

  private readonly rec = new Uint8Array(64);
  private readonly recView = new DataView(this.rec.buffer);
  private readonly cmd: DispatchCommand = { write: false, size: 0, wantResponse: false, userData: 0n, offset: 0, value: 0n };
  private readonly resp = new Uint8Array(DISPATCH_RECORD_SIZE);
  private readonly respView = new DataView(this.resp.buffer);

  /** Serve every waiting dispatch record, strictly in order. */
  private serveDispatch(): void {
    const d = this.dispatch!;
    try {
      this.serveRecords(d);
    } catch (e) {
      // The VMM closed or reset the channel (it declared us failed): stop serving it.
      d.watcher.close();
      this.onDispatchError(`dispatch socket failed: ${(e as Error).message}`);
    }
  }

  private serveRecords(d: { myEnd: number; watcher: Watcher }): void {
    const c = this.cmd;
    for (;;) {
      const r = this.native.recvMsg(d.myEnd, this.rec);
      if (r.n < 0) return;
      r.fds.forEach(closeQuietly);
      if (r.n === 0) {
        d.watcher.close();
        return;
      }
      if (r.messageTruncated || !decodeDispatchCommand(this.recView, r.n, c)) {
        this.onDispatchError(`dispatch record of ${r.n} bytes ignored (must be a 32-byte read or write command)`);
        continue;
      }
      let value = 0n;
      const region = this.regions.get(c.userData);
      try {
        if (!region) throw new Error(`no region with user_data ${c.userData}`);
        if (c.write) {
          const doorbell = region.options.size === 0;
          region.options.handler.write?.(doorbell ? 0 : c.offset, doorbell ? 0 : c.size, c.value);
        } else {
          const v = region.options.handler.read?.(c.offset, c.size) ?? 0n;
          value = BigInt.asUintN(c.size * 8, BigInt(v));
        }
      } catch (e) {
        this.onDispatchError(`${c.write ? 'write' : 'read'} of ${c.size} bytes at offset 0x${c.offset.toString(16)}: ${(e as Error).message}`);
        if (!c.write) value = BigInt.asUintN(c.size * 8, -1n);
      }
      if (c.wantResponse) {
        encodeDispatchResponse(value, this.respView);
        if (this.native.sendMsg(d.myEnd, this.resp) !== DISPATCH_RECORD_SIZE) {
          this.onDispatchError('could not send a dispatch response (socket full)');
        }
      }
    }
  }

  private onCommand(m: Message): void {
    m.fds.forEach(closeQuietly);
    switch (m.header.command) {
      case Command.GET_REGION_IO_FDS: return this.onGetIoFds(m);
      case Command.RESET: return void this.answerAfter(m, this.onReset);
      case Command.SHUTDOWN: return void this.onShutdownRequest(m);
      case Command.CONSOLE_INPUT: {
        const c = decodeConsole(m.payload);
        if (typeof c !== 'string') this.onConsoleInput(c.bytes);
        return;
      }
      default:
        this.peer.replyError(m, Errno.ENOSYS);
    }
  }

  private async answerAfter(m: Message, f: () => unknown): Promise<void> {
    try {
      await f();
      this.peer.reply(m, new Uint8Array(0));
    } catch (e) {
      this.log(`${COMMAND_NAMES[m.header.command]} failed: ${(e as Error).message}`, 0);
      this.peer.replyError(m, Errno.EIO);
    }
  }

  private async onShutdownRequest(m: Message): Promise<void> {
    let exit = true;
    await this.answerAfter(m, async () => {
      exit = (await this.onShutdown()) !== false;
    });
    if (exit) {
      this.close('shut down by the VMM');
      process.exit(0);
    }
  }

  /** Describe our sub-regions (vfio-user GET_REGION_IO_FDS, argsz rule). */
  private onGetIoFds(m: Message): void {
    const req = decodeIoFdsRequest(m.payload);
    if (typeof req === 'string') return this.peer.replyError(m, Errno.EINVAL);
    const fds: number[] = [];
    const fdIndex = (fd: number) => (fds.includes(fd) ? fds.indexOf(fd) : fds.push(fd) - 1);
    const entries: IoFdEntry[] = [];
    for (const r of this.regions.values()) {
      entries.push({
        offset: BigInt(r.options.offset), size: BigInt(r.options.size), fdIndex: fdIndex(this.dispatch!.vmmEnd), type: IoFdType.IOREGIONFD,
        flags: (r.options.pio ? IoregionFlag.PIO : 0) | (r.options.posted ? IoregionFlag.POSTED_WRITES : 0), data: r.userData,
      });
    }
    for (const { ev } of this.ioeventfds) {
      entries.push({
        offset: BigInt(ev.options.offset), size: BigInt(ev.options.length), fdIndex: fdIndex(ev.fd), type: IoFdType.IOEVENTFD,
        flags: ioeventfdFlags(ev.options), data: ev.options.datamatch ?? 0n,
      });
    }
    const { payload, full } = encodeIoFdsReply(entries, req.argsz);
    this.peer.reply(m, payload, full ? fds : []);
  }

  private onClosed(reason: string): void {
    // Nothing can reach this device any more: let go of every fd and watcher, so a plugin with
    // no other work exits by itself (as it must when the VMM dies, docs/protocol.md §1).
    for (const { ev, watcher } of this.ioeventfds) {
      watcher.close();
      closeQuietly(ev.fd);
    }
    this.ioeventfds = [];
    if (this.dispatch) {
      this.dispatch.watcher.close();
      closeQuietly(this.dispatch.myEnd);
      closeQuietly(this.dispatch.vmmEnd);
      this.dispatch = undefined;
    }
    if (this.irqHandle) closeQuietly(this.irqHandle.fd);
    this.closedResolve(reason);
  }
}

function ioeventfdFlags(o: { pio?: boolean | undefined; datamatch?: bigint | undefined }): number {
  return (o.pio ? IoeventfdFlag.PIO : 0) | (o.datamatch !== undefined ? IoeventfdFlag.DATAMATCH : 0);
}
