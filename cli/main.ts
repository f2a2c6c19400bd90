// The tsvmm command line. Every error a user can cause ends with a message that names the
// problem and the fix, and exit code 2; guest outcomes map to 0/1 (see vmm/errors.ts).
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { buildMemoryMap, MemoryMapError } from '../base/memory-map.ts';
import { ensureImages, IMAGE_ARCHS, type ImageArch } from '../firmware/images/build.ts';
import { CONSOLE_NAMES, type ConsoleName } from '../vmm/console-hub.ts';
import { WebAddressError, parseWebAddress } from '../web/cli-options.ts';
import { BACKEND_REQUESTS, type BackendRequest } from './backend-choice.ts';
import { UsageError, isExitCodeError } from './errors.ts';
import { PluginOptionError, checkPluginSocket, parseDisk, type PluginOptions } from './plugin-options.ts';
import { DEFAULT_CMDLINE, log, run } from './run.ts';
import { parseSize } from './size.ts';

const HELP = `tsvmm — a virtual machine monitor in TypeScript

Usage:
  tsvmm run [options]        boot a Linux guest (by default tsvmm's own minimal guest)
  tsvmm image build          build (or rebuild) the guest images: kernels and initramfs
  tsvmm --help | --version

Options for run:
  --kernel FILE              kernel to boot: bzImage, or vmlinux (ELF, PVH entry or 32-bit)
  --initrd FILE              initial ramdisk (cpio, optionally gzip-compressed)
  --cmdline TEXT             kernel command line, replacing the default
                             ("${DEFAULT_CMDLINE}")
  --append TEXT              words to add to the kernel command line (repeatable)
  --mem SIZE                 guest RAM, e.g. 256M or 1G (default 256M)
  --image x86_64|i386        which built-in guest to boot (default: x86_64 on KVM, i386 on the interpreter)
  --backend auto|kvm|interp  hypervisor backend (default auto: KVM where it runs guest kernel code
                             at hardware speed, otherwise the x86 interpreter; says which and why)
  --console ttyS0|hvc0       which guest console the terminal shows (default ttyS0); with
                             tsvmm's own guest, hvc0 also moves the shell there
  --disk PATH[,readonly]     a raw disk image as virtio-blk (/dev/vda, vdb, ...), served by a
                             device process (repeatable)
  --device COMMAND           start a device plugin process with this shell command (repeatable)
  --plugin-socket PATH       listen at PATH for a device plugin started by hand; it may
                             restart and attach again (repeatable)
                             Device processes tsvmm starts are started again if they die; a
                             virtio device then takes its queues over (docs/plugins.md §6).
  --no-stdio                 do not attach the terminal (output is still collected)
  --deterministic            interpreter only: guest time follows the instruction count and the
                             RTC starts at a fixed date, so two boots print the same transcript
  --web [[HOST:]PORT]        serve the console to browsers (xterm.js); prints a URL with an
                             access token and a read-only URL (default 127.0.0.1, a free port)

Environment: TSVMM_KVM_DEVICE names the KVM device (default /dev/kvm); TSVMM_DEBUG=1 adds
the stack trace to an internal error.

Console keys: Ctrl-A x quits, Ctrl-A Ctrl-A sends Ctrl-A, Ctrl-A h shows help.
Exit status: 0 when the guest powers off or resets; 1 on a guest kernel panic or a backend
failure; 2 for bad options or inputs; 128+N when stopped by signal N.
`;

