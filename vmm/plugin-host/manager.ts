// The plugin manager, the heart of the plugin host: gives each out-of-process device a slot
// (MMIO window, interrupt line, port range, state memory), starts its process or listens for it,
// runs its control session, and keeps the VM alive when it fails. Lives on the VMM's main
// thread; the vCPU threads reach plugins only through the native dispatch table
// (native/src/ioregion/), which the sessions fill in. See docs/protocol.md and docs/plugins.md.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, lstatSync, unlinkSync, writeSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { Watcher } from '../../wire/fd-io.ts';
import { vmmNative } from '../../native/vmm.ts';
import type { BusRange, MemoryMap } from '../../base/memory-map.ts';
import { SLOT_STATE_SIZE, slotLayout } from '../../base/slots.ts';
import { RegionRegistry } from './registry.ts';
import { PluginSession, type MachineWiring, type SessionHost } from './session.ts';

export type { MachineWiring } from './session.ts';

/** A plugin that dies this soon after starting counts towards a crash loop... */
const QUICK_FAILURE_MS = 10_000;
/** ...and after this many such deaths in a row it is not restarted again. */
const MAX_QUICK_FAILURES = 3;

export interface PluginManagerOptions {
  memoryMap: MemoryMap;
  /**
   * The VM, if it already exists: guest RAM as memfds, and its wiring for ioeventfds and irqfds
   * (openWiring of the VM's WiringToken, hypervisors/wiring.ts). Otherwise call attachMachine()
   * once it does; plugins can start and attach before that, their handshake waits.
   */
  machine?: MachineWiring;
  /**
   * Ranges answered inside the VMM process, not by plugins: the platform devices on the vCPU
   * worker's bus (vmm/platform.ts, platformRanges) and the backend's own (its descriptor's
   * claims; more can be reserved later through `registry`). Plugins cannot register over them.
   */
  inProcess?: readonly BusRange[];
  /** Bytes the guest wrote to hvc0 (virtio-console plugin). */
  consoleOutput?: (console: 'hvc0', bytes: Uint8Array) => void;
  /** One line per event worth telling the user (plugin failures, plugin log messages). */
  log?: (line: string) => void;
  /** Most ioregions + ioeventfds one plugin may register (default 16). */
  maxRegionsPerPlugin?: number;
  /** How long a vCPU waits for a plugin's dispatch response before declaring it failed (default 10 s). */
  dispatchTimeoutMs?: number;
  /** Slot index of the first plugin (default 0); lower slots stay free for in-process devices. */
  firstSlot?: number;
  /**
   * Start a command plugin again when it dies (default false, so a test or an embedder sees the
   * failure as it is; `tsvmm run` turns it on). The new process gets the same slot and state
   * memfd, so a virtio device can take over the queues of the dead one. A plugin that keeps
   * dying within 10 s of starting is given up on after three tries.
   */
  restartPlugins?: boolean;
}

export type PluginSource =
  | { kind: 'command'; argv: readonly string[] }
  | { kind: 'socket'; path: string };

export interface PluginSlot {
  readonly index: number;
  readonly name: string;
  readonly mmioBase: number;
  readonly mmioSize: number;
  readonly irq: number;
  readonly pioBase: number;
  readonly pioSize: number;
  readonly source: PluginSource;
  /** 'waiting' until a plugin attaches, 'attached', 'failed' after it went away, 'stopped' after shutdown. */
  state: 'waiting' | 'attached' | 'failed' | 'stopped';
  pid?: number;
  lastError?: string;
}

interface SlotRuntime {
  slot: PluginSlot;
  session?: PluginSession;
  child?: ChildProcess;
  listener?: { fd: number; watcher: Watcher };
  stderrTail: string[];
  exited?: Promise<void>;
  /** GET_STATE's memfd: created with the slot, kept across plugin processes, closed at shutdown. */
  stateFd: number;
  startedAt: number;
  /** Processes started so far (the first is not a restart). */
  starts: number;
  /** Consecutive deaths within QUICK_FAILURE_MS of starting. */
  quickFailures: number;
  restartTimer?: NodeJS.Timeout;
}

