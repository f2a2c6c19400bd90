// The web console in a real browser (Debian's chromium) against a real interactive shell on the
// host behind a real ConsoleHub — the stand-in for a guest until the VMM boots one; the same
// scenario against the VMM itself is in vm-e2e.test.ts.
import { mkdirSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Browser, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { startWebConsole, type WebConsole } from '../../web/server.ts';
import { browserMissing, connectionState, launchChromium, openConsole, screen, typeLine, waitForLine } from './support/browser.ts';
import { HostShell, PROMPT } from './support/host-shell.ts';

const missing = browserMissing();
if (missing) console.warn(`browser tests skipped: ${missing}`);

const ARTIFACTS = new URL('../artifacts/', import.meta.url);

describe.skipIf(missing !== undefined)('web console in chromium', () => {
  let shell: HostShell;
  let web: WebConsole;
  let browser: Browser;
  const log: string[] = [];
  const pageErrors: string[] = [];

  beforeAll(async () => {
    shell = new HostShell();
    web = await startWebConsole({ hub: shell.hub, log: (l) => log.push(l) });
    browser = await launchChromium();
  });

  afterAll(async () => {
    await browser?.close();
    await web?.close();
    await shell?.close();
  });

  afterEach(() => {
    expect(pageErrors).toEqual([]); // no uncaught script errors on any page
  });

  const open = (url: string) => openConsole(browser, url, (e) => pageErrors.push(e));
  const type = typeLine;

  let first: Page;

  test('a page opened from the URL is a working terminal on the shell', async () => {
    first = await open(web.url);
    await waitForLine(first, PROMPT.trim());
    await type(first, 'echo web-$((40+2))');
    await waitForLine(first, 'web-42');
    expect(await screen(first)).toContain(`${PROMPT}echo web-$((40+2))`);
    expect(await first.textContent('#vm')).toBe('VM running · host-shell');
    mkdirSync(ARTIFACTS, { recursive: true });
    await first.screenshot({ path: new URL('web-console.png', ARTIFACTS).pathname });
  });

  test('a second page sees the earlier scrollback and then the same live output', async () => {
    const second = await open(web.url);
    await waitForLine(second, 'web-42'); // from the scrollback replay
    await type(first, 'echo both-$((1+1))');
    await Promise.all([waitForLine(first, 'both-2'), waitForLine(second, 'both-2')]);
    await second.close();
  });

  test('the page and the WebSocket are refused without a valid token or from a foreign origin', async () => {
    const page = await browser.newPage();
    const base = web.url.replace(/\?.*/, '');
    for (const url of [base, `${base}?token=not-the-token`]) {
      const res = await page.goto(url);
      expect(res?.status()).toBe(401);
      expect(await page.textContent('body')).toMatch(/missing or invalid access token/);
    }
    // A page from another origin that somehow learned the token still cannot connect.
    const foreign: Server = createServer((_req, res) => res.end('<!doctype html><title>elsewhere</title>'));
    await new Promise<void>((r) => foreign.listen(0, '127.0.0.1', r));
    try {
      await page.goto(`http://127.0.0.1:${(foreign.address() as AddressInfo).port}/`);
      const outcome = await page.evaluate(
        (url) =>
          new Promise<string>((resolve) => {
            const ws = new WebSocket(url);
            ws.onopen = () => resolve('open');
            ws.onclose = (ev) => resolve(`closed ${ev.code}`);
          }),
        web.url.replace('http:', 'ws:').replace('/?', '/ws?'),
      );
      expect(outcome).toBe('closed 1006');
      expect(log.some((l) => /refused WebSocket .* foreign Origin http:\/\/127\.0\.0\.1:\d+/.test(l))).toBe(true);
    } finally {
      foreign.close();
      await page.close();
    }
  });

  test('a read-only viewer watches but cannot type or use the power controls', async () => {
    const ro = await open(web.readOnlyUrl);
    expect(await ro.isVisible('#access')).toBe(true);
    expect(await ro.isDisabled('#reset')).toBe(true);
    expect(await ro.isDisabled('#poweroff')).toBe(true);
    const before = shell.output.length;
    await type(ro, 'echo ro-$((1+1))');
    // Bypassing the page's own guard: the server refuses input on the read-only token.
    const reply = await ro.evaluate(
      (url) =>
        new Promise<string>((resolve) => {
          const ws = new WebSocket(url);
          ws.onopen = () => ws.send(new TextEncoder().encode('echo sneaky-$((2+2))\r'));
          ws.onmessage = (ev) => {
            if (typeof ev.data === 'string' && JSON.parse(ev.data).type === 'error') resolve(ev.data);
          };
        }),
      web.readOnlyUrl.replace('http:', 'ws:').replace('/?', '/ws?'),
    );
    expect(JSON.parse(reply)).toMatchObject({ type: 'error', code: 'read-only' });
    await type(first, 'echo after-$((3+4))');
    await waitForLine(ro, 'after-7');
    const seen = shell.output.slice(before);
    expect(seen).not.toContain('ro-');
    expect(seen).not.toContain('sneaky');
    expect((await screen(ro)).join('\n')).not.toContain('ro-');
    await ro.close();
  });

  test('the scrollback downloads as text', async () => {
    const [download] = await Promise.all([first.waitForEvent('download'), first.click('#download')]);
    expect(download.suggestedFilename()).toBe('tsvmm-ttyS0-scrollback.txt');
    const text = readFileSync((await download.path())!, 'utf8');
    expect(text).toContain(`${PROMPT}echo web-$((40+2))\nweb-42\n`);
    expect(text).not.toContain('\x1b');
  });

  test('the console selector switches between ttyS0 and hvc0, each with its own history', async () => {
    shell.hub.output('hvc0', Buffer.from('hello from hvc0\r\n'));
    await first.selectOption('#console', 'hvc0');
    await waitForLine(first, 'hello from hvc0');
    expect((await screen(first)).join('\n')).not.toContain('web-42');
    expect(new URL(first.url()).searchParams.get('console')).toBe('hvc0');
    expect(await first.getAttribute('#download', 'href')).toMatch(/console=hvc0/);
    await first.selectOption('#console', 'ttyS0');
    await waitForLine(first, 'web-42');
    expect((await screen(first)).join('\n')).not.toContain('hello from hvc0');
  });

  test('reset and power off keep the console connected and show the VM state', async () => {
    first.on('dialog', (d) => void d.accept());
    const viewers = web.viewerCount();
    await type(first, 'echo before-reset-$((5*5))');
    await waitForLine(first, 'before-reset-25');
    const mark = shell.output.length;
    await first.click('#reset');
    await shell.waitFor(PROMPT, mark); // a new shell prompted
    await type(first, 'echo after-reset-$((6*6))');
    await waitForLine(first, 'after-reset-36');
    expect(shell.powerActions).toEqual(['reset']);
    await first.click('#poweroff');
    await first.waitForSelector('#vm[data-state="stopped"]');
    expect(await first.textContent('#vm')).toMatch(/^VM stopped \(exit \d+\) · host-shell$/);
    expect(await connectionState(first)).toBe('connected');
    expect(web.viewerCount()).toBe(viewers);
    expect(log.filter((l) => /viewer #1 .*(disconnected|dropped)/.test(l))).toEqual([]);
  });

  test('the page reconnects by itself when the server comes back, and shows it', async () => {
    const port = web.port;
    const token = new URL(web.url).searchParams.get('token')!;
    const readOnlyToken = new URL(web.readOnlyUrl).searchParams.get('token')!;
    await web.close();
    await first.waitForSelector('#conn[data-state="reconnecting"]');
    expect(await first.textContent('#notice')).toMatch(/tsvmm is shutting down|tsvmm shut down/);
    // Same address and tokens, as a restarted tsvmm configured with fixed ones would have.
    shell = new HostShell();
    web = await startWebConsole({ hub: shell.hub, port, token, readOnlyToken, log: (l) => log.push(l) });
    await first.waitForSelector('#conn[data-state="connected"]', { timeout: 30_000 });
    await waitForLine(first, PROMPT.trim()); // the new scrollback replaced the old screen
    await type(first, 'echo again-$((50+8))');
    await waitForLine(first, 'again-58');
  });
});
