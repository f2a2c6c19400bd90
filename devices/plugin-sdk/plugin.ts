// The plugin SDK: everything a device process needs to attach to tsvmm (docs/plugins.md).
//
//   const plugin = await Plugin.connect({ name: 'my-device' });   // spawned or --plugin-socket
//   await plugin.registerRegion({ offset: 0, size: 0x100, handler: { read, write } });
//   const irq = await plugin.irq();
//   await plugin.ready();
//
// Guest accesses arrive as 32-byte ioregionfd records on one SOCK_SEQPACKET socket per plugin
// (user_data tells regions apart); the SDK answers reads, and writes unless posted, in order.
import { fstatSync } from 'node:fs';
import { ControlConnection, closeQuietly, type Message } from './control-connection.ts';
import { GuestRam } from './guest-ram.ts';
import { fdio, type Watcher } from './native.ts';
import {
  buildMessage, Command, COMMAND_NAMES, CONSOLE_FIXED, CONSOLE_HVC0, decodeMemoryMapReply, decodeSlot, decodeVersion,
  DISPATCH_RECORD_SIZE, DISPATCH_RESP_BIT, encodeIoeventfd, encodeIoFdsReply, encodeIoregion, encodeVersion, Errno,
  ERRNO_NAMES, Flags, IoeventfdFlag, IoFdType, IoregionFlag, IO_FDS_FIXED, LOG_FIXED, MEMORY_MAP_FIXED,
  PROTOCOL_MAJOR, PROTOCOL_MINOR, RAM_WRITABLE, STATE_REPLY_SIZE, type IoFdEntry, type SlotInfo,
} from './protocol.ts';

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
export class PluginRequestError extends Error {
  constructor(readonly command: number, readonly errno: number) {
    super(`${COMMAND_NAMES[command] ?? command} failed: ${ERRNO_NAMES[errno] ?? `errno ${errno}`}`);
  }
}

export interface ConnectOptions {
  /** Shown in the VMM's log; 'virtio-console' also marks the plugin as the hvc0 console. */
  name: string;
  /** Connect here (a VMM started with --plugin-socket). Default: TSVMM_PLUGIN_FD (spawned), then TSVMM_PLUGIN_SOCKET. */
  socketPath?: string;
  /** An already-connected control socket. */
  fd?: number;
}

type Pending = { command: number; resolve(m: Message): void; reject(e: Error): void };

export class Plugin {
  private readonly native = fdio();
  private conn!: ControlConnection;
  private nextId = 1;
  private pending = new Map<number, Pending>();
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

