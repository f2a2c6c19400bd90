// `tsvmm run` on the main thread: choose the backend, find the guest, start the vCPU worker,
// connect the consoles, and turn how the guest ended into an exit code. The main thread never
// runs guest code; it moves console bytes and requests, so it stays responsive throughout.
import { constants as osConstants } from 'node:os';
import type { Worker } from 'node:worker_threads';
import type { BackendDescriptor, KickToken } from '../hypervisors/backend.ts';
import { kick } from '../hypervisors/kick.ts';
import { openWiring } from '../hypervisors/wiring.ts';
import type { ImageArch } from '../firmware/images/build.ts';
import { chooseBackend, type BackendRequest } from './backend-choice.ts';
import { backendNamed } from '../hypervisors/backends.ts';
import { ByteRing } from './byte-ring.ts';
import { ConsoleHub, type ConsoleName, type PowerAction } from './console-hub.ts';
import { ConsoleTail } from './console-tail.ts';
import { UsageError } from './errors.ts';
import { builtInGuest, userGuest } from './guest-source.ts';
import { Terminal } from './terminal.ts';
import { startTsWorker } from '../base/worker.ts';
import { startWebConsole } from '../web/server.ts';
import { webConsoleLines } from '../web/cli-options.ts';
import { Control, type MachineSpec, type Outcome, type WorkerMessage } from './worker-protocol.ts';
import { PLATFORM_PORTS } from './machine.ts';
import { buildMemoryMap } from '../base/memory-map.ts';
import { startPluginManager, type PluginManager } from './regions/plugin-manager.ts';
import { addPlugins, type PluginOptions } from './regions/plugin-options.ts';

export interface RunOptions {
  kernel?: string;
  initrd?: string;
  /** Replaces the default kernel command line. */
  cmdline?: string;
  /** Added to the kernel command line. */
  append: string[];
  memBytes: number;
  image?: ImageArch;
  backend: BackendRequest;
  console: ConsoleName;
  /** Attach the user's terminal. */
  stdio: boolean;
  /** Guest time from the instruction count (interpreter only). */
  deterministic?: boolean;
  /** Serve the browser console on this address. */
  web?: { host: string; port: number };
  /** Device plugins: --disk, --device, --plugin-socket. */
  plugins: PluginOptions;
}

const DETERMINISTIC_NEEDS_INTERP =
  '--deterministic: only the interpreter backend can derive guest time from the instruction count; add --backend interp';
/** Whether a backend request can honour --deterministic, before any probing (auto may pick one that can). */
const deterministicPossible = (request: BackendRequest) => request === 'auto' || backendNamed(request).deterministicClock;

/** What tsvmm puts on the kernel command line unless --cmdline replaces it. */
export const DEFAULT_CMDLINE = 'console=ttyS0 reboot=t panic=-1';
/** Tells tsvmm's own guest image to start its shell on hvc0 (--console hvc0). */
const HVC0_SHELL = 'tsvmm_console=hvc0';

const SERIAL_RING_BYTES = 1 << 20;
/**
 * How often a guest is asked whether it powered off, on backends that handle HLT themselves
 * (BackendDescriptor.hltNeedsPolling: KVM's in-kernel irqchip): a guest that halts for good
 * (Linux's power-off without ACPI) never exits on its own there; a kick a second costs one exit.
 */
const HALT_CHECK_MS = 1000;
/** How long a stopping guest may take before its worker is ended by force. */
const STOP_GRACE_MS = 5000;

export function log(message: string): void {
  process.stderr.write(`tsvmm: ${message}\n`);
}

