// Debian's chromium driven by playwright-core (never a downloaded browser), and helpers to read
// the xterm.js screen the way a person sees it.
import { existsSync } from 'node:fs';
import { chromium, type Browser, type Page } from 'playwright-core';

export const CHROMIUM = process.env.TSVMM_CHROMIUM ?? '/usr/bin/chromium';

/** Why browser tests cannot run here, or undefined when they can. */
export function browserMissing(): string | undefined {
  return existsSync(CHROMIUM) ? undefined : `${CHROMIUM} not found: install Debian's chromium (apt-get install -y chromium; .ci/run does) or set TSVMM_CHROMIUM`;
}

export function launchChromium(): Promise<Browser> {
  // launch() gives every run a new, empty, temporary profile.
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

/** The terminal's visible rows as text. */
export function screen(page: Page): Promise<string[]> {
  return page.$$eval('.xterm-rows > div', (rows) => rows.map((r) => (r.textContent ?? '').replace(/\u00a0/g, ' ').trimEnd()));
}

/** Waits until some visible row, trimmed, equals `line` (or matches it, for a RegExp). */
export async function waitForLine(page: Page, line: string | RegExp, timeout = 30_000): Promise<void> {
  const pattern = typeof line === 'string' ? { s: line } : { r: line.source, f: line.flags };
  await page.waitForFunction(
    (p) => {
      const re = 'r' in p ? new RegExp(p.r as string, p.f as string) : undefined;
      return Array.from(document.querySelectorAll('.xterm-rows > div')).some((row) => {
        const text = (row.textContent ?? '').replace(/\u00a0/g, ' ').trim();
        return re ? re.test(text) : text === p.s;
      });
    },
    pattern,
    { timeout, polling: 'raf' },
  );
}

export async function connectionState(page: Page): Promise<string | undefined> {
  return (await page.getAttribute('#conn', 'data-state')) ?? undefined;
}

/** Opens the console page and waits until its WebSocket is connected. */
export async function openConsole(browser: Browser, url: string, onPageError?: (error: string) => void): Promise<Page> {
  const page = await browser.newPage({ viewport: { width: 1000, height: 700 }, acceptDownloads: true });
  if (onPageError) page.on('pageerror', (err) => onPageError(String(err)));
  const res = await page.goto(url);
  if (res?.status() !== 200) throw new Error(`GET ${url} answered ${res?.status()}, expected 200`);
  await page.waitForSelector('#conn[data-state="connected"]');
  return page;
}

/** Types a line into the page's terminal, as a person would. */
export async function typeLine(page: Page, text: string): Promise<void> {
  await page.click('#terminal');
  await page.keyboard.type(text);
  await page.keyboard.press('Enter');
}
