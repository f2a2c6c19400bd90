// `tsvmm image build`: the guest kernels and initramfs images, built from the recipe in
// ./recipe with Debian's linux-source and busybox-static, cached outside the repository
// (see cache.ts). Stages, for each missing architecture:
//   packages   install (as root) or name the Debian packages the build needs
//   busybox    download busybox-static for amd64/i386 and unpack the binaries
//   source     unpack /usr/src/linux-source-*.tar.xz once into the cache
//   configure  tinyconfig + recipe fragments + olddefconfig; every fragment line must land
//   kernel     make bzImage (which also links vmlinux: the uncompressed, PVH-bootable ELF)
//   initramfs  gen_init_cpio (from the kernel tree, no root needed) + gzip -n: byte-identical rebuilds
// Each stage logs to images/<hash>/logs/; a failure reports the log tail.

import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { basename, join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { buildDir, cacheRoot, imagePaths, tryLock, type ImagePaths } from './cache.ts';
import { checkConfig, describeMismatches, parseConfig, type ConfigWish } from './config-check.ts';
import { ImageBuildError, output, run } from './host.ts';
import { downloadBusybox, ensurePackages } from './packages.ts';
import { progressLine, progressPrinter, type BuildProgress } from './progress.ts';
import { ARCH_RECIPES, BUILDER_VERSION, IMAGE_ARCHS, kernelRecipeHash, recipeHash, recipePath, type ImageArch } from './recipe.ts';

export { imagePaths, cacheRoot, type ImagePaths } from './cache.ts';
export { ImageBuildError } from './host.ts';
export { progressLine, progressPrinter, type BuildProgress } from './progress.ts';
export { IMAGE_ARCHS, READY_MARKER, EXIT_MARKER, GUEST_PROMPT, recipeHash, type ImageArch } from './recipe.ts';

export interface BuildOptions {
  /** Architectures to build; both by default. */
  archs?: readonly ImageArch[];
  /**
   * Progress: a plain line ("i386: done: building the kernel (2m10s)") and the event it
   * describes. By default printed to stderr (live elapsed time on a terminal, plain lines otherwise).
   */
  onProgress?: (line: string, event: BuildProgress) => void;
  /** Rebuild even when images for the current recipe exist. */
  force?: boolean;
  /** make -j; all CPUs by default. */
  jobs?: number;
}

/** Applets that must act at once instead of signalling PID 1 (see recipe/power). */
const POWER_APPLETS = new Set(['sbin/poweroff', 'sbin/reboot', 'sbin/halt']);

export type ImageSet = Record<ImageArch, ImagePaths>;

function allPaths(hash: string): ImageSet {
  return { x86_64: imagePaths('x86_64', hash), i386: imagePaths('i386', hash) };
}

/**
 * Build the images of `archs` (both by default) that the current recipe lacks, or all of them
 * with `force`. Resolves to the paths of every architecture (`built` says which exist).
 */
export async function buildImages(options: BuildOptions = {}): Promise<ImageSet> {
  const archs = options.archs ?? IMAGE_ARCHS;
  const custom = options.onProgress;
  const report: (p: BuildProgress) => void = custom ? (p) => custom(progressLine(p), p) : progressPrinter();
  const t0 = Date.now();
  const hash = recipeHash();
  const root = buildDir(hash);
  const pending = (): ImageArch[] => archs.filter((a) => options.force || !imagePaths(a, hash).built);
  const info = (message: string, arch?: ImageArch): void =>
    report({ ...(arch ? { arch } : {}), stage: 'info', state: 'info', message, stageMs: 0, totalMs: Date.now() - t0 });

  if (pending().length === 0) return allPaths(hash);
  mkdirSync(join(root, 'logs'), { recursive: true });

  const release = await lock(join(root, '.lock'), info);
  try {
    // Another tsvmm may have built them while we waited for the lock.
    const todo = pending();
    if (todo.length === 0) return allPaths(hash);
    info(`building ${todo.join(' and ')} guest images (recipe ${hash}) in ${root}`);

    const stage = async <T>(arch: ImageArch | undefined, name: string, message: string, fn: (log: string) => Promise<T>): Promise<T> => {
      const log = join(root, 'logs', `${arch ? `${arch}-` : ''}${name}.log`);
      rmSync(log, { force: true });
      const s0 = Date.now();
      const event = (state: BuildProgress['state'], msg: string): void =>
        report({ ...(arch ? { arch } : {}), stage: name, state, message: msg, stageMs: Date.now() - s0, totalMs: Date.now() - t0 });
      event('start', message);
      try {
        const result = await fn(log);
        event('done', message);
        return result;
      } catch (e) {
        event('fail', `${message} (log: ${log})`);
        throw e;
      }
    };

    const work = join(cacheRoot(), 'work', hash);
    rmSync(work, { recursive: true, force: true });
    mkdirSync(work, { recursive: true });
    const debianArchs = [...new Set(todo.map((a) => ARCH_RECIPES[a].debianArch))];

    const { updated } = await stage(undefined, 'packages', 'checking build packages',
      (log) => ensurePackages({ log, debianArchs, info }));
    const busybox = await stage(undefined, 'busybox', `getting busybox-static for ${debianArchs.join(', ')}`, async (log) => {
      const dir = join(work, 'debs');
      mkdirSync(dir);
      const debs = await downloadBusybox({ log, debianArchs, info, dir, updated });
      const binaries = new Map<string, { binary: string; deb: string }>();
      for (const [arch, deb] of debs) {
        const into = join(work, `busybox-${arch}`);
        await run('dpkg-deb', ['-x', deb, into], { log });
        binaries.set(arch, { binary: join(into, 'bin', 'busybox'), deb: basename(deb) });
      }
      return binaries;
    });
    const source = await stage(undefined, 'source', 'unpacking linux-source', (log) => unpackSource(log));
    const genInitCpio = join(work, 'gen_init_cpio');
    await stage(undefined, 'gen_init_cpio', 'compiling usr/gen_init_cpio', (log) =>
      run('cc', ['-O2', '-o', genInitCpio, join(source.dir, 'usr', 'gen_init_cpio.c')], { log }));

    const jobs = options.jobs ?? availableParallelism();
    for (const arch of todo) {
      const recipe = ARCH_RECIPES[arch];
      const a0 = Date.now();
      const kbuild = join(work, `kbuild-${arch}`);
      const make = (log: string, ...targets: string[]): Promise<void> =>
        run('make', ['-C', source.dir, `O=${kbuild}`, `ARCH=${recipe.kernelArch}`, ...targets], { log, env: kernelEnv() });

      const kernelHash = kernelRecipeHash(arch);
      const previous = options.force ? undefined : findBuiltKernel(arch, kernelHash);
      if (previous) {
        info(`reusing the kernel built from the same config fragments in ${previous}`, arch);
      } else {
        await stage(arch, 'configure', 'configuring the kernel (tinyconfig + recipe fragments)', async (log) => {
          await make(log, 'tinyconfig');
          await run(join(source.dir, 'scripts', 'kconfig', 'merge_config.sh'),
            ['-m', '-O', kbuild, join(kbuild, '.config'), ...recipe.fragments.map(recipePath)], { log, cwd: source.dir });
          await make(log, 'olddefconfig');
          verifyFragments(recipe.fragments, readFileSync(join(kbuild, '.config'), 'utf8'), arch);
        });
        await stage(arch, 'kernel', `building the kernel (make -j${jobs} bzImage vmlinux)`, (log) =>
          make(log, `-j${jobs}`, 'bzImage', 'vmlinux'));
      }

      const bb = busybox.get(recipe.debianArch)!;
      const out = join(root, `${arch}.partial`);
      rmSync(out, { recursive: true, force: true });
      mkdirSync(out);
      await stage(arch, 'initramfs', 'building the busybox initramfs', async (log) => {
        const applets = await appletList(bb.binary, busybox.get('amd64')?.binary, log);
        const files = stageRootFiles(join(work, `rootfs-${arch}`), bb.binary);
        writeFileSync(join(out, 'initramfs.list'), initramfsList(files, applets));
        await run(genInitCpio, ['-t', '0', join(out, 'initramfs.list')], { log, stdout: join(out, 'initramfs.cpio') });
        await run('gzip', ['-n', '-9', '-c', join(out, 'initramfs.cpio')], { log, stdout: join(out, 'initramfs.cpio.gz') });
      });

      const [bzImage, vmlinux, config] = previous
        ? [join(previous, 'bzImage'), join(previous, 'vmlinux'), join(previous, 'config')]
        : [join(kbuild, 'arch', 'x86', 'boot', 'bzImage'), join(kbuild, 'vmlinux'), join(kbuild, '.config')];
      copyFileSync(bzImage, join(out, 'bzImage'));
      copyFileSync(vmlinux, join(out, 'vmlinux'));
      copyFileSync(config, join(out, 'config'));
      writeManifest(out, { arch, hash, kernelHash, linuxSource: source.name, busybox: bb.deb, buildMs: Date.now() - a0 });
      const final = imagePaths(arch, hash).dir;
      rmSync(final, { recursive: true, force: true });
      renameSync(out, final);
      rmSync(kbuild, { recursive: true, force: true });
      info(`images ready in ${final}`, arch);
    }
    rmSync(work, { recursive: true, force: true });
    return allPaths(hash);
  } finally {
    release();
  }
}

/** The images for `archs`, building whichever the current recipe lacks (what `tsvmm run` calls). */
export function ensureImages(options: BuildOptions = {}): Promise<ImageSet> {
  return buildImages(options);
}

async function lock(path: string, info: (m: string) => void): Promise<() => void> {
  let announced = false;
  for (;;) {
    const got = tryLock(path);
    if ('release' in got) return got.release;
    if (!announced) info(`waiting for another image build (pid ${got.holder || '?'}) to finish`);
    announced = true;
    // Polling a lock file: there is no portable way to be woken when another process drops it.
    await delay(1000);
  }
}

/** Reproducible kernel builds: fixed identity and time, no make flags inherited from a caller. */
function kernelEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    KBUILD_BUILD_TIMESTAMP: '1970-01-01 00:00:00 UTC',
    KBUILD_BUILD_USER: 'tsvmm',
    KBUILD_BUILD_HOST: 'tsvmm',
    KBUILD_BUILD_VERSION: '1',
    LC_ALL: 'C',
  };
  for (const k of ['MAKEFLAGS', 'MFLAGS', 'MAKELEVEL', 'MAKEOVERRIDES']) delete env[k];
  return env;
}