export async function run(options: RunOptions): Promise<number> {
  // The user's files are checked before the backend probe, so a typo fails at once.
  const ownGuest = await userGuest(options);
  if (options.deterministic && !deterministicPossible(options.backend)) throw new UsageError(DETERMINISTIC_NEEDS_INTERP);
  // Device processes start first: their start-up overlaps the backend probe and the kernel load.
  let session: RunSession | undefined;
  const plugins = startPluginManager({
    memoryMap: buildMemoryMap(options.memBytes),
    inProcess: PLATFORM_PORTS,
    consoleOutput: (name, bytes) => session?.hub.output(name, bytes),
    log,
    restartPlugins: true,
  });
  try {
    const deviceWords = addPlugins(plugins, options.plugins);
    const choice = await chooseBackend(options.backend);
    const backend = choice.backend;
    log(`backend ${backend.name}: ${choice.reason}`);
    if (options.deterministic && !backend.deterministicClock) throw new UsageError(DETERMINISTIC_NEEDS_INTERP);
    const guest = ownGuest ?? (await builtInGuest(options, backend));
    log(`guest: ${guest.description}`);
    const consoleWords = options.console === 'hvc0' && !ownGuest ? [HVC0_SHELL] : [];
    // The backend's words come before the user's --append words, so those can override them.
    const cmdline = [options.cmdline ?? DEFAULT_CMDLINE, ...backend.kernelArgs, ...consoleWords, ...deviceWords, ...options.append]
      .join(' ').trim();

    session = new RunSession(backend, {
      backend: backend.name,
      backendOptions: choice.probe.openOptions,
      memBytes: options.memBytes,
      kernel: guest.kernel,
      initrd: guest.initrd,
      cmdline,
      longMode: backend.longMode,
      deterministic: options.deterministic ?? false,
      serialOut: new ByteRing(SERIAL_RING_BYTES).buffer,
      serialIn: new ByteRing(64 * 1024).buffer,
      control: new SharedArrayBuffer(Control.words * 4),
    }, options, plugins);
  } catch (e) {
    await plugins.shutdown();
    throw e;
  }
  return session.run();
}

/** One VM from start to exit code, across user-requested resets. */
class RunSession {
  readonly hub: ConsoleHub;
  private readonly serialOut: ByteRing;
  private readonly serialIn: ByteRing;
  private readonly control: Int32Array;
  private readonly tail = new ConsoleTail();
  private terminal: Terminal | undefined;
  private kickToken: KickToken | undefined;
  private worker: Worker | undefined;
  private stopCause: string | undefined;
  private stopSignal: NodeJS.Signals | undefined;
  private finished = false;
  private pluginStartFailed = false;

  constructor(
    private readonly backend: BackendDescriptor,
    private readonly spec: MachineSpec,
    private readonly options: RunOptions,
    private readonly plugins: PluginManager,
  ) {
    this.serialOut = new ByteRing(spec.serialOut);
    this.serialIn = new ByteRing(spec.serialIn);
    this.control = new Int32Array(spec.control);
    this.hub = new ConsoleHub(backend.name, {
      input: (name, bytes) => this.input(name, bytes),
      power: (action) => this.power(action),
    });
  }

  async run(): Promise<number> {
    const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
    const onSignal = (signal: NodeJS.Signals) => {
      this.stopSignal ??= signal;
      this.requestStop(`stopped by ${signal}`);
    };
    for (const s of signals) process.on(s, onSignal);
    this.hub.onOutput((name, bytes) => { if (name === 'ttyS0') this.tail.push(bytes); });
    if (this.options.stdio) {
      this.terminal = new Terminal({ hub: this.hub, console: this.options.console, onQuit: () => this.requestStop('quit with Ctrl-A x') });
    }
    const pump = this.pumpSerial();
    const haltCheck = this.backend.hltNeedsPolling ? setInterval(() => this.request(Control.haltCheck), HALT_CHECK_MS) : undefined;
    const web = this.options.web ? await startWebConsole({ hub: this.hub, ...this.options.web, log }) : undefined;
    if (web) for (const line of webConsoleLines(web)) process.stdout.write(`${line}\n`);
    try {
      const outcome = await this.runMachine();
      this.finished = true;
      this.serialOut.wake();
      await pump;
      return this.report(outcome);
    } finally {
      clearInterval(haltCheck);
      this.finished = true;
      await this.plugins.shutdown();
      await web?.close();
      this.terminal?.restore();
      for (const s of signals) process.off(s, onSignal);
    }
  }

