// The guest image recipe as data: where its files are, what each architecture needs, and the
// hash that names a build of it in the cache. Changing any recipe file (or BUILDER_VERSION,
// for changes in how build.ts turns the recipe into images) yields a new hash, hence a rebuild.

import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export type ImageArch = 'x86_64' | 'i386';
export const IMAGE_ARCHS: readonly ImageArch[] = ['x86_64', 'i386'];

/** What /init prints on the console when the guest is ready for commands. */
export const READY_MARKER = 'TSVMM-READY';
/** What /init prints after a `tsvmm_run=<command>` command, followed by its exit status. */
export const EXIT_MARKER = 'TSVMM-EXIT';
/** The shell prompt /init sets (PS1). */
export const GUEST_PROMPT = '# ';

/** Bump when build.ts changes what it produces from the same recipe files. */
export const BUILDER_VERSION = 3;
/** Bump when build.ts changes how it builds kernels (this alone decides whether kernels are rebuilt). */
export const KERNEL_BUILDER_VERSION = 1;

export const RECIPE_DIR = fileURLToPath(new URL('./recipe/', import.meta.url));

export interface ArchRecipe {
  /** The kernel's ARCH= value. */
  kernelArch: string;
  /** Debian architecture of the busybox-static package. */
  debianArch: string;
  /** Config fragments merged onto tinyconfig, in order. */
  fragments: readonly string[];
}

export const ARCH_RECIPES: Record<ImageArch, ArchRecipe> = {
  x86_64: { kernelArch: 'x86_64', debianArch: 'amd64', fragments: ['common.config', 'x86_64.config'] },
  i386: { kernelArch: 'i386', debianArch: 'i386', fragments: ['common.config', 'i386.config'] },
};

export function recipePath(name: string): string {
  return RECIPE_DIR + name;
}

/**
 * The identity of one architecture's kernel: builder version and its config fragments. A recipe
 * change that leaves it alone (the initramfs, say) reuses the kernel already built.
 */
export function kernelRecipeHash(arch: ImageArch, recipeDir = RECIPE_DIR): string {
  const h = createHash('sha256').update(`tsvmm-kernel builder ${KERNEL_BUILDER_VERSION} ${arch}\n`);
  for (const name of ARCH_RECIPES[arch].fragments) {
    h.update(`${name}\0`).update(readFileSync(recipeDir + name)).update('\0');
  }
  return h.digest('hex').slice(0, 16);
}

/** The recipe's identity: 16 hex digits of SHA-256 over the builder version and every recipe file. */
export function recipeHash(recipeDir = RECIPE_DIR): string {
  const h = createHash('sha256').update(`tsvmm-images builder ${BUILDER_VERSION}\n`);
  for (const name of readdirSync(recipeDir).sort()) {
    h.update(`${name}\0`).update(readFileSync(recipeDir + name)).update('\0');
  }
  return h.digest('hex').slice(0, 16);
}