const root = fileURLToPath(new URL('../../', import.meta.url));
const runPlugin = `${root}devices/plugins/run-plugin.js`;

/** argv that runs one of tsvmm's own TypeScript plugins. */
export function builtinPluginArgv(plugin: 'virtio-blk' | 'virtio-console' | 'example' | 'probe', args: readonly string[] = []): string[] {
  return [process.execPath, runPlugin, `${root}devices/plugins/${plugin}/main.ts`, ...args];
}

export class PluginManager {
  readonly registry: RegionRegistry;
  private readonly native = vmmNative();
  private readonly runtimes: SlotRuntime[] = [];
  private readonly failWatcher: Watcher;
  private readonly failFd: number;
  private stopping = false;
  private readonly log: (line: string) => void;
  private machine: Promise<MachineWiring>;
  private setMachine!: (m: MachineWiring) => void;

  constructor(private readonly opts: PluginManagerOptions) {
    this.registry = new RegionRegistry();
    for (const d of opts.inProcess ?? []) this.registry.reserveInProcess(d.bus, d.start, d.size, d.name);
    this.machine = new Promise((resolve) => (this.setMachine = resolve));
    if (opts.machine) this.attachMachine(opts.machine);
    this.log = opts.log ?? ((line) => process.stderr.write(`tsvmm: ${line}\n`));
    this.native.ioregionSetTimeout(opts.dispatchTimeoutMs ?? 10_000);
    // A vCPU thread that finds a plugin dead (no answer, garbage, socket closed) reports it here.
    this.failFd = this.native.ioregionFailureFd();
    this.failWatcher = new this.native.Watcher(this.failFd, () => this.onDispatchFailures());
    this.failWatcher.start(1);
  }

  /** The VM exists: plugins waiting in their handshake proceed. Call once. */
  attachMachine(machine: MachineWiring): void {
    const bad = machine.ram.find((r) => !(r.fd >= 0));
    if (bad) {
      throw new Error(`guest RAM at 0x${bad.guestPhys.toString(16)} is not backed by a memfd, so plugins cannot map it: ` +
        'allocate it with sharedGuestRam() (native/vmm.ts)');
    }
    this.setMachine(machine);
  }

  /**
   * The VM is destroyed, and its ioeventfds and irqfds with it: plugins that go away from now on
   * (shutdown) must not issue ioctls on its fd, whose number may already name another file.
   */
  machineGone(): void {
    void this.machine.then((m) => m.wiring.release());
  }

  get slots(): readonly PluginSlot[] {
    return this.runtimes.map((r) => r.slot);
  }

  /** `--disk path[,readonly]`: a virtio-blk plugin process serving the raw image. */
  addDisk(path: string, readonly = false): PluginSlot {
    return this.add(`virtio-blk(${path})`, { kind: 'command', argv: builtinPluginArgv('virtio-blk', [path, ...(readonly ? ['--readonly'] : [])]) });
  }

  /** The guest's hvc0: a virtio-console plugin process. */
  addConsole(): PluginSlot {
    return this.add('virtio-console', { kind: 'command', argv: builtinPluginArgv('virtio-console') });
  }

  /** `--device '<command>'`: any plugin, run through /bin/sh. */
  addCommand(command: string, name = command.split(/\s+/)[0] ?? 'plugin'): PluginSlot {
    // dash execs a lone simple command itself, so the plugin's pid is usually the shell's.
    return this.add(name, { kind: 'command', argv: ['/bin/sh', '-c', command] });
  }

  /** A plugin given as an argv (no shell). */
  addArgv(argv: readonly string[], name: string): PluginSlot {
    return this.add(name, { kind: 'command', argv });
  }

  /** `--plugin-socket path`: listen there for a plugin started by hand (and for it again after it restarts). */
  addSocket(path: string): PluginSlot {
    return this.add(`socket(${path})`, { kind: 'socket', path });
  }

