// `tsvmm run`: choose the backend, find the guest, start the device plugins and the VM, attach
// the user's terminal and the browser console, and turn how the guest ended into an exit code.
// The VM itself (vmm/virtual-machine.ts) knows nothing of terminals, signals or exit codes.
import { constants as osConstants } from 'node:os';
import { buildMemoryMap } from '../base/memory-map.ts';
import type { ImageArch } from '../firmware/images/build.ts';
import { backendNamed } from '../hypervisors/backends.ts';
import type { ConsoleName } from '../vmm/console-hub.ts';
import { startPluginManager } from '../vmm/plugin-host/manager.ts';
import { platformRanges } from '../vmm/platform.ts';
import { VirtualMachine, type VmEnd } from '../vmm/virtual-machine.ts';
import { webConsoleLines } from '../web/cli-options.ts';
import { startWebConsole, type WebConsole } from '../web/server.ts';
import { chooseBackend, type BackendRequest } from './backend-choice.ts';
import { ConsoleTail } from './console-tail.ts';
import { UsageError } from './errors.ts';
import { builtInGuest, userGuest } from './guest-source.ts';
import { addPlugins, type PluginOptions } from './plugin-options.ts';
import { Terminal } from './terminal.ts';

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

export function log(message: string): void {
  process.stderr.write(`tsvmm: ${message}\n`);
}

export async function run(options: RunOptions): Promise<number> {
  // The user's files are checked before the backend probe, so a typo fails at once.
  const ownGuest = await userGuest(options);
  if (options.deterministic && !deterministicPossible(options.backend)) throw new UsageError(DETERMINISTIC_NEEDS_INTERP);
  // Device processes start first: their start-up overlaps the backend probe and the kernel load.
  let vm: VirtualMachine | undefined;
  let web: WebConsole | undefined;
  const plugins = startPluginManager({
    memoryMap: buildMemoryMap(options.memBytes),
    inProcess: platformRanges(),
    consoleOutput: (name, bytes) => vm?.consoles.output(name, bytes),
    log,
    restartPlugins: true,
  });
  try {
    const deviceWords = addPlugins(plugins, options.plugins);
    const choice = await chooseBackend(options.backend);
    const backend = choice.backend;
    log(`backend ${backend.name}: ${choice.reason}`);
    for (const c of backend.claims) plugins.registry.reserveInProcess(c.bus, c.start, c.size, c.name);
    if (options.deterministic && !backend.deterministicClock) throw new UsageError(DETERMINISTIC_NEEDS_INTERP);
    const guest = ownGuest ?? (await builtInGuest(options, backend));
    log(`guest: ${guest.description}`);
    const consoleWords = options.console === 'hvc0' && !ownGuest ? [HVC0_SHELL] : [];
    // The backend's words come before the user's --append words, so those can override them.
    const cmdline = [options.cmdline ?? DEFAULT_CMDLINE, ...backend.kernelArgs, ...consoleWords, ...deviceWords, ...options.append]
      .join(' ').trim();
    vm = new VirtualMachine({
      backend,
      backendOptions: choice.probe.openOptions,
      memBytes: options.memBytes,
      kernel: guest.kernel,
      initrd: guest.initrd,
      cmdline,
      deterministic: options.deterministic ?? false,
      plugins,
      log,
    });
    web = options.web ? await startWebConsole({ hub: vm.consoles, ...options.web, log }).catch((e: Error) => { throw new UsageError(e.message); }) : undefined;
  } catch (e) {
    await plugins.shutdown();
    throw e;
  }
  return new RunSession(vm, web, options).run();
}

/** The VM with the user's terminal, the browser console and the process's signals around it. */
class RunSession {
  private readonly tail = new ConsoleTail();
  private terminal: Terminal | undefined;
  private stopSignal: NodeJS.Signals | undefined;

  constructor(private readonly vm: VirtualMachine, private readonly web: WebConsole | undefined, private readonly options: RunOptions) {}

  async run(): Promise<number> {
    const { vm, options } = this;
    const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
    const onSignal = (signal: NodeJS.Signals) => {
      this.stopSignal ??= signal;
      vm.stop(`stopped by ${signal}`);
    };
    for (const s of signals) process.on(s, onSignal);
    vm.consoles.onOutput((name, bytes) => { if (name === 'ttyS0') this.tail.push(bytes); });
    if (options.stdio) {
      this.terminal = new Terminal({ hub: vm.consoles, console: options.console, onQuit: () => vm.stop('quit with Ctrl-A x') });
    }
    if (this.web) for (const line of webConsoleLines(this.web)) process.stdout.write(`${line}\n`);
    try {
      return this.report(await vm.run());
    } finally {
      await this.web?.close();
      this.terminal?.restore();
      for (const s of signals) process.off(s, onSignal);
    }
  }

  private report(end: VmEnd): number {
    const { outcome } = end;
    if (end.droppedConsoleBytes > 0) log(`${end.droppedConsoleBytes} bytes of console output were dropped because the terminal fell behind`);
    const say = (exitCode: number, reason: string) => {
      this.vm.consoles.setStatus({ state: 'stopped', backend: this.vm.backend.name, exitCode, reason });
      this.terminal?.message(`tsvmm: ${reason}`);
      if (!this.terminal) log(reason);
      return exitCode;
    };
    if (this.tail.panic !== undefined) {
      if (!this.options.stdio) process.stderr.write(this.tail.tail().map((l) => `  | ${l}\n`).join(''));
      return say(1, `guest kernel panic: ${this.tail.panic}`);
    }
    switch (outcome.kind) {
      case 'poweroff':
      case 'reset':
        return say(0, `guest finished: ${outcome.detail}`);
      case 'stopped': {
        if (end.pluginStartFailed) return say(2, end.stopCause ?? outcome.detail);
        const code = this.stopSignal ? 128 + (osConstants.signals[this.stopSignal] ?? 0) : 0;
        return say(code, end.stopCause ?? outcome.detail);
      }
      case 'load-error':
        return say(outcome.exitCode ?? 2, outcome.detail);
      case 'crash':
        return say(1, `guest crashed: ${outcome.detail}`);
      case 'user-reset': // handled inside the worker; never reported
      case 'internal-error':
        return say(1, `the ${this.vm.backend.name} backend failed: ${outcome.detail}`);
    }
  }
}
