// Assembles test programs with GNU as (binutils) into flat binaries at a fixed address.
// GNU as is part of the build toolchain the CI installs (build-essential) for the KVM addon.

import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Assemble AT&T-syntax 32-bit `source` linked at `org`; returns the flat image. */
export function assemble(source: string, org: number, bits: 32 | 64 = 32): Uint8Array {
  const dir = mkdtempSync(join(tmpdir(), 'tsvmm-asm-'));
  try {
    writeFileSync(join(dir, 'a.s'), `.code${bits}\n.text\n.globl _start\n_start:\n${source}\n`);
    execFileSync('as', [bits === 64 ? '--64' : '--32', '-o', join(dir, 'a.o'), join(dir, 'a.s')], { stdio: ['ignore', 'ignore', 'pipe'] });
    execFileSync('ld', ['-m', bits === 64 ? 'elf_x86_64' : 'elf_i386', '-Ttext', `0x${org.toString(16)}`, '--oformat', 'binary', '-o', join(dir, 'a.bin'), join(dir, 'a.o')],
      { stdio: ['ignore', 'ignore', 'pipe'] });
    return new Uint8Array(readFileSync(join(dir, 'a.bin')));
  } catch (e) {
    const err = e as { stderr?: Buffer };
    throw new Error(`assembling test program failed: ${err.stderr?.toString() ?? String(e)}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Whether GNU as/ld are available (tests print a skip reason otherwise). */
export function haveAssembler(): boolean {
  try { execFileSync('as', ['--version'], { stdio: 'ignore' }); return true; } catch { return false; }
}