  /** The guest kernel command-line words that describe every slot to Linux's virtio_mmio driver. */
  kernelCmdline(): string[] {
    return this.slots.map((s) => `virtio_mmio.device=${s.mmioSize / 1024}K@0x${s.mmioBase.toString(16)}:${s.irq}`);
  }

  /**
   * Resolves once every spawned plugin has sent READY (socket slots are not waited for: their
   * plugin may come later). Rejects naming the plugin that exited or took too long.
   */
  async waitReady(timeoutMs = 30_000): Promise<void> {
    await Promise.all(this.runtimes.filter((r) => r.slot.source.kind === 'command').map((r) => this.readyOf(r, timeoutMs)));
  }

  /** Keystrokes for hvc0: sent to the slot whose plugin registered as a console. */
  consoleInput(bytes: Uint8Array): void {
    for (const r of this.runtimes) if (r.session?.pluginName === 'virtio-console') r.session.consoleInput(bytes);
  }

  /** Start a failed (or stopped) command slot's plugin again; it re-registers from scratch. */
  restart(index: number): void {
    const r = this.runtimes.find((x) => x.slot.index === index);
    if (!r) throw new Error(`no plugin slot ${index}`);
    if (r.slot.source.kind !== 'command') throw new Error(`slot ${index} is a socket slot: restart the plugin by hand, it reattaches`);
    if (r.session && !r.session.closeReason) throw new Error(`slot ${index} (${r.slot.name}) is still attached`);
    clearTimeout(r.restartTimer);
    r.restartTimer = undefined;
    this.spawn(r);
  }

  /** Resolves when the slot's plugin (re)attached and is ready. */
  whenReady(index: number, timeoutMs = 30_000): Promise<void> {
    const r = this.runtimes.find((x) => x.slot.index === index);
    if (!r) return Promise.reject(new Error(`no plugin slot ${index}`));
    return this.readyOf(r, timeoutMs);
  }

  /**
   * Device reset (guest reboot): every attached plugin resets its device model. A slot whose
   * plugin is gone, or still setting up (it may not handle RESET yet), gets its state cleared
   * as well, so that process starts from power-on rather than taking over queues the rebooted
   * guest no longer has.
   */
  async reset(): Promise<void> {
    await Promise.all(this.runtimes.map((r) => {
      const live = r.session && !r.session.closeReason ? r.session : undefined;
      if (!live?.isReady && r.stateFd >= 0) writeSync(r.stateFd, new Uint8Array(SLOT_STATE_SIZE), 0, SLOT_STATE_SIZE, 0);
      return live?.reset();
    }));
  }

  /** Orderly shutdown: SHUTDOWN to every plugin (they flush), wait for exits, close everything. */
  async shutdown(timeoutMs = 5_000): Promise<void> {
    this.stopping = true;
    await Promise.all(this.runtimes.map(async (r) => {
      clearTimeout(r.restartTimer);
      if (r.session && !r.session.closeReason) {
        // A plugin still in its handshake has nothing to flush: closing its socket is its SHUTDOWN.
        if (r.session.isActive) {
          await withTimeout(r.session.shutdown(), timeoutMs).catch((e: unknown) => this.log(`${r.slot.name}: shutdown: ${(e as Error).message}`));
        }
        r.session.close('VMM shutting down');
      }
      if (r.child && r.exited) {
        const exited = await withTimeout(r.exited, timeoutMs).then(() => true, () => false);
        if (!exited) {
          this.log(`${r.slot.name}: did not exit within ${timeoutMs} ms of SHUTDOWN; killing it`);
          r.child.kill('SIGKILL');
          await r.exited;
        }
      }
      if (r.listener) {
        r.listener.watcher.close();
        closeSync(r.listener.fd);
        if (r.slot.source.kind === 'socket') unlinkQuietly(r.slot.source.path);
        r.listener = undefined;
      }
      r.slot.state = 'stopped';
      if (r.stateFd >= 0) closeSync(r.stateFd);
      r.stateFd = -1;
    }));
    this.failWatcher.close();
  }