  private runMachine(): Promise<Outcome> {
    Atomics.store(this.control, Control.requests, 0);
    const worker = startTsWorker(new URL('./vcpu-worker.ts', import.meta.url), { workerData: this.spec });
    this.worker = worker;
    return new Promise<Outcome>((resolve) => {
      let settled = false;
      const settle = (o: Outcome) => {
        if (settled) return;
        settled = true;
        this.kickToken = undefined;
        this.worker = undefined;
        this.plugins.machineGone();
        void worker.terminate();
        resolve(o);
      };
      worker.on('message', (m: WorkerMessage) => {
        if (m.type === 'started') {
          this.kickToken = m.kick;
          void this.attachPlugins(m).then((ok) => {
            Atomics.store(this.control, Control.start, ok ? Control.startRun : Control.startAbort);
            Atomics.notify(this.control, Control.start);
            if (!ok) return;
            log(`VM running: ${m.boot}`);
            this.hub.setStatus({ state: 'running', backend: this.backend.name });
            // A stop requested while the machine was being built is honoured now.
            if (Atomics.load(this.control, Control.requests) !== 0) kick(m.kick);
          });
        } else {
          settle(m.outcome);
        }
      });
      worker.on('error', (e) => settle({ kind: 'internal-error', detail: e.stack ?? e.message }));
      worker.on('exit', (code) => settle({ kind: 'internal-error', detail: `the vCPU worker exited with code ${code}` }));
    });
  }

  /** Device plugins map the new VM's RAM and register; the guest starts once they are ready. */
  private async attachPlugins(m: Extract<WorkerMessage, { type: 'started' }>): Promise<boolean> {
    this.plugins.attachMachine({ ram: m.ram, wiring: openWiring(m.wiring) });
    try {
      await this.plugins.waitReady();
      return true;
    } catch (e) {
      this.stopCause ??= `a device plugin failed to start: ${(e as Error).message}`;
      this.pluginStartFailed = true;
      return false;
    }
  }

  private async pumpSerial(): Promise<void> {
    for (;;) {
      const seen = this.serialOut.signal;
      const bytes = this.serialOut.drain();
      if (bytes) this.hub.output('ttyS0', bytes);
      if (this.finished && this.serialOut.isEmpty()) return;
      if (!bytes) await this.serialOut.waitForData(seen);
    }
  }

  private input(name: ConsoleName, bytes: Uint8Array): void {
    if (name === 'hvc0') {
      this.plugins.consoleInput(bytes);
      return;
    }
    this.serialIn.push(bytes);
    this.request(Control.input);
  }

  private power(action: PowerAction): void {
    if (action === 'poweroff') {
      this.requestStop('powered off from the console');
    } else {
      log('resetting the VM');
      void this.plugins.reset().then(() => this.request(Control.reset));
    }
  }

  private requestStop(cause: string): void {
    this.stopCause ??= cause;
    this.request(Control.stop);
    const worker = this.worker;
    setTimeout(() => {
      if (this.worker === worker && worker) {
        log(`the guest did not stop within ${STOP_GRACE_MS / 1000} s; ending it`);
        void worker.terminate();
      }
    }, STOP_GRACE_MS).unref();
  }

  private request(bit: number, token = this.kickToken): void {
    Atomics.or(this.control, Control.requests, bit);
    if (token) kick(token);
  }

  private report(outcome: Outcome): number {
    const dropped = this.serialOut.dropped;
    if (dropped > 0) log(`${dropped} bytes of console output were dropped because the terminal fell behind`);
    const say = (state: 'stopped', exitCode: number, reason: string) => {
      this.hub.setStatus({ state, backend: this.backend.name, exitCode, reason });
      this.terminal?.message(`tsvmm: ${reason}`);
      if (!this.terminal) log(reason);
      return exitCode;
    };
    if (this.tail.panic !== undefined) {
      if (!this.options.stdio) process.stderr.write(this.tail.tail().map((l) => `  | ${l}\n`).join(''));
      return say('stopped', 1, `guest kernel panic: ${this.tail.panic}`);
    }
    switch (outcome.kind) {
      case 'poweroff':
      case 'reset':
        return say('stopped', 0, `guest finished: ${outcome.detail}`);
      case 'stopped': {
        if (this.pluginStartFailed) return say('stopped', 2, this.stopCause ?? outcome.detail);
        const code = this.stopSignal ? 128 + (osConstants.signals[this.stopSignal] ?? 0) : 0;
        return say('stopped', code, this.stopCause ?? outcome.detail);
      }
      case 'load-error':
        return say('stopped', outcome.exitCode ?? 2, outcome.detail);
      case 'crash':
        return say('stopped', 1, `guest crashed: ${outcome.detail}`);
      case 'user-reset': // handled inside the worker; never reported
      case 'internal-error':
        return say('stopped', 1, `the ${this.backend.name} backend failed: ${outcome.detail}`);
    }
  }
}