/** Throw, naming every fragment line the final .config lacks. */
export function verifyFragments(fragments: readonly string[], dotConfig: string, arch: string, read = (f: string) => readFileSync(recipePath(f), 'utf8')): void {
  // A later fragment overrides an earlier one for the same option, as in merge_config.sh.
  const wishes = new Map<string, ConfigWish>();
  for (const f of fragments) for (const w of parseConfig(read(f), f)) wishes.set(w.option, w);
  const missing = checkConfig([...wishes.values()], dotConfig);
  if (missing.length) {
    throw new ImageBuildError(
      `the ${arch} kernel config lacks ${missing.length} option(s) the recipe asks for ` +
      `(their dependencies are probably off; add those to the fragment too):\n${describeMismatches(missing)}`);
  }
}

/** The newest /usr/src/linux-source-*.tar.xz, unpacked once into the cache (re-unpacked if the tarball changes). */
async function unpackSource(log: string): Promise<{ dir: string; name: string }> {
  const tarballs = (existsSync('/usr/src') ? readdirSync('/usr/src') : []).filter((f) => /^linux-source-[\d.]+\.tar\.(xz|bz2|gz)$/.test(f))
    .sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
  const tarball = tarballs.at(-1);
  if (!tarball) {
    throw new ImageBuildError('no /usr/src/linux-source-*.tar.xz: install the linux-source package ' +
      '(apt-get install linux-source)', { exitCode: 2 });
  }
  const name = tarball.replace(/\.tar\.\w+$/, '');
  const srcRoot = join(cacheRoot(), 'src');
  const dir = join(srcRoot, name);
  const st = statSync(join('/usr/src', tarball));
  const stamp = `${tarball} ${st.size} ${st.mtimeMs}\n`;
  const stampFile = `${dir}.stamp`;
  if (existsSync(dir) && existsSync(stampFile) && readFileSync(stampFile, 'utf8') === stamp) return { dir, name };

  const partial = `${dir}.partial`;
  rmSync(partial, { recursive: true, force: true });
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(partial, { recursive: true });
  await run('tar', ['-xf', join('/usr/src', tarball), '-C', partial], { log });
  const top = readdirSync(partial);
  if (top.length !== 1) throw new ImageBuildError(`${tarball} did not unpack to a single directory (got ${top.join(', ')})`, { logPath: log });
  renameSync(join(partial, top[0]!), dir);
  rmSync(partial, { recursive: true, force: true });
  writeFileSync(stampFile, stamp);
  return { dir, name };
}

