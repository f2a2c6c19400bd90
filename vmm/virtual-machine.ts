// One VM as the main thread runs it, from boot to its end: it starts the vCPU worker
// (vcpu-worker.ts), attaches the device plugins once the VM exists and lets the guest run when
// they are ready, moves console bytes between the worker's rings and its ConsoleHub, and turns
// stop, reset and console requests into bits of the shared control word plus a kick. The command
// line (cli/run.ts) drives it; so can any other front end (an API socket), since nothing here
// knows about terminals, signals or exit codes. The main thread never runs guest code.
import type { Worker } from 'node:worker_threads';
import type { BackendDescriptor, KickToken } from '../hypervisors/backend.ts';
import { kick } from '../hypervisors/kick.ts';
import { openWiring } from '../hypervisors/wiring.ts';
import { startTsWorker } from '../base/worker.ts';
import { ByteRing } from './byte-ring.ts';
import { ConsoleHub, type ConsoleName, type PowerAction } from './console-hub.ts';
import type { PluginManager } from './plugin-host/manager.ts';
import { Control, type MachineSpec, type Outcome, type WorkerMessage } from './worker-protocol.ts';

export interface VirtualMachineConfig {
  backend: BackendDescriptor;
  /** What the backend's probe found that opening it needs (BackendProbe.openOptions). */
  backendOptions: unknown;
  memBytes: number;
  kernel: Uint8Array;
  initrd: Uint8Array | undefined;
  cmdline: string;
  /** Guest time from the instruction count (backends with a deterministic clock). */
  deterministic: boolean;
  /** The device plugins: attached once the VM exists, shut down when it ends. */
  plugins: PluginManager;
  /** One line per event worth telling the user. */
  log(line: string): void;
}

/** How a VM ended. */
export interface VmEnd {
  outcome: Outcome;
  /** Why it was stopped, when something asked it to stop (the first cause given). */
  stopCause: string | undefined;
  /** The guest never ran: a device plugin could not start. */
  pluginStartFailed: boolean;
  /** Console bytes dropped because every viewer fell behind. */
  droppedConsoleBytes: number;
}

const SERIAL_RING_BYTES = 1 << 20;
const SERIAL_INPUT_RING_BYTES = 64 * 1024;
/**
 * How often a guest is asked whether it powered off, on backends that handle HLT themselves
 * (BackendDescriptor.hltNeedsPolling: KVM's in-kernel irqchip): a guest that halts for good
 * (Linux's power-off without ACPI) never exits on its own there; a kick a second costs one exit.
 */
const HALT_CHECK_MS = 1000;
/** How long a stopping guest may take before its worker is ended by force. */
const STOP_GRACE_MS = 5000;

export class VirtualMachine {
  /** The VM's consoles: guest output to every viewer, viewers' input and power requests to the VM. */
  readonly consoles: ConsoleHub;
  private readonly spec: MachineSpec;
  private readonly serialOut: ByteRing;
  private readonly serialIn: ByteRing;
  private readonly control: Int32Array;
  private kickToken: KickToken | undefined;
  private worker: Worker | undefined;
  private stopCause: string | undefined;
  private pluginStartFailed = false;
  private finished = false;

  constructor(private readonly config: VirtualMachineConfig) {
    const { backend } = config;
    this.serialOut = new ByteRing(SERIAL_RING_BYTES);
    this.serialIn = new ByteRing(SERIAL_INPUT_RING_BYTES);
    this.control = new Int32Array(new SharedArrayBuffer(Control.words * 4));
    this.spec = {
      backend: backend.name,
      backendOptions: config.backendOptions,
      memBytes: config.memBytes,
      kernel: config.kernel,
      initrd: config.initrd,
      cmdline: config.cmdline,
      longMode: backend.longMode,
      deterministic: config.deterministic,
      serialOut: this.serialOut.buffer,
      serialIn: this.serialIn.buffer,
      control: this.control.buffer as SharedArrayBuffer,
    };
    this.consoles = new ConsoleHub(backend.name, {
      input: (name, bytes) => this.input(name, bytes),
      power: (action) => this.power(action),
    });
  }