  private add(name: string, source: PluginSource): PluginSlot {
    const index = (this.opts.firstSlot ?? 0) + this.runtimes.length;
    const slot: PluginSlot = { ...slotLayout(index), name, source, state: 'waiting' };
    const stateFd = this.native.memfdCreate(`tsvmm-slot${index}-state`, SLOT_STATE_SIZE, true);
    const r: SlotRuntime = { slot, stderrTail: [], stateFd, startedAt: 0, starts: 0, quickFailures: 0 };
    this.runtimes.push(r);
    if (source.kind === 'command') this.spawn(r);
    else this.listen(r, source.path);
    return slot;
  }

  private spawn(r: SlotRuntime): void {
    if (r.slot.source.kind !== 'command') return;
    const [vmmEnd, pluginEnd] = this.native.socketpair('stream');
    const [cmd, ...args] = r.slot.source.argv;
    // Its own process group: a terminal's Ctrl-C or a supervisor's signal to tsvmm's group
    // reaches only the VMM, which then shuts plugins down in order (SHUTDOWN: they flush). If
    // the VMM itself dies, a plugin sees its control socket close and exits.
    const child = spawn(cmd!, args, {
      stdio: ['ignore', 'pipe', 'pipe', pluginEnd],
      env: { ...process.env, TSVMM_PLUGIN_FD: '3' },
      detached: true,
    });
    closeSync(pluginEnd);
    r.child = child;
    r.stderrTail = [];
    r.slot.pid = child.pid;
    r.startedAt = Date.now();
    r.starts++;
    r.exited = new Promise((resolve) => child.once('close', () => resolve()));
    for (const stream of [child.stdout!, child.stderr!]) {
      createInterface({ input: stream }).on('line', (line) => {
        r.stderrTail = [...r.stderrTail.slice(-19), line];
        this.log(`${r.slot.name}[${child.pid}]: ${line}`);
      });
    }
    child.once('error', (e) => this.fail(r, `could not start ${cmd}: ${e.message}`));
    child.once('exit', (code, signal) => {
      if (r.child !== child || this.stopping) return;
      this.fail(r, `process ${child.pid} exited ${signal ? `(killed by ${signal})` : `with status ${code}`}`);
      this.restartLater(r);
    });
    this.attach(r, vmmEnd);
    if (r.starts > 1) {
      void r.session!.ready.then(() => this.log(`plugin ${r.slot.name} (slot ${r.slot.index}) is back as pid ${child.pid}`), () => undefined);
    }
  }

  /** After a command plugin died: start it again, unless it is crash-looping (restartPlugins). */
  private restartLater(r: SlotRuntime): void {
    if (!this.opts.restartPlugins || r.restartTimer) return;
    r.quickFailures = Date.now() - r.startedAt < QUICK_FAILURE_MS ? r.quickFailures + 1 : 0;
    if (r.quickFailures >= MAX_QUICK_FAILURES) {
      this.log(`plugin ${r.slot.name} died ${r.quickFailures} times within ${QUICK_FAILURE_MS / 1000} s of starting; not restarting it again`);
      return;
    }
    // The first restart is immediate: the guest is waiting on the device. One that dies again
    // right away waits 0.5 s first, so a crash loop does not eat a core.
    const delay = r.quickFailures <= 1 ? 0 : 500 * 2 ** (r.quickFailures - 2);
    this.log(`restarting plugin ${r.slot.name}${delay ? ` in ${delay} ms` : ''}`);
    r.restartTimer = setTimeout(() => {
      r.restartTimer = undefined;
      if (!this.stopping) this.spawn(r);
    }, delay);
  }