/** `busybox --list-full` (paths like usr/bin/awk), from the arch's own binary or else the amd64 one (same package version). */
async function appletList(binary: string, fallback: string | undefined, log: string): Promise<string[]> {
  let text: string;
  try {
    text = await output(binary, ['--list-full']);
  } catch (e) {
    if (!fallback) throw new ImageBuildError(`cannot run ${binary} --list-full: ${(e as Error).message}`, { logPath: log });
    text = await output(fallback, ['--list-full']);
  }
  const applets = text.split('\n').map((l) => l.trim()).filter(Boolean);
  if (!applets.includes('bin/sh')) throw new ImageBuildError(`${binary} has no sh applet`, { logPath: log });
  return applets;
}

interface RootFiles { init: string; profile: string; power: string; udhcpc: string; busybox: string }

/**
 * Copies of the files the initramfs takes from the host, with mtime 0: gen_init_cpio stores a
 * regular file's own mtime (its -t covers only directories, links and nodes), and a recipe file's
 * mtime is whenever git checked it out. So rebuilds anywhere give the same bytes.
 */
function stageRootFiles(dir: string, busybox: string): RootFiles {
  mkdirSync(dir, { recursive: true });
  const files: RootFiles = {
    init: join(dir, 'init'), profile: join(dir, 'profile'), power: join(dir, 'power'), udhcpc: join(dir, 'udhcpc.script'),
    busybox: join(dir, 'busybox'),
  };
  for (const name of ['init', 'profile', 'power'] as const) copyFileSync(recipePath(name), files[name]);
  copyFileSync(recipePath('udhcpc.script'), files.udhcpc);
  copyFileSync(busybox, files.busybox);
  for (const f of Object.values(files)) utimesSync(f, 0, 0);
  return files;
}

