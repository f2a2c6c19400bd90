// Where the guest comes from: the user's --kernel/--initrd files, or tsvmm's own guest images
// (built on demand, cached). Files are read here on the main thread and handed to the vCPU worker.
import { readFile } from 'node:fs/promises';
import type { BackendName } from '../hypervisors/backend.ts';
import { ensureImages } from '../firmware/images/build.ts';
import { LINUX_KERNEL_ARGS as INTERP_KERNEL_ARGS } from '../hypervisors/interp/platform.ts';
import { UsageError } from './errors.ts';
import { formatSize } from './size.ts';

export type GuestArch = 'x86_64' | 'i386';
export const GUEST_ARCHES: readonly GuestArch[] = ['x86_64', 'i386'];

export interface GuestSource {
  kernel: Uint8Array;
  initrd: Uint8Array | undefined;
  description: string;
}

export interface GuestRequest {
  kernel?: string;
  initrd?: string;
  image?: GuestArch;
}

/** The user's own kernel (and initrd), when --kernel names one. */
export async function userGuest(request: GuestRequest): Promise<GuestSource | undefined> {
  if (request.kernel === undefined) return undefined;
  const kernel = await readInput(request.kernel, '--kernel');
  const initrd = request.initrd === undefined ? undefined : await readInput(request.initrd, '--initrd');
  return {
    kernel,
    initrd,
    description: `${request.kernel} (${formatSize(kernel.length)})` + (initrd ? ` with initrd ${request.initrd}` : ''),
  };
}

/** tsvmm's own guest for this backend, built on first use. */
export async function builtInGuest(request: GuestRequest, backend: BackendName): Promise<GuestSource> {
  const arch = request.image ?? (backend === 'kvm' ? 'x86_64' : 'i386');
  if (backend === 'interp' && arch !== 'i386') {
    throw new UsageError(`--image ${arch}: the interpreter backend runs 32-bit x86 guests; use --image i386, or --backend kvm on a host with hardware virtualization`);
  }
  const images = (await ensureImages({ archs: [arch], onProgress: (line) => process.stderr.write(`tsvmm: ${line}\n`) }))[arch];
  // The interpreter boots the uncompressed vmlinux with a raw cpio: no decompressor to
  // interpret (see docs/performance.md). KVM boots the bzImage through the boot protocol.
  const kernelPath = backend === 'interp' ? images.vmlinux : images.bzImage;
  const initrdPath = request.initrd ?? (backend === 'interp' ? images.initramfs : images.initramfsGz);
  return {
    kernel: await readInput(kernelPath, 'kernel image'),
    initrd: await readInput(initrdPath, request.initrd ? '--initrd' : 'initramfs image'),
    description: `tsvmm ${arch} image: ${kernelPath} + ${initrdPath}`,
  };
}

/**
 * Kernel command-line words a backend's platform needs, added after the base command line and
 * before the user's --append words (so those can override them). The one place for such words.
 */
export function backendKernelArgs(backend: BackendName): readonly string[] {
  return backend === 'interp' ? INTERP_KERNEL_ARGS : [];
}

async function readInput(path: string, what: string): Promise<Uint8Array> {
  try {
    return new Uint8Array(await readFile(path));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new UsageError(`${what} ${path}: no such file; check the path`);
    if (code === 'EISDIR') throw new UsageError(`${what} ${path}: is a directory; name the file inside it`);
    if (code === 'EACCES') throw new UsageError(`${what} ${path}: permission denied; make it readable for this user`);
    throw new UsageError(`${what} ${path}: cannot read it (${(e as Error).message})`);
  }
}