  private listen(r: SlotRuntime, path: string): void {
    if (existsSync(path)) {
      if (!lstatSync(path).isSocket()) throw new Error(`--plugin-socket ${path}: the path exists and is not a socket; choose another path`);
      unlinkSync(path); // a stale socket from an earlier run
    }
    const fd = this.native.listenUnix(path);
    const watcher = new this.native.Watcher(fd, () => {
      for (;;) {
        const c = this.native.acceptUnix(fd);
        if (c < 0) return;
        if (r.session && !r.session.closeReason) {
          this.log(`${r.slot.name}: refusing a second plugin connection while one is attached`);
          closeSync(c);
          continue;
        }
        this.attach(r, c);
      }
    });
    watcher.start(1);
    r.listener = { fd, watcher };
  }

  private attach(r: SlotRuntime, fd: number): void {
    const host: SessionHost = {
      registry: this.registry,
      reserved: [...this.opts.memoryMap.reserved, this.opts.memoryMap.deviceWindow].map((x) => ({ start: x.start, size: x.size })),
      machine: () => this.machine,
      consoleOutput: (c, bytes) => this.opts.consoleOutput?.(c, bytes),
      log: this.log,
      state: { fd: r.stateFd, size: SLOT_STATE_SIZE },
    };
    r.slot.state = 'attached';
    r.slot.lastError = undefined;
    r.session = new PluginSession(fd, { ...r.slot, index: r.slot.index, name: r.slot.name }, host, this.opts.maxRegionsPerPlugin ?? 16,
      (session, reason) => {
        if (r.session !== session) return;
        if (!this.stopping) this.fail(r, reason);
      });
  }

  private fail(r: SlotRuntime, reason: string): void {
    if (r.slot.state === 'failed') {
      // More about the same failure (the control socket closed, then the process exit arrived).
      if (r.slot.lastError !== reason) this.log(`plugin ${r.slot.name} (slot ${r.slot.index}): ${reason}`);
      return;
    }
    r.slot.state = 'failed';
    r.slot.lastError = reason;
    this.log(`plugin ${r.slot.name} (slot ${r.slot.index}${r.slot.pid ? `, pid ${r.slot.pid}` : ''}) failed: ${reason}; ` +
      'its registers now read as all-ones and writes are dropped' + (r.slot.source.kind === 'socket' ? '; it may reattach' : ''));
    r.session?.close(reason);
    // A process whose session failed (a protocol violation, a dispatch timeout) may still be
    // running, hung or confused: when restarts are on, end it; its exit starts the next one.
    if (this.opts.restartPlugins && r.child && r.child.exitCode === null && r.child.signalCode === null) r.child.kill('SIGKILL');
  }

  private onDispatchFailures(): void {
    this.native.eventfdRead(this.failFd);
    for (const f of this.native.ioregionTakeFailures()) {
      const r = this.runtimes.find((x) => x.session?.ownsChannel(f.channel));
      if (r) this.fail(r, `dispatch: the plugin ${f.reason}`);
    }
  }

  private readyOf(r: SlotRuntime, timeoutMs: number): Promise<void> {
    const session = r.session;
    if (!session) return Promise.reject(new Error(`${r.slot.name} has not attached`));
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`plugin ${r.slot.name} did not become ready within ${timeoutMs} ms` + tail(r))), timeoutMs);
    });
    const failed = session.closed.then((reason) => {
      throw new Error(`plugin ${r.slot.name} failed before it was ready: ${reason}` + tail(r));
    });
    return Promise.race([session.ready, failed, timeout]).finally(() => clearTimeout(timer));
  }
}

/** Start the plugin manager; add plugins with addDisk / addConsole / addCommand / addSocket. */
export function startPluginManager(opts: PluginManagerOptions): PluginManager {
  return new PluginManager(opts);
}

function tail(r: SlotRuntime): string {
  return r.stderrTail.length ? `\n  last output:\n    ${r.stderrTail.slice(-5).join('\n    ')}` : '';
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
    p.then((v) => { clearTimeout(t); resolve(v); }, (e: unknown) => { clearTimeout(t); reject(e as Error); });
  });
}

function unlinkQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // already gone
  }
}