/** The gen_init_cpio list: the committed base list, /init, /etc/profile, the DHCP script, busybox and its applets. */
export function initramfsList(files: RootFiles, applets: readonly string[]): string {
  const lines = [readFileSync(recipePath('initramfs.list'), 'utf8').trimEnd()];
  const dirs = new Set(lines[0]!.split('\n').filter((l) => l.startsWith('dir ')).map((l) => l.split(/\s+/)[1]));
  lines.push(
    `file /init ${files.init} 0755 0 0`,
    `file /etc/profile ${files.profile} 0644 0 0`,
    `file /usr/share/udhcpc/default.script ${files.udhcpc} 0755 0 0`,
    `file /bin/busybox ${files.busybox} 0755 0 0`);
  for (const applet of applets) {
    const path = `/${applet}`;
    // Every parent directory must precede its entries in the archive.
    const parts = path.split('/').slice(1, -1);
    for (let i = 1; i <= parts.length; i++) {
      const d = `/${parts.slice(0, i).join('/')}`;
      if (!dirs.has(d)) { dirs.add(d); lines.push(`dir ${d} 0755 0 0`); }
    }
    if (path === '/bin/busybox') continue;
    lines.push(POWER_APPLETS.has(applet)
      ? `file ${path} ${files.power} 0755 0 0`
      : `slink ${path} /bin/busybox 0777 0 0`);
  }
  return `${lines.join('\n')}\n`;
}

/** A complete image directory of any recipe whose kernel came from the same fragments. */
function findBuiltKernel(arch: ImageArch, kernelHash: string): string | undefined {
  const images = join(cacheRoot(), 'images');
  if (!existsSync(images)) return undefined;
  for (const hash of readdirSync(images)) {
    const dir = join(images, hash, arch);
    try {
      const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as { kernelRecipe?: string };
      if (manifest.kernelRecipe === kernelHash && ['bzImage', 'vmlinux', 'config'].every((f) => existsSync(join(dir, f)))) return dir;
    } catch {
      // No manifest (incomplete or foreign directory): not a candidate.
    }
  }
  return undefined;
}

function writeManifest(dir: string, info: { arch: ImageArch; hash: string; kernelHash: string; linuxSource: string; busybox: string; buildMs: number }): void {
  const files: Record<string, { size: number; sha256: string }> = {};
  for (const f of ['bzImage', 'vmlinux', 'initramfs.cpio', 'initramfs.cpio.gz', 'config']) {
    const data = readFileSync(join(dir, f));
    files[f] = { size: data.length, sha256: createHash('sha256').update(data).digest('hex') };
  }
  const manifest = {
    arch: info.arch, recipe: info.hash, kernelRecipe: info.kernelHash, builderVersion: BUILDER_VERSION, linuxSource: info.linuxSource,
    busybox: info.busybox, buildSeconds: Math.round(info.buildMs / 1000), files,
  };
  writeFileSync(join(dir, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
}
