// Where the guest comes from: the user's --kernel/--initrd files, or tsvmm's own guest images
// (built on demand, cached). Files are read here on the main thread and handed to the vCPU worker.
import { readFile } from 'node:fs/promises';
import type { BackendDescriptor } from '../hypervisors/backend.ts';
import { BACKENDS } from '../hypervisors/backends.ts';
import { ensureImages, type ImageArch } from '../firmware/images/build.ts';
import { UsageError } from './errors.ts';
import { formatSize } from './size.ts';


export interface GuestSource {
  kernel: Uint8Array;
  initrd: Uint8Array | undefined;
  description: string;
}

export interface GuestRequest {
  kernel?: string;
  initrd?: string;
  image?: ImageArch;
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

/** tsvmm's own guest for this backend (its descriptor's GuestFit), built on first use. */
export async function builtInGuest(request: GuestRequest, backend: BackendDescriptor): Promise<GuestSource> {
  const fit = backend.guest;
  const arch = request.image ?? fit.archs[0]!;
  if (!fit.archs.includes(arch)) {
    const others = BACKENDS.filter((b) => b.guest.archs.includes(arch)).map((b) => `, or --backend ${b.name}${b.guest.needs ? ` ${b.guest.needs}` : ''}`);
    throw new UsageError(`--image ${arch}: the ${backend.title} backend runs ${fit.cpu} guests; use --image ${fit.archs.join(' or ')}${others.join('')}`);
  }
  const images = (await ensureImages({ archs: [arch], onProgress: (line) => process.stderr.write(`tsvmm: ${line}\n`) }))[arch];
  const kernelPath = fit.kernel === 'vmlinux' ? images.vmlinux : images.bzImage;
  const initrdPath = request.initrd ?? (fit.initrd === 'raw' ? images.initramfs : images.initramfsGz);
  return {
    kernel: await readInput(kernelPath, 'kernel image'),
    initrd: await readInput(initrdPath, request.initrd ? '--initrd' : 'initramfs image'),
    description: `tsvmm ${arch} image: ${kernelPath} + ${initrdPath}`,
  };
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
