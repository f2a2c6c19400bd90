// The build host: running tools with their output in a log file, and the Debian packages the
// image build needs (installed when root, otherwise named in an exact command to run).

import { execFile, spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync, writeSync } from 'node:fs';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

export class ImageBuildError extends Error {
  /** 2: the host lacks something the user must provide; 1: a build step failed. */
  readonly exitCode: number;
  readonly logPath: string | undefined;
  constructor(message: string, options: { exitCode?: number; logPath?: string } = {}) {
    super(message);
    this.name = 'ImageBuildError';
    this.exitCode = options.exitCode ?? 1;
    this.logPath = options.logPath;
  }
}

export function logTail(path: string, lines = 40): string {
  try {
    const text = readFileSync(path, 'utf8').trimEnd().split('\n');
    return text.slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

export interface RunOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Append stdout and stderr to this file. */
  log: string;
  /** Write stdout to this file instead (truncating it); stderr still goes to the log. */
  stdout?: string;
}

/** Run a command to completion with no stdin and its output in the log; reject with the log tail. */
export async function run(cmd: string, args: readonly string[], options: RunOptions): Promise<void> {
  const fd = openSync(options.log, 'a');
  const out = options.stdout === undefined ? fd : openSync(options.stdout, 'w');
  try {
    const line = `\n$ ${[cmd, ...args].join(' ')}${options.cwd ? `   (in ${options.cwd})` : ''}\n`;
    writeSync(fd, line);
    const code = await new Promise<number | string>((resolve, reject) => {
      const child = spawn(cmd, args, {
        cwd: options.cwd, env: options.env ?? process.env, stdio: ['ignore', out, fd],
      });
      child.on('error', reject);
      child.on('close', (status, signal) => resolve(signal ?? status ?? -1));
    }).catch((e: NodeJS.ErrnoException) => {
      throw new ImageBuildError(`cannot run ${cmd}: ${e.message}`, { logPath: options.log });
    });
    if (code !== 0) {
      throw new ImageBuildError(
        `${cmd} ${args.join(' ')} failed (${typeof code === 'string' ? `signal ${code}` : `exit ${code}`}).\n` +
        `Last lines of ${options.log}:\n${logTail(options.log)}`,
        { logPath: options.log });
    }
  } finally {
    if (out !== fd) closeSync(out);
    closeSync(fd);
  }
}

/** Run a command and return its stdout (for small queries: dpkg-query, busybox --list-full). */
export async function output(cmd: string, args: readonly string[]): Promise<string> {
  const { stdout } = await execFileP(cmd, args, { maxBuffer: 16 * 1024 * 1024 });
  return stdout;
}