  get backend(): BackendDescriptor {
    return this.config.backend;
  }

  /** Boot the guest and run it until it ends (user resets happen inside); then shut the plugins down. */
  async run(): Promise<VmEnd> {
    const pump = this.pumpSerial();
    const haltCheck = this.config.backend.hltNeedsPolling ? setInterval(() => this.request(Control.haltCheck), HALT_CHECK_MS) : undefined;
    try {
      const outcome = await this.runWorker();
      this.finished = true;
      this.serialOut.wake();
      await pump;
      return { outcome, stopCause: this.stopCause, pluginStartFailed: this.pluginStartFailed, droppedConsoleBytes: this.serialOut.dropped };
    } finally {
      clearInterval(haltCheck);
      this.finished = true;
      this.serialOut.wake();
      await this.config.plugins.shutdown();
    }
  }

  /** Ask the guest to stop; its worker is ended by force if it has not within STOP_GRACE_MS. */
  stop(cause: string): void {
    this.stopCause ??= cause;
    this.request(Control.stop);
    const worker = this.worker;
    setTimeout(() => {
      if (this.worker === worker && worker) {
        this.config.log(`the guest did not stop within ${STOP_GRACE_MS / 1000} s; ending it`);
        void worker.terminate();
      }
    }, STOP_GRACE_MS).unref();
  }

  /** Power-cycle in place: the plugins reset their devices, then the vCPU reloads the kernel. */
  reset(): void {
    this.config.log('resetting the VM');
    void this.config.plugins.reset().then(() => this.request(Control.reset));
  }

  /** Keystrokes for a guest console. */
  input(name: ConsoleName, bytes: Uint8Array): void {
    if (name === 'hvc0') {
      this.config.plugins.consoleInput(bytes);
      return;
    }
    this.serialIn.push(bytes);
    this.request(Control.input);
  }

  private power(action: PowerAction): void {
    if (action === 'poweroff') this.stop('powered off from the console');
    else this.reset();
  }

  private runWorker(): Promise<Outcome> {
    Atomics.store(this.control, Control.requests, 0);
    const worker = startTsWorker(new URL('./vcpu-worker.ts', import.meta.url), { workerData: this.spec });
    this.worker = worker;
    const plugins = this.config.plugins;
    return new Promise<Outcome>((resolve) => {
      let settled = false;
      const settle = (o: Outcome) => {
        if (settled) return;
        settled = true;
        this.kickToken = undefined;
        this.worker = undefined;
        plugins.machineGone();
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
            this.config.log(`VM running: ${m.boot}`);
            this.consoles.setStatus({ state: 'running', backend: this.config.backend.name });
            // A stop requested while the machine was being built is honoured now.
            if (Atomics.load(this.control, Control.requests) !== 0) kick(m.kick);
          });
        } else {
          settle(m.outcome);
        }
      });
      worker.on('error', (e) => settle({ kind: 'internal-error', detail: `the vCPU worker failed: ${e.message}` }));
      worker.on('exit', (code) => settle({ kind: 'internal-error', detail: `the vCPU worker exited with code ${code}` }));
    });
  }

  /** Device plugins map the new VM's RAM and register; the guest starts once they are ready. */
  private async attachPlugins(m: Extract<WorkerMessage, { type: 'started' }>): Promise<boolean> {
    const plugins = this.config.plugins;
    plugins.attachMachine({ ram: m.ram, wiring: openWiring(m.wiring) });
    try {
      await plugins.waitReady();
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
      if (bytes) this.consoles.output('ttyS0', bytes);
      if (this.finished && this.serialOut.isEmpty()) return;
      if (!bytes) await this.serialOut.waitForData(seen);
    }
  }

  private request(bit: number): void {
    Atomics.or(this.control, Control.requests, bit);
    if (this.kickToken) kick(this.kickToken);
  }
}