  /** Attach to the VMM, handshake, fetch the slot, map guest RAM. */
  static async connect(opts: ConnectOptions): Promise<Plugin> {
    const p = new Plugin(opts.name);
    const native = fdio();
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
    p.conn = new ControlConnection(fd, {
      message: (m) => p.onMessage(m),
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
    // vfio-user's argsz rule: ask with the fixed size, learn the full size, ask again.
    let argsz = MEMORY_MAP_FIXED;
    for (let attempt = 0; attempt < 2; attempt++) {
      const req = new Uint8Array(8);
      new DataView(req.buffer).setUint32(0, argsz, true);
      const reply = await this.request(Command.GET_MEMORY_MAP, req);
      const map = decodeMemoryMapReply(reply.payload);
      if (typeof map === 'string') throw new Error(map);
      if (map.partial) {
        reply.fds.forEach(closeQuietly);
        argsz = map.argsz;
        continue;
      }
      const regions = map.ram.map((r) => {
        const fd = reply.fds[r.fdIndex];
        if (fd === undefined) throw new Error(`memory map names fd ${r.fdIndex}, only ${reply.fds.length} sent`);
        return { guestPhys: r.guestPhys, bytes: new Uint8Array(this.native.mapFd(fd, r.fdOffset, r.size, (r.flags & RAM_WRITABLE) !== 0)) };
      });
      reply.fds.forEach(closeQuietly); // the mappings keep the memory
      this.memory = new GuestRam(regions, map.reserved);
      return;
    }
    throw new Error('the VMM keeps growing its memory map reply');
  }

  /** Register an ioregion in the slot. Rejects with PluginRequestError (EEXIST, EPERM, ...) when refused. */
  async registerRegion(options: RegionOptions): Promise<Region> {
    const userData = this.nextUserData++;
    const region: Region = { options, userData };
    const d = this.dispatchSocket();
    const base = options.pio ? this.slot.pioBase : this.slot.mmioBase;
    const flags = (options.pio ? IoregionFlag.PIO : 0) | (options.posted ? IoregionFlag.POSTED_WRITES : 0);
    this.regions.set(userData, region);
    try {
      await this.request(Command.REGISTER_REGION, encodeIoregion({
        guestPaddr: BigInt(base + options.offset), memorySize: BigInt(options.size), userData, readFd: 0, writeFd: 0, flags,
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
      guestPaddr: BigInt((o.pio ? this.slot.pioBase : this.slot.mmioBase) + o.offset), memorySize: BigInt(o.size),
      userData: 0n, readFd: -1, writeFd: -1, flags: (o.pio ? IoregionFlag.PIO : 0) | IoregionFlag.DEASSIGN,
    }));
    this.regions.delete(region.userData);
  }

  /** A doorbell the hypervisor signals without waking the VMM (KVM_IOEVENTFD on KVM). */
  async registerIoeventfd(options: IoeventfdOptions): Promise<Ioeventfd> {
    const fd = this.native.eventfd(0, true);
    const base = options.pio ? this.slot.pioBase : this.slot.mmioBase;
    const flags = (options.pio ? IoeventfdFlag.PIO : 0) | (options.datamatch !== undefined ? IoeventfdFlag.DATAMATCH : 0);
    try {
      await this.request(Command.REGISTER_IOEVENTFD, encodeIoeventfd({
        datamatch: options.datamatch ?? 0n, addr: BigInt(base + options.offset), len: options.length, fd: 0, flags,
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
      datamatch: o.datamatch ?? 0n, addr: BigInt((o.pio ? this.slot.pioBase : this.slot.mmioBase) + o.offset), len: o.length, fd: -1,
      flags: (o.pio ? IoeventfdFlag.PIO : 0) | (o.datamatch !== undefined ? IoeventfdFlag.DATAMATCH : 0) | IoeventfdFlag.DEASSIGN,
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
    if (fd === undefined || m.payload.length !== 8) throw new Error('VMM sent a GET_IRQFD reply without an fd');
    const gsi = new DataView(m.payload.buffer, m.payload.byteOffset, 8).getUint32(0, true);
    const native = this.native;
    this.irqHandle = { gsi, fd, raise: () => native.eventfdWrite(fd, 1) };
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
    if (fd === undefined || m.payload.length !== STATE_REPLY_SIZE) throw new Error('VMM sent a GET_STATE reply without an fd');
    try {
      const size = Number(new DataView(m.payload.buffer, m.payload.byteOffset, 8).getBigUint64(0, true));
      if (!(size > 0 && size <= fstatSync(fd).size)) throw new Error(`VMM sent a GET_STATE size of ${size} for a smaller memfd`);
      return new Uint8Array(this.native.mapFd(fd, 0, size, true));
    } finally {
      closeQuietly(fd); // the mapping keeps the memory
    }
  }

  /** Everything is registered: the VMM may start (or continue) the guest. */
  async ready(): Promise<void> {
    await this.request(Command.READY, new Uint8Array(0));
  }

  /** A line in the VMM's log, prefixed with this plugin's slot name. level: 0 error .. 3 debug. */
  log(text: string, level = 2): void {
    const t = new TextEncoder().encode(text);
    const p = new Uint8Array(LOG_FIXED + t.length);
    new DataView(p.buffer).setUint32(0, level, true);
    p.set(t, LOG_FIXED);
    this.conn.send(buildMessage(this.nextId++ & 0xffff, Command.LOG, Flags.TYPE_COMMAND, p, { noReply: true }));
  }

  /** Guest console output (hvc0) for the VMM's console hub. */
  consoleWrite(bytes: Uint8Array): void {
    for (let off = 0; off < bytes.length; off += 4096) {
      const chunk = bytes.subarray(off, off + 4096);
      const p = new Uint8Array(CONSOLE_FIXED + chunk.length);
      new DataView(p.buffer).setUint32(0, CONSOLE_HVC0, true);
      p.set(chunk, CONSOLE_FIXED);
      this.conn.send(buildMessage(this.nextId++ & 0xffff, Command.CONSOLE_WRITE, Flags.TYPE_COMMAND, p, { noReply: true }));
    }
  }

  /** Low level: send a command and wait for its reply (rejects with PluginRequestError on an error reply). */
  request(command: number, payload: Uint8Array, fds: readonly number[] = []): Promise<Message> {
    const id = this.nextId++ & 0xffff;
    return new Promise<Message>((resolve, reject) => {
      this.pending.set(id, { command, resolve, reject });
      if (!this.conn.send(buildMessage(id, command, Flags.TYPE_COMMAND, payload, { fds: fds.length }), fds)) {
        this.pending.delete(id);
        reject(new Error(`${this.name}: not connected to the VMM`));
      }
    }).then((m) => {
      if (m.header.flags & Flags.ERROR) {
        m.fds.forEach(closeQuietly);
        throw new PluginRequestError(command, m.header.error);
      }
      return m;
    });
  }

  /** Low level: send raw bytes on the control socket (tests, fuzzers). */
  sendRaw(bytes: Uint8Array, fds: readonly number[] = []): boolean {
    return this.conn.send(bytes, fds);
  }

  close(reason = 'plugin closed its connection'): void {
    this.conn.close(reason);
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
    for (;;) {
      const r = this.native.recvMsg(d.myEnd, this.rec);
      if (r.n < 0) return;
      r.fds.forEach(closeQuietly);
      if (r.n === 0) {
        d.watcher.close();
        return;
      }
      if (r.n !== DISPATCH_RECORD_SIZE || r.messageTruncated) {
        this.onDispatchError(`dispatch record of ${r.n} bytes ignored (must be 32)`);
        continue;
      }
      const isWrite = this.rec[0] === 1;
      const sizeExp = this.rec[1]! & 0xf;
      const wantResp = (this.rec[1]! & DISPATCH_RESP_BIT) !== 0;
      const userData = this.recView.getBigUint64(8, true);
      const offset = Number(this.recView.getBigUint64(16, true));
      const size = 1 << sizeExp;
      let value = 0n;
      const region = this.regions.get(userData);
      try {
        if (!region) throw new Error(`no region with user_data ${userData}`);
        if (isWrite) {
          const doorbell = region.options.size === 0;
          const v = this.recView.getBigUint64(24, true);
          region.options.handler.write?.(doorbell ? 0 : offset, doorbell ? 0 : size, v);
        } else {
          const v = region.options.handler.read?.(offset, size) ?? 0n;
          value = BigInt.asUintN(size * 8, BigInt(v));
        }
      } catch (e) {
        this.onDispatchError(`${isWrite ? 'write' : 'read'} of ${size} bytes at offset 0x${offset.toString(16)}: ${(e as Error).message}`);
        if (!isWrite) value = BigInt.asUintN(size * 8, -1n);
      }
      if (wantResp) {
        this.respView.setBigUint64(0, value, true);
        if (this.native.sendMsg(d.myEnd, this.resp) !== DISPATCH_RECORD_SIZE) {
          this.onDispatchError('could not send a dispatch response (socket full)');
        }
      }
    }
  }

  private onMessage(m: Message): void {
    const { header } = m;
    if ((header.flags & Flags.TYPE_MASK) === Flags.TYPE_REPLY) {
      const p = this.pending.get(header.id);
      if (!p || p.command !== header.command) {
        m.fds.forEach(closeQuietly);
        this.conn.close(`VMM sent reply ${header.id} that matches no request`);
        return;
      }
      this.pending.delete(header.id);
      p.resolve(m);
      return;
    }
    m.fds.forEach(closeQuietly);
    switch (header.command) {
      case Command.GET_REGION_IO_FDS: return this.onGetIoFds(m);
      case Command.RESET: return void this.answerAfter(m, this.onReset);
      case Command.SHUTDOWN: return void this.onShutdownRequest(m);
      case Command.CONSOLE_INPUT:
        if (m.payload.length >= CONSOLE_FIXED) this.onConsoleInput(m.payload.subarray(CONSOLE_FIXED));
        return;
      default:
        if (!(header.flags & Flags.NO_REPLY)) {
          this.conn.send(buildMessage(header.id, header.command, Flags.TYPE_REPLY, new Uint8Array(0), { error: Errno.ENOSYS }));
        }
    }
  }

  private async answerAfter(m: Message, f: () => unknown): Promise<void> {
    let errno = 0;
    try {
      await f();
    } catch (e) {
      this.log(`${COMMAND_NAMES[m.header.command]} failed: ${(e as Error).message}`, 0);
      errno = Errno.EIO;
    }
    this.conn.send(buildMessage(m.header.id, m.header.command, Flags.TYPE_REPLY, new Uint8Array(0), { error: errno }));
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
    const reply = (payload: Uint8Array, fds: number[] = [], error = 0): void => {
      this.conn.send(buildMessage(m.header.id, m.header.command, Flags.TYPE_REPLY, payload, { fds: fds.length, error }), fds);
    };
    if (m.payload.length !== IO_FDS_FIXED) return reply(new Uint8Array(0), [], Errno.EINVAL);
    const d = new DataView(m.payload.buffer, m.payload.byteOffset, IO_FDS_FIXED);
    const argsz = d.getUint32(0, true);
    if (d.getUint32(4, true) !== 0 || d.getUint32(8, true) !== 0 || d.getUint32(12, true) !== 0 || argsz < IO_FDS_FIXED) {
      return reply(new Uint8Array(0), [], Errno.EINVAL);
    }
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
        flags: (ev.options.pio ? IoeventfdFlag.PIO : 0) | (ev.options.datamatch !== undefined ? IoeventfdFlag.DATAMATCH : 0),
        data: ev.options.datamatch ?? 0n,
      });
    }
    const { payload, full } = encodeIoFdsReply(entries, argsz);
    reply(payload, full ? fds : []);
  }

  private onClosed(reason: string): void {
    for (const p of this.pending.values()) p.reject(new Error(`${this.name}: connection to the VMM closed: ${reason}`));
    this.pending.clear();
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