const RUN_OPTIONS = {
  kernel: { type: 'string' },
  initrd: { type: 'string' },
  cmdline: { type: 'string' },
  append: { type: 'string', multiple: true },
  mem: { type: 'string', default: '256M' },
  image: { type: 'string' },
  backend: { type: 'string', default: 'auto' },
  console: { type: 'string', default: 'ttyS0' },
  'no-stdio': { type: 'boolean', default: false },
  deterministic: { type: 'boolean', default: false },
  web: { type: 'string' },
  disk: { type: 'string', multiple: true },
  device: { type: 'string', multiple: true },
  'plugin-socket': { type: 'string', multiple: true },
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsConfig['options'];

function oneOf<T extends string>(value: string, allowed: readonly T[], option: string): T {
  if ((allowed as readonly string[]).includes(value)) return value as T;
  throw new UsageError(`${option} ${value}: not one of ${allowed.join(', ')}`);
}

function parse<O extends ParseArgsConfig['options']>(args: string[], options: O) {
  try {
    return parseArgs({ args, options, strict: true, allowPositionals: false });
  } catch (e) {
    throw new UsageError(`${(e as Error).message.replace(/\.$/, '')}; see tsvmm --help`);
  }
}

function pluginOptions(disks: string[], devices: string[], sockets: string[]): PluginOptions {
  try {
    return { disks: disks.map(parseDisk), devices, sockets: sockets.map(checkPluginSocket) };
  } catch (e) {
    if (e instanceof PluginOptionError) throw new UsageError(e.message);
    throw e;
  }
}

function webAddress(spec: string): { host: string; port: number } {
  try {
    return parseWebAddress(spec);
  } catch (e) {
    if (e instanceof WebAddressError) throw new UsageError(e.message);
    throw e;
  }
}

/** `--web` may stand alone (loopback, free port): give parseArgs the empty value it needs. */
function webValueOptional(args: string[]): string[] {
  return args.flatMap((arg, i) => (arg === '--web' && (i + 1 >= args.length || args[i + 1]!.startsWith('-')) ? [arg, ''] : [arg]));
}

async function runCommand(args: string[]): Promise<number> {
  const { values } = parse(webValueOptional(args), RUN_OPTIONS);
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const memBytes = parseSize(values.mem, '--mem');
  try {
    buildMemoryMap(memBytes);
  } catch (e) {
    if (e instanceof MemoryMapError) throw new UsageError(`--mem ${values.mem}: ${e.message}`);
    throw e;
  }
  return run({
    kernel: values.kernel,
    initrd: values.initrd,
    cmdline: values.cmdline,
    append: values.append ?? [],
    memBytes,
    image: values.image === undefined ? undefined : oneOf<ImageArch>(values.image, IMAGE_ARCHS, '--image'),
    backend: oneOf<BackendRequest>(values.backend, BACKEND_REQUESTS, '--backend'),
    console: oneOf<ConsoleName>(values.console, CONSOLE_NAMES, '--console'),
    stdio: !values['no-stdio'],
    deterministic: values.deterministic,
    web: values.web === undefined ? undefined : webAddress(values.web),
    plugins: pluginOptions(values.disk ?? [], values.device ?? [], values['plugin-socket'] ?? []),
  });
}

async function imageCommand(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub !== 'build') throw new UsageError(`tsvmm image ${sub ?? ''}: the only image command is "tsvmm image build"`);
  const { values } = parse(rest, {
    arch: { type: 'string', multiple: true },
    force: { type: 'boolean', default: false },
  });
  const archs = (values.arch ?? [...IMAGE_ARCHS]).map((a) => oneOf<ImageArch>(a, IMAGE_ARCHS, '--arch'));
  const images = await ensureImages({ archs, force: values.force, onProgress: (line) => log(line) });
  for (const arch of archs) {
    const paths = images[arch];
    log(`${arch}: ${paths.bzImage}, ${paths.vmlinux}, ${paths.initramfsGz}, ${paths.initramfs}`);
  }
  return 0;
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...args] = argv;
  switch (command) {
    case undefined:
    case '-h':
    case '--help':
    case 'help':
      process.stdout.write(HELP);
      return command === undefined ? 2 : 0;
    case '--version':
    case '-V': {
      const { default: pkg } = await import('../package.json', { with: { type: 'json' } });
      process.stdout.write(`tsvmm ${pkg.version}\n`);
      return 0;
    }
    case 'run':
      return runCommand(args);
    case 'image':
      return imageCommand(args);
    default:
      throw new UsageError(`unknown command "${command}"; the commands are run and image build (see tsvmm --help)`);
  }
}

main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (e: unknown) => {
    if (isExitCodeError(e)) {
      process.stderr.write(`tsvmm: ${e.message}\n`);
      process.exitCode = e.exitCode;
    } else {
      // A bug in tsvmm, not the user's doing: the message, and the stack only for whoever debugs it.
      const debug = process.env.TSVMM_DEBUG && e instanceof Error && e.stack;
      process.stderr.write(`tsvmm: internal error: ${e instanceof Error ? e.message : String(e)}${debug ? `\n${e.stack}` : ' (TSVMM_DEBUG=1 shows where)'}\n`);
      process.exitCode = 1;
    }
  },
);
