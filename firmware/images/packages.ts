// The Debian packages an image build needs. As root they are installed (apt-get update once,
// then a non-interactive install); otherwise the error names the exact command to run.
// busybox-static comes as downloaded .deb files rather than an install: the amd64 and i386
// packages conflict with each other (same /bin/busybox), and the build only needs the binaries.

import { execFile } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ImageBuildError, run } from './host.ts';

const execFileP = promisify(execFile);

/** Tools and sources for building the kernels and initramfs images. */
export const BUILD_PACKAGES: readonly string[] = [
  'linux-source', 'build-essential', 'bc', 'flex', 'bison', 'libelf-dev', 'libssl-dev', 'cpio', 'xz-utils',
];
export const BUSYBOX_PACKAGE = 'busybox-static';

const APT_ENV = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
/** Wait for another apt/dpkg instead of failing at once on its lock. */
const APT_LOCK_WAIT = ['-o', 'DPkg::Lock::Timeout=600'];

export function isRoot(): boolean {
  return process.getuid?.() === 0;
}

/** Which of `packages` dpkg does not report as installed. */
export async function missingPackages(packages: readonly string[]): Promise<string[]> {
  let stdout: string;
  try {
    ({ stdout } = await execFileP('dpkg-query', ['-W', '-f=${Package} ${db:Status-Status}\n', ...packages]));
  } catch (e) {
    // Exit status 1 when some package is unknown; stdout still lists the known ones.
    const err = e as NodeJS.ErrnoException & { stdout?: string };
    if (err.code === 'ENOENT') {
      throw new ImageBuildError('dpkg-query not found: building guest images needs a Debian or Ubuntu host ' +
        '(or build the kernels yourself and pass them with --kernel/--initrd)', { exitCode: 2 });
    }
    stdout = err.stdout ?? '';
  }
  const installed = new Set(stdout.split('\n').filter((l) => l.endsWith(' installed')).map((l) => l.split(' ')[0]));
  return packages.filter((p) => !installed.has(p));
}

async function foreignArchitectures(): Promise<string[]> {
  const { stdout } = await execFileP('dpkg', ['--print-foreign-architectures']);
  return stdout.split('\n').filter(Boolean);
}

export interface HostSetup {
  log: string;
  /** Debian architectures whose busybox-static is needed (amd64, i386). */
  debianArchs: readonly string[];
  info(message: string): void;
}

/** Make sure the build packages are installed and the busybox architectures are known to dpkg. */
export async function ensurePackages(setup: HostSetup, packages: readonly string[] = BUILD_PACKAGES): Promise<{ updated: boolean }> {
  const missing = await missingPackages(packages);
  const native = (await execFileP('dpkg', ['--print-architecture'])).stdout.trim();
  const foreign = setup.debianArchs.filter((a) => a !== native);
  const known = await foreignArchitectures();
  const addArchs = foreign.filter((a) => !known.includes(a));
  if (missing.length === 0 && addArchs.length === 0) return { updated: false };

  if (!isRoot()) {
    const cmds = [
      ...addArchs.map((a) => `sudo dpkg --add-architecture ${a}`),
      'sudo apt-get update',
      ...(missing.length ? [`sudo DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${missing.join(' ')}`] : []),
    ];
    throw new ImageBuildError(
      `building guest images needs ${[
        ...(missing.length ? [`the Debian packages ${missing.join(', ')}`] : []),
        ...addArchs.map((a) => `the ${a} architecture enabled in dpkg (for ${BUSYBOX_PACKAGE}:${a})`),
      ].join(' and ')}.\nRun as root, then try again:\n  ${cmds.join(' && \\\n  ')}`,
      { exitCode: 2 });
  }
  for (const a of addArchs) {
    setup.info(`enabling the ${a} architecture in dpkg`);
    await run('dpkg', ['--add-architecture', a], { log: setup.log });
  }
  await aptUpdate(setup);
  if (missing.length) {
    setup.info(`installing ${missing.join(' ')}`);
    await run('apt-get', [...APT_LOCK_WAIT, 'install', '-y', '--no-install-recommends', ...missing],
      { log: setup.log, env: APT_ENV });
  }
  return { updated: true };
}

/**
 * apt-get update, tolerating partial failure: a mirror caught mid-sync (a real event on CI)
 * fails one index while the rest are fine, and the install may still succeed from them.
 */
export async function aptUpdate(setup: HostSetup): Promise<void> {
  try {
    await run('apt-get', [...APT_LOCK_WAIT, 'update'], { log: setup.log, env: APT_ENV });
  } catch (e) {
    if (!(e instanceof ImageBuildError)) throw e;
    setup.info(`apt-get update reported errors (continuing with the package lists it has; see ${setup.log})`);
  }
}

/** Download busybox-static for each architecture into `dir`; returns arch → .deb path. */
export async function downloadBusybox(setup: HostSetup & { dir: string; updated: boolean }): Promise<Map<string, string>> {
  const names = setup.debianArchs.map((a) => `${BUSYBOX_PACKAGE}:${a}`);
  const fetch = (): Promise<void> => run('apt-get', ['download', ...names], { log: setup.log, cwd: setup.dir, env: APT_ENV });
  try {
    await fetch();
  } catch (e) {
    // Fresh machines (CI containers) often have no package lists yet.
    if (!(e instanceof ImageBuildError) || setup.updated || !isRoot()) {
      throw new ImageBuildError(`${(e as Error).message}\nCould not download ${names.join(' ')}` +
        (isRoot() ? '' : ': run `sudo apt-get update` and try again'), { exitCode: 2, logPath: setup.log });
    }
    await aptUpdate(setup);
    await fetch();
  }
  const debs = new Map<string, string>();
  for (const arch of setup.debianArchs) {
    const deb = readdirSync(setup.dir).find((f) => f.startsWith(`${BUSYBOX_PACKAGE}_`) && f.endsWith(`_${arch}.deb`));
    if (!deb) throw new ImageBuildError(`apt-get download did not produce ${BUSYBOX_PACKAGE} for ${arch} (see ${setup.log})`);
    debs.set(arch, join(setup.dir, deb));
  }
  return debs;
}
