// Where built images live: outside the repository, keyed by the recipe hash, so a checkout
// switch or a fresh clone reuses them and a recipe change never serves stale images.
//
//   ${TSVMM_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/tsvmm}/
//     images/<recipe hash>/<arch>/    bzImage vmlinux initramfs.cpio initramfs.cpio.gz config manifest.json
//     images/<recipe hash>/logs/      one log per build stage
//     src/linux-source-<ver>/         the unpacked kernel source, shared by every build
//     work/<recipe hash>/             build trees (removed after a successful build)

import { closeSync, existsSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { recipeHash, type ImageArch } from './recipe.ts';

export function cacheRoot(): string {
  const explicit = process.env.TSVMM_CACHE_DIR;
  if (explicit) return explicit;
  const xdg = process.env.XDG_CACHE_HOME;
  return join(xdg && xdg.startsWith('/') ? xdg : join(homedir(), '.cache'), 'tsvmm');
}

export interface ImagePaths {
  arch: ImageArch;
  dir: string;
  /** Compressed kernel for the x86 boot protocol. */
  bzImage: string;
  /** Uncompressed ELF kernel with the PVH entry note (fast interpreted boots). */
  vmlinux: string;
  /** The initramfs, gzip-compressed (the usual form). */
  initramfsGz: string;
  /** The same initramfs uncompressed: no gunzip in the guest (fastest interpreted boot). */
  initramfs: string;
  /** The kernel .config that was built. */
  config: string;
  /** Written last: its presence means the images are complete. */
  manifest: string;
  /** Whether a complete build exists for the current recipe. */
  built: boolean;
}

export function buildDir(hash = recipeHash()): string {
  return join(cacheRoot(), 'images', hash);
}

export function imagePaths(arch: ImageArch, hash = recipeHash()): ImagePaths {
  const dir = join(buildDir(hash), arch);
  const manifest = join(dir, 'manifest.json');
  return {
    arch, dir, manifest,
    bzImage: join(dir, 'bzImage'),
    vmlinux: join(dir, 'vmlinux'),
    initramfsGz: join(dir, 'initramfs.cpio.gz'),
    initramfs: join(dir, 'initramfs.cpio'),
    config: join(dir, 'config'),
    built: existsSync(manifest),
  };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Try to take the build lock (an O_EXCL file holding our pid). A lock left by a dead process
 * is taken over. Returns a release function, or the pid of the live holder.
 */
export function tryLock(path: string): { release: () => void } | { holder: number } {
  for (;;) {
    try {
      const fd = openSync(path, 'wx');
      writeSync(fd, String(process.pid));
      closeSync(fd);
      return { release: () => rmSync(path, { force: true }) };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    let text: string;
    try { text = readFileSync(path, 'utf8'); } catch { continue; /* released meanwhile: retry */ }
    // Empty: another process has just created it and is about to write its pid.
    if (text === '') return { holder: 0 };
    const holder = Number(text);
    if (Number.isInteger(holder) && holder > 0 && alive(holder)) return { holder };
    rmSync(path, { force: true });
  }
}
