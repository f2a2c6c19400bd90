// The whole path: `tsvmm run --web` boots the default guest, prints the console URL, and
// chromium gets a working terminal on the guest's shell. Runs when the CLI has --web (the
// integration of web/ into vmm/); until then it is skipped with the reason printed, and
// browser.test.ts covers the same behaviours against a host shell. Once --web exists this test
// does not skip on a slow boot: a guest that never prompts is a failure. Boot can take minutes
// under the interpreter: TSVMM_WEB_E2E_BOOT_MS (default 20 min) bounds the wait for the prompt,
// TSVMM_WEB_E2E_ARGS adds run options (e.g. "--backend interp").
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import type { Browser } from 'playwright-core';
import { afterAll, expect, test } from 'vitest';
import { browserMissing, launchChromium, openConsole, screen, typeLine, waitForLine } from './support/browser.ts';

const root = new URL('../../', import.meta.url).pathname;
const BOOT_MS = Number(process.env.TSVMM_WEB_E2E_BOOT_MS ?? 20 * 60_000);
/** The lines `tsvmm run --web` must print on stdout (see docs/web-console.md). */
const URL_LINE = /^tsvmm: web console at (http:\/\/\S+)$/m;
const READ_ONLY_LINE = /^tsvmm: read-only web console at (http:\/\/\S+)$/m;
/**
 * A shell prompt row: a bare '#' or '$' (BusyBox ash, dash), or one after a user@host:dir part
 * (bash) — not merely any boot message that happens to end in one of those characters.
 */
const PROMPT = /^(\S*[\w~\])]\s?)?[#$]$/;

function whySkip(): string | undefined {
  const help = spawnSync(process.execPath, ['bin/tsvmm.js', 'run', '--help'], { cwd: root, encoding: 'utf8', timeout: 60_000 });
  if (!`${help.stdout}${help.stderr}`.includes('--web')) return '`tsvmm run --help` does not offer --web yet (web console not wired into the CLI)';
  return browserMissing();
}

const skip = whySkip();
if (skip) console.warn(`vm-e2e web console test skipped: ${skip}`);

let vmm: ChildProcess | undefined;
let browser: Browser | undefined;
afterAll(async () => {
  await browser?.close();
  if (vmm && vmm.exitCode === null && vmm.signalCode === null) {
    const gone = new Promise((r) => vmm!.once('exit', r));
    vmm.kill('SIGTERM');
    await gone;
  }
});

function startVmm(): Promise<{ url: string; readOnlyUrl: string; output: () => string }> {
  const extra = (process.env.TSVMM_WEB_E2E_ARGS ?? '').split(/\s+/).filter(Boolean);
  const child = spawn(process.execPath, ['bin/tsvmm.js', 'run', '--web', '127.0.0.1:0', '--no-stdio', ...extra], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  vmm = child;
  let out = '';
  let err = '';
  return new Promise((resolve, reject) => {
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      const full = URL_LINE.exec(out);
      const readOnly = READ_ONLY_LINE.exec(out);
      if (full && readOnly) resolve({ url: full[1]!, readOnlyUrl: readOnly[1]!, output: () => out + err });
    });
    child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
    child.once('exit', (code, signal) => reject(new Error(`tsvmm exited (${code ?? signal}) before printing both "tsvmm: web console at URL" and "tsvmm: read-only web console at URL".\nstdout:\n${out}\nstderr:\n${err}`)));
  });
}

const open = (url: string) => openConsole(browser!, url);
const type = typeLine;

test.skipIf(skip !== undefined)(
  'tsvmm run --web gives a working terminal on the guest in chromium',
  async () => {
    const vm = await startVmm();
    browser = await launchChromium();
    const page = await open(vm.url);
    expect(await page.textContent('#vm')).toMatch(/^VM (starting|running) · /);
    // Booting may need a keypress to show the prompt on some guests; Enter is harmless.
    await page.keyboard.press('Enter').catch(() => {});
    await waitForLine(page, PROMPT, BOOT_MS).catch((e: unknown) => {
      throw new Error(`no shell prompt within ${BOOT_MS} ms: ${String(e)}\nscreen tail and tsvmm output:\n${vm.output().slice(-4000)}`);
    });
    await type(page, 'echo web-$((40+2))');
    mkdirSync(new URL('../artifacts/', import.meta.url), { recursive: true });
    await waitForLine(page, 'web-42', 120_000).catch(async (e: unknown) => {
      await page.screenshot({ path: new URL('../artifacts/vm-web-console-failed.png', import.meta.url).pathname });
      throw new Error(`no web-42 line: ${String(e)}\nscreen:\n${(await screen(page)).join('\n')}`);
    });
    await page.screenshot({ path: new URL('../artifacts/vm-web-console.png', import.meta.url).pathname });

    const second = await open(vm.url);
    await waitForLine(second, 'web-42'); // scrollback

    const refused = await browser.newPage();
    expect((await refused.goto(vm.url.replace(/\?.*/, '')))?.status()).toBe(401);

    const ro = await open(vm.readOnlyUrl);
    await type(ro, 'echo ro-$((1+1))');
    await type(page, 'echo after-$((3+4))');
    await waitForLine(ro, 'after-7', 120_000);
    expect((await screen(ro)).join('\n')).not.toContain('ro-2');

    page.on('dialog', (d) => void d.accept());
    const exited = new Promise<number | null>((r) => vmm!.once('exit', (code) => r(code)));
    await page.click('#poweroff');
    await page.waitForSelector('#vm[data-state="stopped"]', { timeout: 120_000 }).catch(() => {}); // the VMM may exit first
    expect(await exited).toBe(0);
  },
  BOOT_MS + 10 * 60_000,
);
